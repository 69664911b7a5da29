// A base's state by name, as torch.optim names it: its state arrays (array_names) and its
// per-tensor scalars (scalar_names, where it has any), for Optimizer's named-state API.
#pragma once

#include <cmath>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "contract.hpp"
#include "validate.hpp"

namespace multopt::detail {

// Every state name of the base: its arrays, then its scalars.
template <class Base>
std::vector<std::string> state_names_of() {
  std::vector<std::string> names(std::begin(Base::array_names), std::end(Base::array_names));
  if constexpr (contract::scalar_count<Base> > 0) names.insert(names.end(), std::begin(Base::scalar_names), std::end(Base::scalar_names));
  return names;
}

// The arrays a tensor holds now, then every scalar (a tensor always holds its scalars).
template <class Base, class Arrays>
std::vector<std::string> held_state_names(const Arrays& arrays) {
  std::vector<std::string> held;
  for (int k = 0; k < Base::array_count; ++k)
    if (!arrays[std::size_t(k)].empty()) held.emplace_back(Base::array_names[k]);
  const auto all = state_names_of<Base>();
  held.insert(held.end(), all.begin() + Base::array_count, all.end());
  return held;
}

// The scalar's index, or -1 where `name` is not one of the base's scalars.
template <class Base>
int scalar_index(std::string_view name) {
  if constexpr (contract::scalar_count<Base> > 0)
    for (int k = 0; k < contract::scalar_count<Base>; ++k)
      if (name == Base::scalar_names[k]) return k;
  return -1;
}

template <class Base>
[[noreturn]] void unknown_state(std::string_view name) {
  std::string known;
  for (const auto& n : state_names_of<Base>()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("multopt: " + std::string(Base::name) + " has no state '" + std::string(name) +
                              "'; it has: " + known);
}

// An index into the base's state arrays (its enum Array), or out_of_range.
template <class Base>
int checked_array(int array) {
  if (array < 0 || array >= Base::array_count)
    throw std::out_of_range("multopt: state array " + std::to_string(array) + " does not exist (" +
                            std::string(Base::name) + " has " + std::to_string(Base::array_count) + ")");
  return array;
}

// The index of the state array `name`; a scalar's name is refused with where to find it.
template <class Base>
int array_of(std::string_view name) {
  for (int k = 0; k < Base::array_count; ++k)
    if (name == Base::array_names[k]) return k;
  if (scalar_index<Base>(name) >= 0) {
    throw std::invalid_argument("multopt: " + std::string(Base::name) + " state '" + std::string(name) +
                                "' is one number per tensor, not an array: use scalar_state and set_scalar_state");
  }
  unknown_state<Base>(name);
}

// The index of the scalar state `name`; an array's name is refused with where to find it.
template <class Base>
int scalar_of(std::string_view name) {
  const int k = scalar_index<Base>(name);
  if (k >= 0) return k;
  for (const char* array : Base::array_names) {
    if (name == array)
      throw std::invalid_argument("multopt: " + std::string(Base::name) + " state '" + std::string(name) +
                                  "' is an array: use state and set_state");
  }
  unknown_state<Base>(name);
}

// A scalar state's new value, which must be finite.
inline double finite_state(std::string_view name, double value) {
  if (!std::isfinite(value)) reject("state " + std::string(name), value, "finite");
  return value;
}

}  // namespace multopt::detail
