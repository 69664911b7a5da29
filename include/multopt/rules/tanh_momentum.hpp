// Multiplicative SGD with the tanh moved inside the momentum: SGD runs on tanh(lr_in·g),
// and its direction d updates θ ← θ − s·lr_out·|θ|·d with no further tanh.
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
