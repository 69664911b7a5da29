// Adam's two moments, which Adam, Adamax, NAdam and RAdam share: their settings (beta1 and beta2
// in [0, 1), eps >= 0, with torch.optim's defaults) and, but for Adamax, their update.
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
    require_in_half_open_unit_interval("beta1", beta1);
    require_in_half_open_unit_interval("beta2", beta2);
    require_non_negative("eps", eps);
  }
};

template <class V>
struct Moments {
  V m, v;
};

// The moments after gradient g, stored in state arrays 0 and 1: m = beta1 m + (1 - beta1) g and
// v = beta2 v + (1 - beta2) g^2.
template <class V, class Slots, class C>
Moments<V> update_moments(const V& g, const Slots& slot, const C& c) {
  const V m = c.beta1 * slot.load(0) + c.one_minus_beta1 * g;
  const V v = c.beta2 * slot.load(1) + c.one_minus_beta2 * g * g;
  slot.store(0, m);
  slot.store(1, v);
  return {m, v};
}

}  // namespace multopt::bases
