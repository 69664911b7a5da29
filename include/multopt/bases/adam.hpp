// Adam with bias correction and optional AMSGrad, as torch.optim.Adam.
#pragma once

#include <cmath>

#include "../keywords.hpp"
#include "moment_params.hpp"

MULTOPT_KEYWORD(amsgrad)

namespace multopt::bases {

struct Adam {
  static constexpr const char* name = "adam";
  static constexpr const char* alias = "Adam";  // multopt::Adam is this base with the additive rule

  struct Params : MomentParams {
    bool amsgrad = false;

    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position

    template <class Self, class Visit>
    static constexpr void fields(Self& p, Visit&& visit) {
      MomentParams::fields(p, visit);
      visit("amsgrad", p.amsgrad);
    }
  };

  // Slots: 0 the first moment m, 1 the second moment v, 2 the running max of v (AMSGrad).
  static constexpr int slot_count = 3;
  static constexpr const char* slot_names[slot_count] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  static bool uses_slot(const Params& p, int slot) { return slot < 2 || p.amsgrad; }
  static double initial_value(const Params&, int /*slot*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    S beta1, one_minus_beta1, beta2, one_minus_beta2, inv_sqrt_bias2, eps;
    bool amsgrad;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long step, unsigned /*new_state_arrays*/) {
    const double t = double(step);
    return {1.0 / (1.0 - std::pow(p.beta1, t)),
            S(p.beta1), S(1.0 - p.beta1), S(p.beta2), S(1.0 - p.beta2),
            S(1.0 / std::sqrt(1.0 - std::pow(p.beta2, t))), S(p.eps), p.amsgrad};
  }

  template <class V, class Slots, class S>
  static V direction(const V& g, const Slots& slot, const Coeffs<S>& c) {
    auto [m, v] = update_moments(g, slot, c);
    if (c.amsgrad) {
      v = max(slot.load(2), v);
      slot.store(2, v);
    }
    return m / (sqrt(v) * c.inv_sqrt_bias2 + c.eps);
  }
};

}  // namespace multopt::bases
