// What the torch adapter (torch_steps.hpp) refuses before it changes anything: a parameter and
// gradient it cannot step in place, settings the optimizer would refuse, and state that does not
// fit the parameter or the base.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "../multopt.hpp"
#include "torch_types.hpp"

namespace multopt::adapters::detail {

// A bf16 or fp16 tensor.
inline bool is_narrow(const at::Tensor& tensor) {
  return tensor.scalar_type() == at::kBFloat16 || tensor.scalar_type() == at::kHalf;
}

inline void check_pair(const at::Tensor& param, const at::Tensor& grad, std::size_t group, std::size_t k) {
  const std::string which = "parameter " + std::to_string(k) + " of group " + std::to_string(group);
  if (!param.device().is_cpu())
    throw std::invalid_argument("multopt: " + which + " is on " + param.device().str() + "; multopt steps CPU tensors");
  if (param.is_sparse() || grad.is_sparse() || grad.layout() != at::kStrided)
    throw std::invalid_argument("multopt: " + which + " has a sparse gradient; multopt steps dense tensors");
  if (!grad.device().is_cpu())
    throw std::invalid_argument("multopt: the gradient of " + which + " is on " + grad.device().str());
  if (!param.is_contiguous() || !grad.is_contiguous())
    throw std::invalid_argument("multopt: " + which + (param.is_contiguous() ? "'s gradient" : "") +
                                " is not contiguous (strides " + c10::str(param.is_contiguous() ? grad.strides() : param.strides()) +
                                "); multopt steps contiguous tensors");
  const bool narrow = is_narrow(param);
  if (grad.scalar_type() != param.scalar_type() && !(narrow && grad.scalar_type() == at::kFloat))
    throw std::invalid_argument("multopt: the gradient of " + which + " is " + c10::toString(grad.scalar_type()) +
                                " but the parameter is " + c10::toString(param.scalar_type()) +
                                (narrow ? " (its gradient may be that or Float)" : ""));
  if (grad.numel() != param.numel())
    throw std::invalid_argument("multopt: the gradient of " + which + " has " + std::to_string(grad.numel()) +
                                " elements but the parameter has " + std::to_string(param.numel()));
}

template <class S>
void check_settings(const AnyOptimizer<S>& opt, const NamedValues& values) {
  NamedHyper hyper = opt.hyper(0);
  for (const auto& [name, value] : values) hyper.set(name, value);
  opt.check_hyper(hyper);
}

// A state array's name: one of the base's states, and not a scalar.
inline bool is_array_state(const std::vector<std::string>& state_names, const std::vector<std::string>& scalar_names,
                           const std::string& name) {
  return std::find(state_names.begin(), state_names.end(), name) != state_names.end() &&
         std::find(scalar_names.begin(), scalar_names.end(), name) == scalar_names.end();
}
[[noreturn]] inline void unknown_state(const std::string& base, const std::vector<std::string>& state_names,
                                       const std::string& name) {
  std::string known;
  for (const auto& n : state_names) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("multopt: " + base + " has no state '" + name + "'; it has: step, " + known);
}

// The state as TorchSteps::set_state_of takes it in (base: its name, state_names and
// scalar_names: TorchSteps'), or an exception naming what does not fit.
inline TorchTensorState checked_state(const at::Tensor& param, TorchTensorState state, const std::string& base,
                                      const std::vector<std::string>& state_names,
                                      const std::vector<std::string>& scalar_names) {
  if (state.steps < 0) reject("step", double(state.steps), ">= 0");
  c10::ScalarType compute = param.scalar_type();
  with_storage_type(param.scalar_type(), [&](auto tag) { compute = torch_dtype<Arithmetic<typename decltype(tag)::type>>(); });
  const auto copied = [&](const std::string& name, const at::Tensor& array) {
    if (array.numel() != param.numel())
      throw std::invalid_argument("multopt: state '" + name + "' has " + std::to_string(array.numel()) +
                                  " elements but its parameter has " + std::to_string(param.numel()));
    return array.detach().to(compute).contiguous().clone();
  };
  for (auto& [name, array] : state.arrays) {
    if (!is_array_state(state_names, scalar_names, name)) unknown_state(base, state_names, name);
    array = copied(name, array);
  }
  if (state.master_weights.defined()) {
    if (compute == param.scalar_type())
      throw std::invalid_argument(std::string("multopt: master weights are for bfloat16 and float16 parameters, not ") +
                                  c10::toString(param.scalar_type()) + " (copy them into the parameter instead)");
    state.master_weights = copied("master_weights", state.master_weights);
  }
  for (const auto& [name, value] : state.scalars) {
    if (std::find(scalar_names.begin(), scalar_names.end(), name) == scalar_names.end()) unknown_state(base, state_names, name);
    multopt::detail::finite_state(name, value);
  }
  return state;
}

}  // namespace multopt::adapters::detail
