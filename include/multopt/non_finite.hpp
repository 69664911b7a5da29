// What a step does with a gradient that holds a NaN or an infinity, and the fast test for one.
#pragma once

#include <cstddef>
#include <limits>
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

// Whether x[begin, end) holds a NaN or an infinity: an element whose exponent bits are all
// set. Per packet one and, one compare and one or, with no chain of dependent arithmetic
// through the loop, so that on data in cache it runs at load speed.
template <class S>
bool has_non_finite(const S* x, std::size_t begin, std::size_t end) {
  namespace ei = Eigen::internal;
  using Packet = typename simd::Vec<S>::Packet;
  constexpr std::size_t width = simd::Vec<S>::size;
  const Packet exponent = ei::pset1<Packet>(std::numeric_limits<S>::infinity());  // its bits: the exponent's
  Packet found = ei::pset1<Packet>(S(0));
  std::size_t i = begin;
  for (; i + width <= end; i += width)
    found = ei::por(found, ei::pcmp_eq(ei::pand(ei::ploadu<Packet>(x + i), exponent), exponent));
  S lanes[width];
  ei::pstoreu(lanes, found);  // a lane that found one is all ones: a NaN
  bool any = false;
  for (S lane : lanes) any = any || lane != lane;
  for (; i < end; ++i) any = any || x[i] - x[i] != S(0);
  return any;
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
