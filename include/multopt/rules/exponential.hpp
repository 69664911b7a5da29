// The exponential rule (docs/math.md#rules-from-d-to-the-new-θ):
//   θ ← θ·2^(−s·lr_out·sign(θ)·tanh(lr_in·d))
// Like the multiplicative rule it keeps signs and zeros, but scales |θ| by a factor in
// [2^−s·lr_out, 2^s·lr_out].
#pragma once

#include <cmath>

#include "multiplicative.hpp"
#include "rule.hpp"

namespace multopt::rules {

struct Exponential : Rule {
  static constexpr const char* name = "exponential";
  static constexpr const char* alias_prefix = "E";  // multopt::EAdam is Adam with this rule

  // The multiplicative rule's settings: for small steps the two rules are the same, with
  // lr_out·ln 2 here for lr_out there (docs/math.md).
  using Params = Multiplicative::Params;

  // The step size that the decoupled weight decay scales by.
  static double decay_rate(const Params& p) { return p.lr_out; }

  // 2^x is computed as e^(x·ln 2), so the step carries the factor ln 2.
  template <class S>
  struct Coeffs { S lr_in, step_ln2; };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, double scale) {
    Coeffs<S> c;
    c.lr_in = S(p.lr_in);
    c.step_ln2 = S(scale * p.lr_out * std::log(2.0));
    return c;
  }

  template <class V, class S>
  static V apply(const V& theta, const V& d, const Coeffs<S>& c) {
    // A zero stays zero even where the factor overflows (0·inf would be NaN).
    return keep_zeros(theta, theta * exp(-flip_sign_by(c.step_ln2 * tanh(c.lr_in * d), theta)));
  }
};

}  // namespace multopt::rules
