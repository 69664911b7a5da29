// What the libtorch adapter (torch_step.hpp) sees of torch: the parameter dtypes it steps and
// how torch's lr becomes multopt's settings. Only includers need libtorch.
#pragma once

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../multopt.hpp"

namespace multopt::adapters {

// The parameter dtypes multopt steps, each with the C++ type it steps as: the one place where
// a torch dtype becomes a multopt storage type.
using TorchStorageTypes = TypeList<float, double, Eigen::bfloat16, Eigen::half>;

// The C++ type torch keeps a dtype's values in: P, or for 16-bit P c10's type of the same bits
// (bfloat16: the upper half of a float; half: IEEE binary16).
template <class P>
struct TorchElement {
  using type = P;
};
template <>
struct TorchElement<Eigen::bfloat16> {
  using type = c10::BFloat16;
};
template <>
struct TorchElement<Eigen::half> {
  using type = c10::Half;
};

template <class P>
constexpr c10::ScalarType torch_dtype() { return c10::CppTypeToScalarType<typename TorchElement<P>::type>::value; }

// A tensor's values as P: torch's 16-bit types and Eigen's are the same bits, so the pointer is
// reinterpreted.
template <class P, class T = typename TorchElement<P>::type>
P* data_as(const at::Tensor& tensor) {
  static_assert(sizeof(T) == sizeof(P) && alignof(T) == alignof(P), "torch's and multopt's types differ in layout");
  return reinterpret_cast<P*>(tensor.data_ptr<T>());
}

// Calls f(tag) with decltype(tag)::type the storage type of `dtype`; refuses any other dtype.
template <class F>
void with_storage_type(c10::ScalarType dtype, F&& f) {
  bool found = false;
  for_each_type(TorchStorageTypes{}, [&](auto tag) {
    using P = typename decltype(tag)::type;
    if (!found && dtype == torch_dtype<P>()) {
      found = true;
      f(tag);
    }
  });
  if (found) return;
  std::string known;
  for_each_type(TorchStorageTypes{}, [&](auto tag) {
    known += (known.empty() ? "" : ", ") + std::string(c10::toString(torch_dtype<typename decltype(tag)::type>()));
  });
  throw std::invalid_argument("multopt: parameters of dtype " + std::string(c10::toString(dtype)) +
                              " are not supported; supported: " + known);
}

// The settings a group's torch-style values stand for. torch's schedulers change only "lr";
// the additive rule uses it as it is, and the other rules scale lr_out by lr / initial_lr, so
// that a scheduler moves the multiplicative step as it moves the additive one. The
// multiplicative rule has no lr of its own: there "lr" only carries the schedule.
inline NamedValues torch_settings(const std::string& rule, const NamedValues& values) {
  NamedHyper given(values);
  const bool scaled = rule != "additive" && given.has("lr_out") && given.has("lr") && given.has("initial_lr");
  // A scheduler's lr, refused by its own name before it scales lr_out.
  if (scaled && given.get("lr") != given.get("initial_lr")) require_in_range("lr", given.get("lr"));
  const double factor =
      scaled && given.get("initial_lr") != 0.0 ? given.get("lr") / given.get("initial_lr") : 1.0;
  NamedValues settings;
  for (const auto& [name, value] : values) {
    if (name == "initial_lr" || (name == "lr" && rule == "multiplicative")) continue;
    settings.emplace_back(name, name == "lr_out" && factor != 1.0 ? value * factor : value);
  }
  return settings;
}

}  // namespace multopt::adapters
