// Adam's two moments, which Adam, Adamax, NAdam and RAdam share: their settings (beta1, beta2 and
// eps, with torch.optim's defaults; their ranges in validate.hpp's setting_ranges) and, but for
// Adamax, their update.
#pragma once

#include "../validate.hpp"

namespace multopt::bases {

struct MomentParams {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;

  constexpr MomentParams() noexcept {}  // not an aggregate: fields are set by name, never by position

  template <class Self, class Visit>
  static constexpr void fields(Self& p, Visit&& visit) {
    visit("beta1", p.beta1);
    visit("beta2", p.beta2);
    visit("eps", p.eps);
  }
  void validate() const {
    require_in_range("beta1", beta1);
    require_in_range("beta2", beta2);
    require_in_range("eps", eps);
  }
};

template <class V>
struct Moments {
  V m, v;
};

// The coefficients of update_moments, filled from the settings by name.
template <class S>
struct MomentCoeffs {
  S beta1, one_minus_beta1, beta2, one_minus_beta2;

  static MomentCoeffs of(const MomentParams& p) {
    MomentCoeffs c;
    c.beta1 = S(p.beta1);
    c.one_minus_beta1 = S(1.0 - p.beta1);
    c.beta2 = S(p.beta2);
    c.one_minus_beta2 = S(1.0 - p.beta2);
    return c;
  }
};

// The moments after gradient g, stored in Base's state arrays exp_avg and exp_avg_sq:
// m = beta1 m + (1 - beta1) g and v = beta2 v + (1 - beta2) g^2.
template <class Base, class V, class Arrays, class S>
Moments<V> update_moments(const V& g, const Arrays& arrays, const MomentCoeffs<S>& c) {
  const V m = c.beta1 * arrays.load(Base::exp_avg) + c.one_minus_beta1 * g;
  const V v = c.beta2 * arrays.load(Base::exp_avg_sq) + c.one_minus_beta2 * g * g;
  arrays.store(Base::exp_avg, m);
  arrays.store(Base::exp_avg_sq, v);
  return {m, v};
}

}  // namespace multopt::bases
