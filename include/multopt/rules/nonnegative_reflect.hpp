// Additive rule for weights that must stay non-negative, reflecting at zero (docs/math.md#rules-from-d-to-the-new-θ):
//   θ ← |θ − s·lr·d|
#pragma once

#include "additive.hpp"

namespace multopt::rules {

struct NonNegativeReflect : Additive {
  static constexpr const char* name = "nonnegative_reflect";

  template <class V, class S>
  static V apply(const V& theta, const V& d, const Coeffs<S>& c) {
    return abs(Additive::apply(theta, d, c));
  }
};

}  // namespace multopt::rules
