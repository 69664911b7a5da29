// Optimizer<Base, Rule, P>: steps parameter tensors of type P (float, double, Eigen::bfloat16,
// Eigen::half) that live in the caller's memory. It owns only the optimizer state, allocated on
// a tensor's first step; 16-bit parameters are computed in float, with float state
// (storage.hpp, docs/mixed-precision.md).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "contract.hpp"
#include "eigen_buffers.hpp"
#include "hyper.hpp"
#include "named_state.hpp"
#include "optimizer_state.hpp"
#include "non_finite.hpp"
#include "state_array.hpp"
#include "step.hpp"
#include "step_tensors.hpp"
#include "storage.hpp"
#include "tensor_state.hpp"

namespace multopt {

template <class Opt>
struct CheckpointAccess;  // checkpoint.hpp: reads and restores the private state

template <class Base, class Rule, class P>
class Optimizer : public OptimizerState<P, Base> {
  using S = Arithmetic<P>;
  using OptimizerState<P, Base>::tensors_;
  using OptimizerState<P, Base>::checked_tensor;
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>,
                "multopt optimizers step float, double, Eigen::bfloat16 or Eigen::half parameters");
  static_assert(contract::check_base<Base, S>() && contract::check_rule<Rule, S>());
  static_assert(Rule::template supports<Base>, "this update rule is not defined on this base");

 public:
  using Scalar = P;   // the parameters' type
  using Compute = S;  // the type they are computed in, and the state's
  using BaseType = Base;
  using RuleType = Rule;
  using Hyper = multopt::Hyper<Base, Rule>;
  static const char* base_name() { return Base::name; }
  static const char* rule_name() { return Rule::name; }

  // Group 0's hyperparameters by keyword, the others at their defaults:
  // MAdam<float> opt(arg::lr_in = 1.0, arg::lr_out = 1e-3, arg::beta2 = 0.99).
  template <class... Names>
  explicit Optimizer(Setting<Names>... settings) : Optimizer(Hyper::of(settings...)) {}
  explicit Optimizer(const Hyper& hyper) { add_group(hyper); }
  explicit Optimizer(const typename Rule::Params& rule, const typename Base::Params& base = {})
      : Optimizer(Hyper(rule, base)) {}

  // Move-only: a copy would step the caller's buffers a second time, with state of its own.
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  Optimizer(Optimizer&&) noexcept = default;
  Optimizer& operator=(Optimizer&&) noexcept = default;
  ~Optimizer() = default;

  // Parameter groups: each has its own hyperparameters. Group 0 is made by the constructor.
  std::size_t add_group(const Hyper& hyper) {
    check_hyper(hyper);
    groups_.push_back(hyper);
    return groups_.size() - 1;
  }
  // A group with group 0's hyperparameters but for these: add_group(arg::lr = 0.1).
  template <class Name, class... Names>
  std::size_t add_group(Setting<Name> first, Setting<Names>... more) {
    Hyper hyper = groups_.front();
    hyper.set(first, more...);
    return add_group(hyper);
  }
  std::size_t group_count() const { return groups_.size(); }
  const Hyper& hyper(std::size_t group = 0) const { return groups_.at(checked_group(group)); }
  void set_hyper(const Hyper& hyper, std::size_t group = 0) {
    checked_group(group);
    check_hyper(hyper);
    groups_[group] = hyper;
  }
  // Hyper::validate(), and every value within the range of S, which the step computes in.
  static void check_hyper(const Hyper& hyper) { hyper.template validate_for<S>(); }
  void set(std::string_view name, double value, std::size_t group = 0) {
    Hyper changed = groups_[checked_group(group)];
    changed.set(name, value);
    set_hyper(changed, group);
  }
  double get(std::string_view name, std::size_t group = 0) const {
    return groups_[checked_group(group)].get(name);
  }
  static std::vector<std::string> hyperparameter_names() { return Hyper::names(); }

  // Clipping by the norm of all the optimizer's gradients together, as
  // torch.nn.utils.clip_grad_norm_, without writing the gradient buffers; +inf (the default)
  // turns it off. grad_norm() is the norm the last step clipped by (0 before any).
  double max_grad_norm() const { return options_.max_grad_norm; }
  void set_max_grad_norm(double max_norm) {
    detail::check_max_grad_norm(max_norm);
    options_.max_grad_norm = max_norm;
  }
  double grad_norm() const { return grad_norm_; }

  // Registers size parameters at `param` whose gradients the caller writes at `grad` before
  // each step(). Both buffers stay the caller's and must outlive the optimizer's use of them.
  std::size_t add_params(P* param, const P* grad, std::size_t size, std::size_t group = 0) {
    if constexpr (is_16bit<P>) return add_tensor(param, {grad, nullptr}, grad, size, group);
    else return add_tensor(param, grad, grad, size, group);
  }
  // 16-bit parameters may have fp32 gradients (as gradient accumulation gives them).
  template <class Q = P, std::enable_if_t<is_16bit<Q>, int> = 0>
  std::size_t add_params(P* param, const float* grad, std::size_t size, std::size_t group = 0) {
    return add_tensor(param, {nullptr, grad}, grad, size, group);
  }

  // The same for Eigen arrays, matrices and maps with contiguous storage.
  template <class A, class G>
  std::size_t add_params(A&& param, const Eigen::DenseBase<G>& grad, std::size_t group = 0) {
    detail::require_eigen_buffers<A>(param, grad);
    return add_params(param.data(), grad.derived().data(), std::size_t(param.size()), group);
  }
  template <class A, class G>
  std::size_t add_params(A&& param, Eigen::DenseBase<G>&& grad, std::size_t group = 0) {
    static_assert(!std::is_base_of_v<Eigen::PlainObjectBase<G>, G>,
                  "a temporary Eigen gradient array would be freed while the optimizer still reads it");
    return add_params(std::forward<A>(param), static_cast<const Eigen::DenseBase<G>&>(grad), group);
  }

  // Steps every tensor once, through step_tensors() over the state it owns. Everything that can
  // fail (the non-finite check under throw_error, the check of the step's coefficients, every
  // allocation) happens before the first change, so a step that throws leaves parameters, state
  // and step counts as they were.
  void step() {
    try {
      refs_.clear();
      for (std::size_t k = 0; k < tensors_.size(); ++k)
        refs_.push_back(refs_of(tensors_[k], k, groups_[tensors_[k].group].base, options_.storage,
                                options_.ema_decay.has_value(), new_arrays_));
      work_.plan(refs_.data(), refs_.size(), groups_.data(), groups_.size(), options_);
    } catch (...) {
      new_arrays_.drop();
      throw;
    }
    const StepReport& report = work_.commit(refs_.data(), refs_.size());
    if (options_.max_grad_norm < std::numeric_limits<double>::infinity()) grad_norm_ = report.grad_norm;
    keep_state(tensors_, refs_, new_arrays_, stepped_, report.skipped);
  }

  // What step() does with a gradient that holds a NaN or an infinity. Checking reads every
  // gradient once more, before the step; under skip without clipping, a tensor of one chunk
  // (ThreadSettings::chunk) is read right before it is stepped instead (docs/reliability.md). The
  // default, propagate, checks nothing.
  // skip_all leaves every tensor alone when any gradient holds one, as a loss scaler skips a step.
  NonFinitePolicy non_finite_policy() const { return options_.non_finite_policy; }
  void set_non_finite_policy(NonFinitePolicy policy) {
    detail::check_non_finite_policy(policy);
    options_.non_finite_policy = policy;
  }
  // The tensors that the last step() left alone because of a non-finite gradient (policies skip
  // and skip_all).
  const std::vector<std::size_t>& skipped_tensors() const { return work_.report().skipped; }

  // Threads, and the size below which a step stays serial (OpenMP builds only).
  const ThreadSettings& thread_settings() const { return options_.threading; }
  void set_thread_settings(const ThreadSettings& settings) {
    detail::check_threading(settings);
    options_.threading = settings;
  }

  // The exponential moving average of the weights, d in [0, 1), or none (the default): each step
  // updates a tensor's average right after its parameters, ema ← d·ema + (1 − d)·θ, and a
  // tensor's first step with it on sets ema = θ. A step with it off frees the averages, so that
  // one turned on again starts from θ.
  const std::optional<double>& ema_decay() const { return options_.ema_decay; }
  void set_ema_decay(const std::optional<double>& decay) {
    detail::check_ema_decay(decay);
    options_.ema_decay = decay;
  }
  // The factor the loss was multiplied by (loss scaling; 1, the default, is none): the step
  // multiplies each gradient by 1/grad_scale as it reads it, before clipping, and grad_norm() is
  // the unscaled norm.
  double grad_scale() const { return options_.grad_scale; }
  void set_grad_scale(double scale) {
    detail::check_grad_scale<S>(scale);
    options_.grad_scale = scale;
  }
  // Every setting a step() runs with, as step_tensors() takes them.
  const StepOptions& step_options() const { return options_; }

  // How 16-bit parameters are stored after each step (storage.hpp; Rounding::master by default),
  // and how the state is (StateStorage: as computed by default; in 16 bits for parameters
  // computed in float). Master weights are made from the parameters on a tensor's first step
  // under Rounding::master and dropped on a step under another mode; the state arrays are stored
  // anew by the first step after the state's storage changes. float parameters take a state
  // storage alone, double ones neither.
  const StorageMode& storage() const { return options_.storage; }
  void set_storage(const StorageMode& storage) {
    check_storage<P>(storage);
    options_.storage = storage;
  }
  // Copies `size` values into the tensor's state array `name`, which its group's
  // hyperparameters must use, stored as the storage mode says (rounded to nearest where it is
  // 16-bit); the next step continues from them. On any error nothing changes.
  void set_state(std::size_t tensor, std::string_view name, const S* values, std::size_t size) {
    auto& t = tensors_[checked_tensor(tensor)];
    detail::set_state_array(t, tensor, groups_[t.group].base, name, values, size, options_.storage.state);
  }

 private:
  template <class Opt>
  friend struct CheckpointAccess;

  // grad_address: where the caller's gradients are, of either type.
  std::size_t add_tensor(P* param, GradientPointer<P> grad, const void* grad_address, std::size_t size,
                         std::size_t group) {
    checked_group(group);
    detail::require_new_tensor<S, Base>(param, grad_address, size);
    tensors_.push_back(TensorState<P, Base>{param, grad, size, group});
    refs_.reserve(tensors_.size());
    stepped_.reserve(tensors_.size());
    return tensors_.size() - 1;
  }

  std::size_t checked_group(std::size_t group) const { return checked_index("group", group, groups_.size()); }

  std::vector<Hyper> groups_;
  StepOptions options_;  // the settings a step runs with, each set by its setter, which checks it
  double grad_norm_ = 0.0;
  // What a step works from, kept between steps so that a step allocates nothing.
  std::vector<TensorRefs<Base, P>> refs_;
  NewStateArrays<P, Base> new_arrays_;
  std::vector<char> stepped_;
  StepWork<Base, Rule, P> work_;
};

}  // namespace multopt
