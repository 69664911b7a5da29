// How a parameter and its state are stored, as distinct from how they are computed
// (docs/mixed-precision.md). float and double are stored as they are computed. A 16-bit
// parameter (Eigen::bfloat16, Eigen::half) is a way of storing a float: the step loop (step.hpp)
// widens it into float, every base and rule computes in float, and the store rounds, in one of
// three ways (Rounding). The state of a step computed in float may be stored in 16 bits too
// (StateStorage). conversions.hpp converts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "simd.hpp"
#include "validate.hpp"

namespace multopt {

template <class P>
inline constexpr bool is_16bit = std::is_same_v<P, Eigen::bfloat16> || std::is_same_v<P, Eigen::half>;

// The type a parameter of type P is computed in, and its state stored in.
template <class P>
using Arithmetic = std::conditional_t<is_16bit<P>, float, P>;

// How a step stores its fp32 result in a 16-bit parameter.
enum class Rounding {
  master,      // the optimizer keeps an fp32 copy, steps it, and stores it rounded to nearest even
  nearest,     // rounded to nearest even: an update below half a unit in the last place is lost
  stochastic,  // up or down with the probabilities that make the expected stored value exact
};

inline const char* rounding_name(Rounding rounding) {
  switch (rounding) {
    case Rounding::master: return "master";
    case Rounding::nearest: return "nearest";
    case Rounding::stochastic: return "stochastic";
  }
  return "unknown";
}

// How a state array is stored: as the step computes (float or double), or, for a step that
// computes in float, in 16 bits (docs/mixed-precision.md, "16-bit state"). A 16-bit array is
// widened as the step reads it and rounded as it stores it, to nearest even (stochastically where
// the parameters are: Rounding::stochastic).
enum class StateStorage { compute, bfloat16, float16 };

inline const char* state_storage_name(StateStorage storage) {
  switch (storage) {
    case StateStorage::compute: return "compute";
    case StateStorage::bfloat16: return "bfloat16";
    case StateStorage::float16: return "float16";
  }
  return "unknown";
}

// An optimizer's storage mode: how 16-bit parameters are rounded (the seed keys stochastic
// rounding's random bits), and how the state arrays are stored.
struct StorageMode {
  Rounding rounding = Rounding::master;
  std::uint64_t seed = 0;
  StateStorage state = StateStorage::compute;
};

// A storage mode for parameters of type P: double parameters and state are stored as computed,
// so they take none; float parameters take 16-bit state alone; a 16-bit type takes any rounding
// and any state storage.
template <class P>
void check_storage(const StorageMode& storage) {
  if (storage.state != StateStorage::compute && storage.state != StateStorage::bfloat16 &&
      storage.state != StateStorage::float16)
    reject("state storage", double(storage.state), "compute, bfloat16 or float16");
  if (std::is_same_v<P, double> && storage.state != StateStorage::compute)
    throw std::invalid_argument(std::string("multopt: state storage = ") + state_storage_name(storage.state) +
                                " is for parameters computed in float (float, Eigen::bfloat16, Eigen::half), "
                                "not double");
  if (!is_16bit<P> && (storage.rounding != Rounding::master || storage.seed != 0))
    throw std::invalid_argument("multopt: float and double parameters are stored as computed; rounding modes and "
                                "their seeds are for Eigen::bfloat16 and Eigen::half parameters");
  if (storage.rounding != Rounding::master && storage.rounding != Rounding::nearest &&
      storage.rounding != Rounding::stochastic)
    reject("rounding", double(storage.rounding), "master, nearest or stochastic");
}

// A 16-bit tensor's gradient: of the parameter's type (as autograd gives it) or fp32 (as
// gradient accumulation gives it); one of the two is set.
template <class P>
struct Gradient16 {
  const P* narrow = nullptr;
  const float* wide = nullptr;
};

template <class P>
using GradientPointer = std::conditional_t<is_16bit<P>, Gradient16<P>, const P*>;

// Where a state array of a step computed in float lies, and how it is stored; made from the
// array's pointer.
struct FloatStatePointer {
  FloatStatePointer() = default;
  FloatStatePointer(std::nullptr_t) {}
  FloatStatePointer(float* data) : data(data) {}
  FloatStatePointer(Eigen::bfloat16* data) : data(data), storage(StateStorage::bfloat16) {}
  FloatStatePointer(Eigen::half* data) : data(data), storage(StateStorage::float16) {}
  explicit operator bool() const { return data != nullptr; }
  // The array where it is stored as computed, else null.
  float* wide() const { return storage == StateStorage::compute ? static_cast<float*>(data) : nullptr; }
  // The array from its element `index` on (every type but float is two bytes an element).
  FloatStatePointer from(std::size_t index) const {
    FloatStatePointer rest = *this;
    if (data) rest.data = static_cast<char*>(data) + index * (storage == StateStorage::compute ? 4 : 2);
    return rest;
  }

  void* data = nullptr;
  StateStorage storage = StateStorage::compute;
};

// A state array's pointer for a step computed in S: a double step's state is double.
template <class S>
using StatePointer = std::conditional_t<std::is_same_v<S, float>, FloatStatePointer, S*>;

}  // namespace multopt
