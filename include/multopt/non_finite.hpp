// What a step does with a gradient that holds a NaN or an infinity (gradient_scan.hpp finds them).
#pragma once

#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

#include "simd.hpp"
#include "storage.hpp"

namespace multopt {

enum class NonFinitePolicy {
  propagate,    // step as usual: the NaN or infinity reaches parameters and state (torch.optim's way)
  skip,         // leave that tensor's parameters, state and step count as they are; step the others
  skip_all,     // leave every tensor as it is if any gradient holds one (a loss scaler's skipped step)
  throw_error,  // throw NonFiniteGradient before anything changes
};

inline const char* policy_name(NonFinitePolicy policy) {
  switch (policy) {
    case NonFinitePolicy::propagate: return "propagate";
    case NonFinitePolicy::skip: return "skip";
    case NonFinitePolicy::skip_all: return "skip_all";
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

// The index of the first NaN or infinity in x[0, size), or size if there is none.
template <class G>
std::size_t first_non_finite(const G* x, std::size_t size) {
  using S = Arithmetic<G>;
  std::size_t i = 0;
  while (i < size && static_cast<S>(x[i]) - static_cast<S>(x[i]) == S(0)) ++i;
  return i;
}
template <class P>
std::size_t first_non_finite(const Gradient16<P>& g, std::size_t size) {
  return g.wide ? first_non_finite(g.wide, size) : first_non_finite(g.narrow, size);
}

// Element i of a gradient, as a double.
template <class G>
double element(const G* x, std::size_t i) {
  return double(static_cast<Arithmetic<G>>(x[i]));
}
template <class P>
double element(const Gradient16<P>& g, std::size_t i) {
  return g.wide ? element(g.wide, i) : element(g.narrow, i);
}

}  // namespace detail
}  // namespace multopt
