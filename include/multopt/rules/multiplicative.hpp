// The multiplicative rule of Kirtas, Passalis and Tefas (docs/math.md#rules-from-d-to-the-new-θ):
//   θ ← θ − s·lr_out·|θ|·tanh(lr_in·d)
// The step is proportional to |θ|: no weight changes sign, zeros stay zero, and the relative
// change per step is at most s·lr_out.
#pragma once

#include "../validate.hpp"
#include "rule.hpp"

namespace multopt::rules {

struct Multiplicative : Rule {
  static constexpr const char* name = "multiplicative";
  static constexpr const char* alias_prefix = "M";  // multopt::MAdam is Adam with this rule

  struct Params {
    double lr_in = 1.0;
    double lr_out = 1e-3;

    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position

    template <class Self, class Visit>
    static constexpr void fields(Self& p, Visit&& visit) {
      visit("lr_in", p.lr_in);
      visit("lr_out", p.lr_out);
    }
    void validate() const {
      require_in_range("lr_in", lr_in);
      require_in_range("lr_out", lr_out);
    }
  };

  // The step size that the decoupled weight decay scales by.
  static double decay_rate(const Params& p) { return p.lr_out; }

  template <class S>
  struct Coeffs { S lr_in, step; };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, double scale) {
    Coeffs<S> c;
    c.lr_in = S(p.lr_in);
    c.step = S(scale * p.lr_out);
    return c;
  }

  template <class V, class S>
  static V apply(const V& theta, const V& d, const Coeffs<S>& c) {
    return theta - c.step * abs(theta) * tanh(c.lr_in * d);
  }
};

}  // namespace multopt::rules
