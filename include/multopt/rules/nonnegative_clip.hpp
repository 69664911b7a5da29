// Additive rule for weights that must stay non-negative (analog hardware; docs/math.md#rules-from-d-to-the-new-θ):
//   θ ← max(θ − s·lr·d, 0)
#pragma once

#include "additive.hpp"

namespace multopt::rules {

struct NonNegativeClip : Additive {
  static constexpr const char* name = "nonnegative_clip";

  template <class V, class S>
  static V apply(const V& theta, const V& d, const Coeffs<S>& c) {
    return max(Additive::apply(theta, d, c), V(S(0)));
  }
};

}  // namespace multopt::rules
