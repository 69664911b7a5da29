// The hybrid rule (docs/math.md#rules-from-d-to-the-new-θ): a g_mix share of the multiplicative step plus a
// (1 − g_mix) share of the additive one, so that weights can still cross zero:
//   θ ← θ − g_mix·s·lr_out·|θ|·tanh(lr_in·d) − (1 − g_mix)·s·lr·d
#pragma once

#include "../validate.hpp"
#include "rule.hpp"

namespace multopt::rules {

struct Hybrid : Rule {
  static constexpr const char* name = "hybrid";
  static constexpr const char* alias_prefix = "H";  // multopt::HAdam is Adam with this rule

  struct Params {
    double lr_in = 1.0;
    double lr_out = 1e-3;
    double lr = 1e-3;
    double g_mix = 1.0;

    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position

    template <class Self, class Visit>
    static constexpr void fields(Self& p, Visit&& visit) {
      visit("lr_in", p.lr_in);
      visit("lr_out", p.lr_out);
      visit("lr", p.lr);
      visit("g_mix", p.g_mix);
    }
    void validate() const {
      require_in_range("lr_in", lr_in);
      require_in_range("lr_out", lr_out);
      require_in_range("lr", lr);
      require_in_range("g_mix", g_mix);
    }
  };

  // The step size that the decoupled weight decay scales by: the mix of the two.
  static double decay_rate(const Params& p) { return p.g_mix * p.lr_out + (1.0 - p.g_mix) * p.lr; }

  template <class S>
  struct Coeffs { S lr_in, multiplicative_step, additive_step; };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, double scale) {
    Coeffs<S> c;
    c.lr_in = S(p.lr_in);
    c.multiplicative_step = S(p.g_mix * scale * p.lr_out);
    c.additive_step = S((1.0 - p.g_mix) * scale * p.lr);
    return c;
  }

  template <class V, class S>
  static V apply(const V& theta, const V& d, const Coeffs<S>& c) {
    return theta - c.multiplicative_step * abs(theta) * tanh(c.lr_in * d) - c.additive_step * d;
  }
};

}  // namespace multopt::rules
