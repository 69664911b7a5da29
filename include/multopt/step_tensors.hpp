// The public step over caller-owned state (docs/api.md, "Bring your own state"): one call steps
// a list of tensors whose parameters, gradients, state arrays, step counts and scalar state are
// the caller's (tensor_refs.hpp), with groups of settings, and keeps nothing of them. Optimizer
// steps through it with state of its own.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "chunked_step.hpp"
#include "contract.hpp"
#include "conversions.hpp"
#include "dispatch.hpp"
#include "hyper.hpp"
#include "overflow_check.hpp"
#include "step_chunk.hpp"
#include "storage.hpp"
#include "tensor_refs.hpp"

namespace multopt {

// What a call works from. A caller that keeps one between calls steps without allocating, once
// its lists have grown to the size of the call. A call has two phases: plan() does everything
// that can fail (the checks of every pointer, count and setting, the gradient scan for clipping
// and the non-finite policy, each tensor's coefficients and their overflow check) and changes
// no tensor; commit() steps, counts the steps, and cannot fail. Of these, only the checks that
// name the base's state and each tensor's coefficients are compiled per base × rule; the rest
// is ChunkedStep's, compiled once per P.
template <class Base, class Rule, class P>
class StepWork {
 public:
  using S = Arithmetic<P>;
  using Refs = TensorRefs<Base, P>;
  using Hyper = multopt::Hyper<Base, Rule>;

  void plan(const Refs* tensors, std::size_t count, const Hyper* groups, std::size_t group_count,
            const StepOptions& options) {
    detail::check_step_options<P>(options);
    kernel_ = detail::chunk_kernel<Base, Rule, P>();
    group_needs_.clear();
    for (std::size_t g = 0; g < group_count; ++g) {
      groups[g].template validate_for<S>();
      detail::GroupNeeds needs{0, groups[g].weight_decay, groups[g].decoupled_weight_decay};
      for (int array = 0; array < Base::array_count; ++array)
        if (Base::uses_array(groups[g].base, array)) needs.arrays |= 1u << array;
      group_needs_.push_back(needs);
    }
    for (std::size_t k = 0; k < count; ++k)
      detail::check_tensor_refs(k, tensors[k], group_needs_.data(), group_count, options);
    chunked_.clear_tensors();
    for (std::size_t k = 0; k < count; ++k) chunked_.add_tensor(tensors[k].size, tensors[k].grad, tensors[k].rows);
    step_args_.resize(count);
    if constexpr (has_scalars) next_scalars_.resize(count);
    const double clip = chunked_.plan(options);
    for (std::size_t k = 0; k < count; ++k) make_step_args(tensors, k, groups, clip, options);
  }

  // Steps the tensors that plan() did not skip (ChunkedStep::commit); then every tensor stepped
  // counts its step and takes its new scalars; a tensor skipped keeps all it had.
  const StepReport& commit(const Refs* tensors, std::size_t count) noexcept {
    const StepReport& report = chunked_.commit(step_args_.data(), kernel_);
    for (std::size_t k = 0; k < count; ++k) {
      if (chunked_.skipped(k)) continue;
      ++*tensors[k].steps;
      if constexpr (has_scalars)
        std::copy(next_scalars_[k].begin(), next_scalars_[k].end(), tensors[k].scalars);
    }
    return report;
  }

  // What the last commit() did.
  const StepReport& report() const { return chunked_.report(); }

 private:
  static constexpr bool has_scalars = contract::scalar_count<Base> > 0;

  // Tensor k's arrays and this step's coefficients, with the clipping factor `clip`. Tensors of
  // one group at the same step count (and with the same new arrays and scalar state) share their
  // coefficients: computing them (Adam: two pow) costs about as much as stepping a tensor of a
  // hundred elements. A new set is tried on unit data first (refuse_overflow); the scalar state
  // that it advances waits in next_scalars_ until commit().
  void make_step_args(const Refs* tensors, std::size_t k, const Hyper* groups, double clip,
                      const StepOptions& options) {
    const StorageMode& storage = options.storage;
    const Refs& t = tensors[k];
    const Hyper& h = groups[t.group];
    TensorStepArgs<Base, Rule, P>& args = step_args_[k];
    args.param = t.param;
    args.grad = chunked_.gradient(k);
    args.size = chunked_.size(k);
    args.rows = chunked_.rows(k);
    args.row_width = t.rows.width;
    args.narrow_state = false;
    const detail::GroupNeeds& needs = group_needs_[t.group];
    for (std::size_t array = 0; array < args.arrays.size(); ++array) {
      const bool used = needs.uses(array);
      if constexpr (std::is_same_v<S, float>) {
        const FloatStatePointer& state = t.state[array];
        args.arrays[array] = used ? state.wide() : nullptr;
        args.narrow_arrays[array] = used && !state.wide() ? state : FloatStatePointer{};
        args.narrow_state = args.narrow_state || args.narrow_arrays[array];
      } else {
        args.arrays[array] = used ? t.state[array] : nullptr;
      }
    }
    if constexpr (is_16bit<P>) {  // (float P: its 16-bit state rounds to nearest)
      args.rounding = storage.rounding;
      args.master = storage.rounding == Rounding::master ? t.master : nullptr;
      args.rounding_key = detail::rounding_key(storage.seed, k, std::uint64_t(*t.steps + 1));
    }
    args.ema = options.ema_decay ? t.ema : nullptr;
    if (options.ema_decay) args.averaging = {S(*options.ema_decay), S(1.0 - *options.ema_decay), t.new_ema};
    if (k > 0 && shares_coeffs(tensors[k - 1], t)) {
      const TensorStepArgs<Base, Rule, P>& same = step_args_[k - 1];
      args.base = same.base;
      args.rule = same.rule;
      args.prestep = same.prestep;
      if constexpr (has_scalars) next_scalars_[k] = next_scalars_[k - 1];
      return;
    }
    contract::Scalars<Base> scalars{};
    if constexpr (has_scalars) std::copy(t.scalars, t.scalars + scalars.size(), scalars.begin());
    args.base = detail::base_coeffs<Base, S>(h.base, *t.steps + 1, t.new_arrays, scalars);
    args.rule = Rule::template coeffs<S>(h.rule, args.base.scale * h.lr_factor);
    args.prestep.unscale = S(1.0 / options.grad_scale);
    args.prestep.gradient_scale = S(h.maximize ? -clip : clip);
    args.prestep.decay_factor = S(1.0 - h.decoupled_decay_step());
    args.prestep.weight_decay = S(h.weight_decay);
    detail::refuse_overflow(args, h, needs, t.group, *t.steps + 1, kernel_);
    if constexpr (has_scalars) next_scalars_[k] = scalars;
  }

  static bool shares_coeffs(const Refs& a, const Refs& b) {
    if (a.group != b.group || *a.steps != *b.steps || a.new_arrays != b.new_arrays) return false;
    if constexpr (has_scalars)
      return std::equal(a.scalars, a.scalars + contract::scalar_count<Base>, b.scalars);
    return true;
  }

  std::vector<detail::GroupNeeds> group_needs_;  // per group: the arrays its settings use, its decays
  detail::ChunkedStep<P> chunked_;
  detail::ChunkStep kernel_ = nullptr;  // the kernel this plan's commit steps with (dispatch.hpp)
  std::vector<TensorStepArgs<Base, Rule, P>> step_args_;  // per tensor: its arrays and this step's coefficients
  std::vector<contract::Scalars<Base>> next_scalars_;      // per tensor: its scalar state after the step
};

// Steps tensors[k] with the settings groups[tensors[k].group] and the call's options, through
// `work`, which a caller keeps between calls so that its steps allocate nothing. Everything is
// checked before anything changes: a call that throws has changed no parameter, state array,
// step count or scalar. Results are bit-identical at any thread count.
template <class Base, class Rule, class P>
const StepReport& step_tensors(const std::vector<TensorRefs<Base, P>>& tensors,
                               const std::vector<Hyper<Base, Rule>>& groups, const StepOptions& options,
                               StepWork<Base, Rule, P>& work) {
  work.plan(tensors.data(), tensors.size(), groups.data(), groups.size(), options);
  return work.commit(tensors.data(), tensors.size());
}

// The same for one group of settings (every tensor's group 0), with a work list of its own.
template <class Base, class Rule, class P>
StepReport step_tensors(const std::vector<TensorRefs<Base, P>>& tensors, const Hyper<Base, Rule>& settings,
                        const StepOptions& options = {}) {
  StepWork<Base, Rule, P> work;
  work.plan(tensors.data(), tensors.size(), &settings, 1, options);
  return work.commit(tensors.data(), tensors.size());
}

}  // namespace multopt
