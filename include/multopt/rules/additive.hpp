// The usual additive rule (docs/math.md#rules-from-d-to-the-new-θ):
//   θ ← θ − s·lr·d
#pragma once

#include "../validate.hpp"
#include "rule.hpp"

namespace multopt::rules {

struct Additive : Rule {
  static constexpr const char* name = "additive";
  static constexpr const char* alias_prefix = "";  // multopt::Adam is Adam with this rule

  struct Params {
    double lr = 1e-3;

    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position

    template <class Self, class Visit>
    static constexpr void fields(Self& p, Visit&& visit) { visit("lr", p.lr); }
    void validate() const { require_in_range("lr", lr); }
  };

  // The step size that the decoupled weight decay scales by.
  static double decay_rate(const Params& p) { return p.lr; }

  template <class S>
  struct Coeffs { S step; };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, double scale) {
    Coeffs<S> c;
    c.step = S(scale * p.lr);
    return c;
  }

  template <class V, class S>
  static V apply(const V& theta, const V& d, const Coeffs<S>& c) { return theta - c.step * d; }
};

}  // namespace multopt::rules
