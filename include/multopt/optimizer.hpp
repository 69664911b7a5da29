// Optimizer<Base, Rule, Scalar>: steps parameter tensors that live in the caller's memory.
// It owns only the optimizer state, allocated on a tensor's first step.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "hyper.hpp"
#include "non_finite.hpp"
#include "step.hpp"

namespace multopt {

template <class Opt>
struct CheckpointAccess;  // checkpoint.hpp: reads and restores the private state

template <class Base, class Rule, class S>
class Optimizer {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>,
                "multopt optimizers step float or double parameters");
  static_assert(Rule::template supports<Base>, "this update rule is not defined on this base");

 public:
  using Scalar = S;
  using BaseType = Base;
  using RuleType = Rule;
  using Hyper = multopt::Hyper<Base, Rule>;

  explicit Optimizer(const typename Rule::Params& rule = {}, const typename Base::Params& base = {},
                     double weight_decay = 0.0)
  {
    add_group(Hyper{rule, base, weight_decay});
  }

  // Move-only: a copy would step the same caller buffers as the original, each with its own
  // state, a silent double update.
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  Optimizer(Optimizer&&) noexcept = default;
  Optimizer& operator=(Optimizer&&) noexcept = default;
  ~Optimizer() = default;

  // Parameter groups: each has its own hyperparameters. Group 0 is made by the constructor.
  std::size_t add_group(const Hyper& hyper) {
    hyper.validate();
    groups_.push_back(hyper);
    return groups_.size() - 1;
  }
  std::size_t group_count() const { return groups_.size(); }
  const Hyper& hyper(std::size_t group = 0) const { return groups_.at(checked_group(group)); }
  void set_hyper(const Hyper& hyper, std::size_t group = 0) {
    checked_group(group);
    hyper.validate();
    groups_[group] = hyper;
  }
  void set(const std::string& name, double value, std::size_t group = 0) {
    groups_[checked_group(group)].set(name, value);
  }
  double get(const std::string& name, std::size_t group = 0) const {
    return groups_[checked_group(group)].get(name);
  }

  // Registers size parameters at `param` whose gradients the caller writes at `grad` before
  // each step(). Both buffers stay the caller's and must outlive the optimizer's use of them.
  std::size_t add_params(S* param, const S* grad, std::size_t size, std::size_t group = 0) {
    checked_group(group);
    if (size > 0 && param == nullptr) throw std::invalid_argument("multopt: param is a null pointer");
    if (size > 0 && grad == nullptr) throw std::invalid_argument("multopt: grad is a null pointer");
    tensors_.push_back(Tensor{param, grad, size, group});
    chunks_stale_ = true;
    return tensors_.size() - 1;
  }

  // The same for Eigen arrays, matrices and maps with contiguous storage.
  template <class P, class G>
  std::size_t add_params(P&& param, const Eigen::DenseBase<G>& grad, std::size_t group = 0) {
    using Param = std::decay_t<P>;
    static_assert(std::is_base_of_v<Eigen::DenseBase<Param>, Param>,
                  "add_params takes an Eigen object or (pointer, pointer, size)");
    static_assert(std::is_lvalue_reference_v<P> || !std::is_base_of_v<Eigen::PlainObjectBase<Param>, Param>,
                  "a temporary Eigen array would be freed while the optimizer still steps it");
    if (param.size() != grad.size()) {
      throw std::invalid_argument("multopt: grad has " + std::to_string(grad.size()) +
                                  " elements but param has " + std::to_string(param.size()));
    }
    require_contiguous("param", param);
    require_contiguous("grad", grad.derived());
    return add_params(param.data(), grad.derived().data(), std::size_t(param.size()), group);
  }
  template <class P, class G>
  std::size_t add_params(P&& param, Eigen::DenseBase<G>&& grad, std::size_t group = 0) {
    static_assert(!std::is_base_of_v<Eigen::PlainObjectBase<G>, G>,
                  "a temporary Eigen gradient array would be freed while the optimizer still reads it");
    return add_params(std::forward<P>(param), static_cast<const Eigen::DenseBase<G>&>(grad), group);
  }

  // Steps every tensor once. Whatever it allocates (state on a tensor's first step, the
  // work list after tensors were added) it allocates before it touches any parameter, so a
  // failed allocation leaves parameters and step counts unchanged.
  void step() {
    if (chunks_stale_) plan_chunks();
    const bool checking = non_finite_ != NonFinitePolicy::propagate;
    if (checking) find_non_finite();  // throws, under throw_error, before any change
    for (std::size_t k : skipped_) skip_[k] = 0;
    skipped_.clear();
    if (checking) list_skipped();
    for (std::size_t k = 0; k < tensors_.size(); ++k)
      if (!skip_[k]) prepare_state(tensors_[k]);
    for (std::size_t k = 0; k < tensors_.size(); ++k) {
      const bool same_coeffs = k > 0 && shares_coeffs(tensors_[k], tensors_[k - 1]);
      jobs_[k] = make_job(tensors_[k], same_coeffs ? &jobs_[k - 1] : nullptr);
    }
    step_chunks(jobs_, skipped_.empty() ? chunks_ : chunks_to_step(), total_size_, parallel_);
    for (std::size_t k = 0; k < tensors_.size(); ++k) {
      if (skip_[k]) continue;
      ++tensors_[k].steps;
      tensors_[k].fresh_slots = 0;
    }
  }

  // What step() does with a gradient that holds a NaN or an infinity. Checking costs one more
  // read of every gradient (docs/reliability.md); the default, propagate, checks nothing.
  NonFinitePolicy non_finite_policy() const { return non_finite_; }
  void set_non_finite_policy(NonFinitePolicy policy) {
    if (policy != NonFinitePolicy::propagate && policy != NonFinitePolicy::skip &&
        policy != NonFinitePolicy::throw_error) {
      reject("non_finite_policy", double(policy), "propagate, skip or throw_error");
    }
    non_finite_ = policy;
  }
  // The tensors that the last step() left alone because of a non-finite gradient (policy skip).
  const std::vector<std::size_t>& skipped_tensors() const { return skipped_; }

  // Threads, and the size below which a step stays serial (OpenMP builds only).
  const Parallel& parallel() const { return parallel_; }
  void set_parallel(const Parallel& parallel) {
    if (parallel.threads < 0) reject("threads", parallel.threads, ">= 0");
    if (parallel.chunk == 0) reject("chunk", 0.0, "> 0");
    parallel_ = parallel;
    chunks_stale_ = true;
  }

  std::size_t tensor_count() const { return tensors_.size(); }
  std::size_t size(std::size_t tensor) const { return tensors_[checked_tensor(tensor)].size; }
  long step_count(std::size_t tensor) const { return tensors_[checked_tensor(tensor)].steps; }
  // The tensor's state array `slot` (see the base's header), or null while it has none.
  const S* state(std::size_t tensor, int slot) const {
    if (slot < 0 || slot >= Base::slot_count) {
      throw std::out_of_range("multopt: state slot " + std::to_string(slot) + " does not exist (" +
                              std::string(Base::name) + " has " + std::to_string(Base::slot_count) + ")");
    }
    const auto& array = tensors_[checked_tensor(tensor)].slots[std::size_t(slot)];
    return array.empty() ? nullptr : array.data();
  }

 private:
  template <class Opt>
  friend struct CheckpointAccess;

  using StateArray = std::vector<S, Eigen::aligned_allocator<S>>;

  struct Tensor {
    S* param;
    const S* grad;
    std::size_t size;
    std::size_t group;
    long steps = 0;
    std::array<StateArray, Base::slot_count> slots{};
    unsigned fresh_slots = 0;  // bit k: slot k was created since the last step
  };

  std::size_t checked_group(std::size_t group) const {
    if (group >= groups_.size()) {
      throw std::out_of_range("multopt: group " + std::to_string(group) + " does not exist (" +
                              std::to_string(groups_.size()) + " groups)");
    }
    return group;
  }

  std::size_t checked_tensor(std::size_t tensor) const {
    if (tensor >= tensors_.size()) {
      throw std::out_of_range("multopt: tensor " + std::to_string(tensor) + " does not exist (" +
                              std::to_string(tensors_.size()) + " tensors)");
    }
    return tensor;
  }

  template <class D>
  static void require_contiguous(const char* what, const Eigen::DenseBase<D>& x) {
    const auto& d = x.derived();
    const bool contiguous = d.size() <= 1 || (d.innerStride() == 1 &&
                            (d.outerSize() <= 1 || d.outerStride() == d.innerSize()));
    if (!contiguous) throw std::invalid_argument(std::string("multopt: ") + what + " is not contiguous in memory");
  }

  void prepare_state(Tensor& t) {
    const auto& base = groups_[t.group].base;
    for (int k = 0; k < Base::slot_count; ++k) {
      StateArray& slot = t.slots[std::size_t(k)];
      if (!Base::uses_slot(base, k)) {
        StateArray().swap(slot);
      } else if (slot.empty() && t.size > 0) {
        slot.assign(t.size, S(Base::initial_value(base, k)));
        t.fresh_slots |= 1u << k;
      }
    }
  }

  // Tensors of one group at the same step count step with the same coefficients.
  static bool shares_coeffs(const Tensor& a, const Tensor& b) {
    return a.group == b.group && a.steps == b.steps && a.fresh_slots == b.fresh_slots;
  }

  // The coefficients are copied from `same` where given: computing them (Adam: two pow) costs
  // about as much as stepping a tensor of a hundred elements.
  TensorStep<Base, Rule, S> make_job(Tensor& t, const TensorStep<Base, Rule, S>* same) {
    const Hyper& h = groups_[t.group];
    TensorStep<Base, Rule, S> job{t.param, t.grad, t.size, {}, {}, {}, S(h.weight_decay)};
    if (same) {
      job.base = same->base;
      job.rule = same->rule;
    } else {
      job.base = Base::template coeffs<S>(h.base, t.steps + 1, t.fresh_slots);
      job.rule = Rule::template coeffs<S>(h.rule, job.base.scale);
    }
    for (std::size_t k = 0; k < t.slots.size(); ++k)
      job.slots[k] = t.slots[k].empty() ? nullptr : t.slots[k].data();
    return job;
  }

  // Finds the chunks whose gradient holds a NaN or an infinity; under throw_error, throws for
  // the first one.
  void find_non_finite() {
    const auto check = [this](std::size_t c) {
      const Chunk& chunk = chunks_[c];
      chunk_non_finite_[c] = detail::has_non_finite(tensors_[chunk.tensor].grad, chunk.begin, chunk.end);
    };
    for_each_chunk(chunks_.size(), total_size_, parallel_, check);
    if (non_finite_ != NonFinitePolicy::throw_error) return;
    const auto bad = std::find(chunk_non_finite_.begin(), chunk_non_finite_.end(), char(1));
    if (bad == chunk_non_finite_.end()) return;
    const std::size_t tensor = chunks_[std::size_t(bad - chunk_non_finite_.begin())].tensor;
    const Tensor& t = tensors_[tensor];
    const std::size_t index = detail::first_non_finite(t.grad, t.size);
    throw NonFiniteGradient(tensor, index, double(t.grad[index]));
  }

  // Marks in skip_, and lists in skipped_, the tensors of the chunks find_non_finite found.
  void list_skipped() {
    for (std::size_t c = 0; c < chunks_.size(); ++c) {
      const std::size_t tensor = chunks_[c].tensor;
      if (chunk_non_finite_[c] && !skip_[tensor]) {
        skip_[tensor] = 1;
        skipped_.push_back(tensor);
      }
    }
  }

  // The chunks of the tensors this step does not skip.
  const std::vector<Chunk>& chunks_to_step() {
    chunks_kept_.clear();
    for (const Chunk& chunk : chunks_)
      if (!skip_[chunk.tensor]) chunks_kept_.push_back(chunk);
    return chunks_kept_;
  }

  void plan_chunks() {
    std::vector<std::size_t> sizes;
    for (const Tensor& t : tensors_) sizes.push_back(t.size);
    make_chunks<S>(sizes, parallel_.chunk, chunks_);
    chunk_non_finite_.assign(chunks_.size(), 0);
    chunks_kept_.reserve(chunks_.size());
    skip_.assign(tensors_.size(), 0);
    skipped_.reserve(tensors_.size());
    jobs_.resize(tensors_.size());
    total_size_ = 0;
    for (std::size_t size : sizes) total_size_ += size;
    chunks_stale_ = false;
  }

  std::vector<Hyper> groups_;
  std::vector<Tensor> tensors_;
  Parallel parallel_;
  // The work list of a step, kept between steps so that a step allocates nothing.
  std::vector<TensorStep<Base, Rule, S>> jobs_;
  std::vector<Chunk> chunks_;
  std::size_t total_size_ = 0;
  bool chunks_stale_ = true;
  NonFinitePolicy non_finite_ = NonFinitePolicy::propagate;
  std::vector<char> chunk_non_finite_;  // per chunk: its gradient holds a NaN or an infinity
  std::vector<char> skip_;              // per tensor: left alone by this step
  std::vector<std::size_t> skipped_;    // the tensors the last step left alone
  std::vector<Chunk> chunks_kept_;      // the chunks of the others
};

}  // namespace multopt
