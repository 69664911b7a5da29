// What a step does with a gradient that holds a NaN or an infinity, and the fast test for one.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

#include "simd.hpp"

namespace multopt {

enum class NonFinitePolicy {
  propagate,    // step as usual: the NaN or infinity reaches parameters and state (torch.optim's way)
  skip,         // leave that tensor's parameters, state and step count as they are; step the others
  throw_error,  // throw NonFiniteGradient before anything changes
};

inline const char* to_string(NonFinitePolicy policy) {
  switch (policy) {
    case NonFinitePolicy::propagate: return "propagate";
    case NonFinitePolicy::skip: return "skip";
    case NonFinitePolicy::throw_error: return "throw_error";
  }
  return "unknown";
}

// Thrown by step() under NonFinitePolicy::throw_error; names the first bad element.
class NonFiniteGradient : public std::invalid_argument {
 public:
  NonFiniteGradient(std::size_t tensor, std::size_t index, double value)
      : std::invalid_argument("multopt: the gradient of tensor " + std::to_string(tensor) + " holds " +
                              std::to_string(value) + " at element " + std::to_string(index) +
                              "; nothing was stepped (non-finite policy: throw_error)"),
        tensor_(tensor),
        index_(index) {}
  std::size_t tensor() const { return tensor_; }
  std::size_t index() const { return index_; }

 private:
  std::size_t tensor_, index_;
};

namespace detail {

// Whether x[begin, end) holds a NaN or an infinity. x·0 is NaN exactly for those, and a sum
// with a NaN in it stays NaN: one multiply-add per packet, one test at the end. (Under
// -ffinite-math-only, which -ffast-math implies, the compiler may assume there is none.)
template <class S>
bool has_non_finite(const S* x, std::size_t begin, std::size_t end) {
  using V = simd::Vec<S>;
  const V zero(S(0));
  V sum(S(0));
  std::size_t i = begin;
  for (; i + V::size <= end; i += V::size) sum = sum + V::load(x + i) * zero;
  S total = simd::sum(sum);
  for (; i < end; ++i) total += x[i] * S(0);
  return total != total;
}

// The index of the first NaN or infinity in x[0, size), or size if there is none.
template <class S>
std::size_t first_non_finite(const S* x, std::size_t size) {
  std::size_t i = 0;
  while (i < size && x[i] - x[i] == S(0)) ++i;
  return i;
}

}  // namespace detail
}  // namespace multopt
