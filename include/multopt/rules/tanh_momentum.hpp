// Multiplicative SGD with the tanh moved inside the momentum (docs/math.md#rules-from-d-to-the-new-θ): SGD runs on
// g ← tanh(lr_in·g), and its direction d updates, with no further tanh,
//   θ ← θ − s·lr_out·|θ|·d
#pragma once

#include <type_traits>

#include "../bases/sgd.hpp"
#include "multiplicative.hpp"

namespace multopt::rules {

struct TanhMomentum : Multiplicative {
  static constexpr const char* name = "multiplicative_tanh_momentum";

  template <class Base>
  static constexpr bool supports = std::is_same_v<Base, bases::Sgd>;

  template <class V, class S>
  static V transform_gradient(const V& g, const Coeffs<S>& c) { return tanh(c.lr_in * g); }

  template <class V, class S>
  static V apply(const V& theta, const V& d, const Coeffs<S>& c) {
    return theta - c.step * abs(theta) * d;
  }
};

}  // namespace multopt::rules
