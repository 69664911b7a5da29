// What an optimizer holds of each tensor (where its arrays are, its step count and state), and
// the work list a step builds from them: which tensors it skips, the state it allocates, each
// tensor's coefficients and the chunks the step loop walks.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "contract.hpp"
#include "gradient_scan.hpp"
#include "non_finite.hpp"
#include "state_array.hpp"
#include "step.hpp"
#include "storage.hpp"

namespace multopt {

template <class P, class Base>
struct TensorState {
  P* param;
  GradientPointer<P> grad;
  std::size_t size;
  std::size_t group;
  long steps = 0;
  std::array<StateArray<Arithmetic<P>>, Base::slot_count> slots{};
  StateArray<Arithmetic<P>> master{};  // 16-bit P under Rounding::master: the fp32 weights, from the first step
  unsigned fresh_slots = 0;  // bit k: slot k was created since the last step
  contract::Scalars<Base> scalars = contract::initial_scalars<Base>();  // per-tensor scalar state, if any
};

template <class Base, class Rule, class P>
class StepWork {
 public:
  using S = Arithmetic<P>;
  using Tensor = TensorState<P, Base>;
  static constexpr bool has_scalars = contract::scalar_count<Base> > 0;

  void plan(const std::vector<std::size_t>& sizes, std::size_t chunk_length) {
    make_chunks<S>(sizes, chunk_length, chunks_);
    chunks_kept_.reserve(chunks_.size());
    skip_.assign(sizes.size(), 0);
    skipped_.reserve(sizes.size());
    jobs_.resize(sizes.size());
    if constexpr (has_scalars) next_scalars_.resize(sizes.size());
    new_state_.reserve(sizes.size() * std::size_t(Base::slot_count));
    fresh_.resize(sizes.size());
  }

  // Lists the tensors whose gradient `scan` found non-finite (none without a scan); under
  // throw_error throws for the first, before anything changes.
  void begin_step(const GradientScan* scan, const std::vector<Tensor>& tensors, NonFinitePolicy policy) {
    if (scan && policy == NonFinitePolicy::throw_error) {
      scan->for_each_non_finite([&](std::size_t k) {
        const std::size_t index = detail::first_non_finite(tensors[k].grad, tensors[k].size);
        throw NonFiniteGradient(k, index, detail::element(tensors[k].grad, index));
      });
    }
    for (std::size_t k : skipped_) skip_[k] = 0;
    skipped_.clear();
    if (!scan) return;
    scan->for_each_non_finite([&](std::size_t k) {
      if (!skip_[k]) skipped_.push_back(k);
      skip_[k] = 1;
    });
  }

  bool skipped(std::size_t tensor) const { return skip_[tensor] != 0; }
  const std::vector<std::size_t>& skipped_tensors() const { return skipped_; }

  // Makes the state arrays this step's hyperparameters need (and the master weights of 16-bit
  // tensors under Rounding::master, from the parameters) and frees those they no longer use,
  // all or nothing: every new array is allocated before any tensor changes. The jobs of
  // make_jobs() then point at them.
  template <class Hyper>
  void allocate_state(std::vector<Tensor>& tensors, const std::vector<Hyper>& groups, Rounding rounding) {
    new_state_.clear();
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      const Tensor& t = tensors[k];
      if (skip_[k] || t.size == 0) continue;
      if (is_16bit<P> && rounding == Rounding::master && t.master.empty())
        new_state_.push_back({k, master_slot, StateArray<S>(t.param, t.param + t.size)});
      for (int slot = 0; slot < Base::slot_count; ++slot) {
        const auto& base = groups[t.group].base;
        if (Base::uses_slot(base, slot) && t.slots[std::size_t(slot)].empty())
          new_state_.push_back({k, slot, StateArray<S>(t.size, S(Base::initial_value(base, slot)))});
      }
    }
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      if (skip_[k]) continue;
      for (int slot = 0; slot < Base::slot_count; ++slot) {
        if (Base::uses_slot(groups[tensors[k].group].base, slot)) continue;
        StateArray<S>().swap(tensors[k].slots[std::size_t(slot)]);
        jobs_[k].slots[std::size_t(slot)] = nullptr;
      }
      if (rounding != Rounding::master) {
        StateArray<S>().swap(tensors[k].master);
        jobs_[k].master = nullptr;
      }
    }
    for (NewState& made : new_state_) {
      if (made.slot == master_slot) {
        tensors[made.tensor].master.swap(made.values);
        jobs_[made.tensor].master = tensors[made.tensor].master.data();
        continue;
      }
      auto& array = tensors[made.tensor].slots[std::size_t(made.slot)];
      array.swap(made.values);
      tensors[made.tensor].fresh_slots |= 1u << made.slot;
      jobs_[made.tensor].slots[std::size_t(made.slot)] = array.data();
    }
  }

  // This step's coefficients of every tensor, with the clipping factor `clip`, each set tried
  // on unit data first (refuse_overflow); the scalar state that coeffs() advances waits in
  // next_scalars_ until run() commits it. Changes nothing in `tensors`.
  template <class Hyper>
  void make_jobs(std::vector<Tensor>& tensors, const std::vector<Hyper>& groups, double clip,
                 const StorageMode& storage) {
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      fresh_[k] = tensors[k].fresh_slots | new_slots(tensors[k], groups, k);
      const bool same_coeffs = k > 0 && shares_coeffs(tensors, k);
      contract::Scalars<Base>& scalars = next_scalars(k);
      if constexpr (has_scalars) scalars = same_coeffs ? next_scalars_[k - 1] : tensors[k].scalars;
      jobs_[k] = make_job(tensors[k], fresh_[k], groups[tensors[k].group], clip, same_coeffs ? &jobs_[k - 1] : nullptr,
                          scalars);
      if constexpr (is_16bit<P>) {
        jobs_[k].rounding = storage.rounding;
        jobs_[k].master = data_or_null(tensors[k].master);
        jobs_[k].rounding_key = detail::rounding_key(storage.seed, k, std::uint64_t(tensors[k].steps + 1));
      }
    }
  }

  // Steps every tensor not skipped with the jobs make_jobs() made, and counts its step.
  void run(std::vector<Tensor>& tensors, std::size_t total_size, const Parallel& parallel) {
    step_chunks(jobs_, skipped_.empty() ? chunks_ : chunks_to_step(), total_size, parallel);
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      if (skip_[k]) continue;
      ++tensors[k].steps;
      tensors[k].fresh_slots = 0;
      if constexpr (has_scalars) tensors[k].scalars = next_scalars_[k];
    }
  }

 private:
  struct NewState {
    std::size_t tensor;
    int slot;  // master_slot: the master weights
    StateArray<S> values;
  };
  static constexpr int master_slot = -1;

  // The slots allocate_state() will create for tensor k, as bits.
  template <class Hyper>
  unsigned new_slots(const Tensor& t, const std::vector<Hyper>& groups, std::size_t k) const {
    unsigned made = 0;
    if (skip_[k] || t.size == 0) return made;
    for (int slot = 0; slot < Base::slot_count; ++slot)
      if (Base::uses_slot(groups[t.group].base, slot) && t.slots[std::size_t(slot)].empty()) made |= 1u << slot;
    return made;
  }

  // Tensors of one group at the same step count (and scalar state) step with the same coefficients.
  bool shares_coeffs(const std::vector<Tensor>& tensors, std::size_t k) const {
    const Tensor &a = tensors[k], &b = tensors[k - 1];
    return a.group == b.group && a.steps == b.steps && fresh_[k] == fresh_[k - 1] && a.scalars == b.scalars;
  }

  // The coefficients are copied from `same` where given: computing them (Adam: two pow) costs
  // about as much as stepping a tensor of a hundred elements.
  template <class Hyper>
  static TensorStep<Base, Rule, P> make_job(Tensor& t, unsigned fresh_slots, const Hyper& h, double clip,
                                            const TensorStep<Base, Rule, P>* same, contract::Scalars<Base>& scalars) {
    TensorStep<Base, Rule, P> job{t.param, t.grad, t.size, {}, {}, {}, {}};
    if (same) {
      job.base = same->base;
      job.rule = same->rule;
      job.prestep = same->prestep;
    } else {
      job.base = detail::base_coeffs<Base, S>(h.base, t.steps + 1, fresh_slots, scalars);
      job.rule = Rule::template coeffs<S>(h.rule, job.base.scale * h.lr_factor);
      job.prestep = {S(h.maximize ? -clip : clip), S(1.0 - h.decoupled_decay_step()), S(h.weight_decay)};
      refuse_overflow(job, h, t.group, t.steps + 1);
    }
    for (std::size_t k = 0; k < t.slots.size(); ++k)
      job.slots[k] = data_or_null(t.slots[k]);  // allocate_state() updates what it changes
    return job;
  }

  // Settings each valid alone can together make a step overflow (Adam's lr = 1e308 and its bias
  // correction 1/(1 − β1) = 10, weight_decay = 1e308 under a square): the coefficients are tried
  // on a packet of unit data (θ and g = ±1, the state as new) before the step changes anything,
  // once per set of coefficients, and a result beyond half the range of S is refused, naming
  // every setting of the group that differs from its default, with its value.
  template <class Hyper>
  static void refuse_overflow(const TensorStep<Base, Rule, P>& job, const Hyper& h, std::size_t group, long step) {
    constexpr std::size_t width = simd::Vec<S>::size;
    const TensorStep<Base, Rule, S> coeffs{nullptr, nullptr, width, {}, job.base, job.rule, job.prestep};
    alignas(64) S param[width], grad[width], state[Base::slot_count][width];
    std::array<S*, Base::slot_count> slots{};
    for (std::size_t i = 0; i < width; ++i) {
      param[i] = S(i % 2 ? -1 : 1);
      grad[i] = S(i / 2 % 2 ? -1 : 1);
    }
    for (int slot = 0; slot < Base::slot_count; ++slot) {
      if (!Base::uses_slot(h.base, slot)) continue;
      slots[std::size_t(slot)] = state[slot];
      std::fill_n(state[slot], width, S(Base::initial_value(h.base, slot)));
    }
    detail::step_packets(coeffs, param, grad, slots, 0, width);
    // Half the range: one binade of headroom for the rounding of other data of size 1.
    const auto too_large = [](S x) { return !(std::abs(x) <= std::numeric_limits<S>::max() / 2); };
    const S* overflow = std::find_if(param, param + width, too_large);
    const char* where = "a parameter";
    for (int slot = 0; slot < Base::slot_count && overflow == param + width; ++slot) {
      if (!slots[std::size_t(slot)]) continue;
      overflow = std::find_if(state[slot], state[slot] + width, too_large);
      where = Base::slot_names[slot];
      if (overflow == state[slot] + width) overflow = param + width;
    }
    if (overflow == param + width) return;
    const Hyper default_hyper;
    std::vector<double> defaults;
    Hyper::fields(default_hyper, [&](const char*, const auto& value) { defaults.push_back(double(value)); });
    std::ostringstream message;
    message.precision(17);
    message << "multopt: the hyperparameters of group " << group << " overflow step " << step
            << ": parameters and gradients of size 1 would make " << where << ' ' << double(*overflow)
            << " (beyond half the range of " << (sizeof(S) == sizeof(float) ? "float" : "double")
            << "); the settings that differ from their defaults:";
    std::size_t field = 0;
    const char* separator = " ";
    Hyper::fields(h, [&](const char* name, const auto& value) {
      if (double(value) == defaults[field++]) return;
      message << separator << name << " = " << double(value);
      separator = ", ";
    });
    throw std::invalid_argument(message.str());
  }

  // The chunks of the tensors this step does not skip.
  const std::vector<Chunk>& chunks_to_step() {
    chunks_kept_.clear();
    for (const Chunk& chunk : chunks_)
      if (!skip_[chunk.tensor]) chunks_kept_.push_back(chunk);
    return chunks_kept_;
  }

  // Tensor k's scalar state after this step, until the step commits (a shared dummy without).
  contract::Scalars<Base>& next_scalars(std::size_t k) {
    if constexpr (has_scalars) return next_scalars_[k];
    else return (void)k, no_scalars_;
  }

  std::vector<TensorStep<Base, Rule, P>> jobs_;
  std::vector<contract::Scalars<Base>> next_scalars_;  // empty for a base without scalar state
  contract::Scalars<Base> no_scalars_{};
  std::vector<Chunk> chunks_;
  std::vector<Chunk> chunks_kept_;      // the chunks of the tensors not skipped
  std::vector<char> skip_;              // per tensor: left alone by this step
  std::vector<std::size_t> skipped_;    // the tensors the last step left alone
  std::vector<NewState> new_state_;     // the arrays this step allocates, until they are installed
  std::vector<unsigned> fresh_;         // per tensor: its fresh_slots once this step's state is made
};

}  // namespace multopt
