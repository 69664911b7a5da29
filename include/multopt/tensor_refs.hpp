// What a caller hands the public step (step_tensors.hpp) for each tensor: where its parameter,
// gradient and state arrays are, and its step count and scalar state, all in the caller's
// memory; the settings that hold for the whole call; and what a base needs of that memory,
// so that a framework can make the state arrays itself (docs/api.md, "Bring your own state").
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "chunks.hpp"
#include "contract.hpp"
#include "gradient_rows.hpp"
#include "non_finite.hpp"
#include "step.hpp"
#include "storage.hpp"
#include "validate.hpp"

namespace multopt {

// The largest step count a tensor may hold: a tensor at it cannot step again (its next count
// would not fit a long with room to count on), and a checkpoint may hold it.
inline constexpr long max_step_count = std::numeric_limits<long>::max() - 1;

// One tensor as its caller holds it. The step reads and writes the arrays in place; after a
// step that did not skip the tensor, *steps is one more and the scalars are advanced.
template <class Base, class P>
struct TensorRefs {
  using S = Arithmetic<P>;
  P* param = nullptr;
  GradientPointer<P> grad{};  // for 16-bit P: of type P or fp32
  std::size_t size = 0;
  // The base's state arrays in the order of its enum Array (state_arrays() names them), `size`
  // values each; null where the group's settings do not use one (a non-null array they do not
  // use is left alone). Of a step computed in float, each may be float, Eigen::bfloat16 or
  // Eigen::half (16-bit state, StateStorage); of one computed in double, double.
  std::array<StatePointer<S>, std::size_t(Base::array_count)> state{};
  S* master = nullptr;  // 16-bit P under Rounding::master: the fp32 weights ("master_weights")
  // The moving average of the weights ("ema"), `size` values, where StepOptions::ema_decay is set;
  // new_ema: it was made since the tensor's last step, and the step sets it to θ.
  S* ema = nullptr;
  bool new_ema = false;
  long* steps = nullptr;  // the steps the tensor has taken
  double* scalars = nullptr;  // Base's scalar state (NAdam's mu_product); null for a base without
  // Bit k: state array k was made since the tensor's last step and holds its initial value. SGD
  // starts a new momentum buffer from the gradient, as torch.optim does.
  unsigned new_arrays = 0;
  std::size_t group = 0;  // which of the call's groups of settings the tensor steps with
  // A gradient given as rows (an embedding table's, as torch's sparse COO gradient holds it):
  // where rows.given(), the parameter is a table of size / rows.width rows, and grad holds
  // rows.count rows of rows.width values, the k-th that of table row rows.indices[k] (in any
  // order; a repeated row's values are summed). Only those rows and their state step.
  RowIndices rows{};
};

// The settings of a whole call (those of one group are its Hyper).
struct StepOptions {
  // Clipping by the norm of all the call's gradients together (torch.nn.utils.clip_grad_norm_);
  // +inf turns it off.
  double max_grad_norm = std::numeric_limits<double>::infinity();
  NonFinitePolicy non_finite_policy = NonFinitePolicy::propagate;
  StorageMode storage{};  // 16-bit parameters only; float and double take the default
  ThreadSettings threading{};
  // The exponential moving average of the weights (weight_average.hpp), d in [0, 1): every
  // tensor stepped updates its "ema" array, ema ← d·ema + (1 − d)·θ. Unset: none.
  std::optional<double> ema_decay{};
  // The factor the loss was multiplied by (loss scaling): gradients are divided by it as they
  // are read, before clipping; the norm clipped by is the unscaled gradients'. 1: none.
  double grad_scale = 1.0;
};

// What a call did: the norm it clipped by (NaN when not clipping) and the tensors it left alone
// because of a non-finite gradient (policies skip and skip_all), in increasing order.
struct StepReport {
  double grad_norm = std::numeric_limits<double>::quiet_NaN();
  std::vector<std::size_t> skipped;
};

// One state array a base needs for given settings.
struct StateArrayInfo {
  const char* name;  // torch.optim's name for it
  int index;         // its place in TensorRefs::state, or master_array for the master weights
  double initial;    // every element's value when it is made; the master weights start as the parameters
  // How it is stored: a base's arrays as StorageMode::state says; the master weights and the
  // moving average as computed (a 16-bit average with d = 0.999 could not move: its updates
  // would be below half a unit in its last place).
  StateStorage storage = StateStorage::compute;
};
inline constexpr int master_array = -1;
inline constexpr int ema_array = -2;  // the moving average of the weights: set to θ at its first step

// The arrays a tensor of parameters P needs with these settings (Base::Params) and storage mode,
// and with `ema` a moving average of the weights.
template <class Base, class P>
std::vector<StateArrayInfo> state_arrays(const typename Base::Params& params, const StorageMode& storage = {},
                                         bool ema = false) {
  std::vector<StateArrayInfo> arrays;
  for (int array = 0; array < Base::array_count; ++array)
    if (Base::uses_array(params, array))
      arrays.push_back({Base::array_names[array], array, Base::initial_value(params, array), storage.state});
  if (is_16bit<P> && storage.rounding == Rounding::master) arrays.push_back({"master_weights", master_array, 0.0});
  if (ema) arrays.push_back({"ema", ema_array, 0.0});
  return arrays;
}

namespace detail {

[[noreturn]] inline void refuse_tensor(std::size_t tensor, const std::string& what) {
  throw std::invalid_argument("multopt: tensor " + std::to_string(tensor) + " " + what + "; nothing was stepped");
}

[[noreturn]] inline void refuse_missing_state(std::size_t tensor, const char* name, std::size_t group) {
  refuse_tensor(tensor, "has no " + std::string(name) + ", which the settings of group " + std::to_string(group) + " use");
}

// Each option's check, which the step and Optimizer's setters share.
inline void check_max_grad_norm(double max_norm) {
  if (!(max_norm > 0.0)) reject("max_grad_norm", max_norm, "> 0 (+inf turns clipping off)");
}
inline void check_non_finite_policy(NonFinitePolicy policy) {
  if (policy != NonFinitePolicy::propagate && policy != NonFinitePolicy::skip &&
      policy != NonFinitePolicy::skip_all && policy != NonFinitePolicy::throw_error)
    reject("non_finite_policy", double(policy), "propagate, skip, skip_all or throw_error");
}
inline void check_ema_decay(const std::optional<double>& decay) {
  if (decay) require_in_range("ema_decay", *decay);
}
// A scale whose reciprocal, the factor the step multiplies by, is a normal number of S.
template <class S>
void check_grad_scale(double scale) {
  const double unscale = 1.0 / scale;
  if (!(scale > 0.0 && unscale >= double(std::numeric_limits<S>::min()) &&
        unscale <= double(std::numeric_limits<S>::max())))
    reject("grad_scale", scale, "> 0, with 1/grad_scale a normal number of the type the step computes in");
}
inline void check_threading(const ThreadSettings& threading) {
  if (threading.threads < 0 || threading.threads > ThreadSettings::max_threads)
    reject("threads", threading.threads, "in [0, 1024]");
  if (threading.chunk == 0) reject("chunk", 0.0, "> 0");
}

template <class P>
void check_step_options(const StepOptions& options) {
  check_max_grad_norm(options.max_grad_norm);
  check_non_finite_policy(options.non_finite_policy);
  check_storage<P>(options.storage);
  check_threading(options.threading);
  check_ema_decay(options.ema_decay);
  check_grad_scale<Arithmetic<P>>(options.grad_scale);
}

// Tensor k of a call but its state arrays: a group of the call, a step count that can advance,
// finite scalar state (`scalar_count` values named `scalar_names`), the pointers a step needs.
// Compiled once per P, for every base.
template <class P>
void check_tensor_fields(std::size_t k, std::size_t group, std::size_t group_count, const long* steps,
                         const double* scalars, const char* const* scalar_names, int scalar_count, std::size_t size,
                         const P* param, const GradientPointer<P>& grad, const Arithmetic<P>* master,
                         const RowIndices& rows, const StorageMode& storage) {
  if (group >= group_count)
    refuse_tensor(k, "is of group " + std::to_string(group) + ", and the call has " + std::to_string(group_count));
  if (!steps) refuse_tensor(k, "has no step count (steps is a null pointer)");
  if (*steps < 0 || *steps >= max_step_count)
    refuse_tensor(k, "has taken " + std::to_string(*steps) + " steps; a step needs a count in [0, " +
                         std::to_string(max_step_count) + ")");
  if (scalar_count > 0 && !scalars) refuse_tensor(k, "has no scalar state (" + std::string(scalar_names[0]) + ", ...)");
  for (int s = 0; s < scalar_count; ++s)
    if (!std::isfinite(scalars[s]))
      refuse_tensor(k, "has " + std::string(scalar_names[s]) + " = " + std::to_string(scalars[s]) +
                           ", which must be finite");
  if (rows.given()) {
    if (rows.width == 0 || size % rows.width != 0)
      refuse_tensor(k, "has " + std::to_string(size) + " elements, which are no whole number of rows of " +
                           std::to_string(rows.width));
    if (rows.count > 0 && !rows.indices)
      refuse_tensor(k, "has " + std::to_string(rows.count) + " gradient rows and no row indices (a null pointer)");
  }
  if (size == 0 || (rows.given() && rows.count == 0)) return;
  if (!param) refuse_tensor(k, "has a null param");
  if constexpr (is_16bit<P>) {
    if (!grad.narrow && !grad.wide) refuse_tensor(k, "has a null grad");
    if (storage.rounding == Rounding::master && !master)
      refuse_tensor(k, "has no master_weights, which Rounding::master steps");
  } else {
    (void)master;
    if (!grad) refuse_tensor(k, "has a null grad");
  }
}

// What a step reads of a group's settings beyond its coefficients: the state arrays they use and
// the decays that a gradient given as rows refuses; so that check_tensor_refs is compiled once
// per base, not once per base × rule.
struct GroupNeeds {
  unsigned arrays = 0;  // bit k for array k
  double weight_decay = 0.0;
  double decoupled_weight_decay = 0.0;

  bool uses(std::size_t array) const { return (arrays >> array) & 1u; }
};

// Tensor k of a call: check_tensor_fields, and every state array its group's settings use.
template <class Base, class P>
void check_tensor_refs(std::size_t k, const TensorRefs<Base, P>& t, const GroupNeeds* groups, std::size_t group_count,
                       const StepOptions& options) {
  const StorageMode& storage = options.storage;
  const char* const* scalar_names = nullptr;
  if constexpr (contract::scalar_count<Base> > 0) scalar_names = Base::scalar_names;
  check_tensor_fields<P>(k, t.group, group_count, t.steps, t.scalars, scalar_names, contract::scalar_count<Base>,
                         t.size, t.param, t.grad, t.master, t.rows, storage);
  const GroupNeeds& needs = groups[t.group];
  if (t.rows.given()) {
    for (const auto& [name, decay] : {std::pair<const char*, double>{"weight_decay", needs.weight_decay},
                                      {"decoupled_weight_decay", needs.decoupled_weight_decay}})
      if (decay != 0.0)
        refuse_tensor(k, "has a gradient given as rows, and " + std::string(name) + " = " + std::to_string(decay) +
                             " (group " + std::to_string(t.group) + ") would change every row");
    if (options.ema_decay)
      refuse_tensor(k, "has a gradient given as rows, and ema_decay = " + std::to_string(*options.ema_decay) +
                           " would move every row's average");
  }
  if (t.size == 0) return;
  if (options.ema_decay && !t.ema)
    refuse_tensor(k, "has no ema, which ema_decay = " + std::to_string(*options.ema_decay) + " updates");
  for (int array = 0; array < Base::array_count; ++array) {
    if (!needs.uses(std::size_t(array))) continue;
    const auto& state = t.state[std::size_t(array)];
    if (!state) refuse_missing_state(k, Base::array_names[array], t.group);
    if constexpr (std::is_same_v<Arithmetic<P>, float>)
      if (state.storage != storage.state)
        refuse_tensor(k, "has its " + std::string(Base::array_names[array]) + " stored as " +
                             state_storage_name(state.storage) + ", and the storage mode's state is " +
                             state_storage_name(storage.state));
  }
}

}  // namespace detail
}  // namespace multopt
