// Adamax, Adam's infinity-norm variant, as torch.optim.Adamax.
#pragma once

#include <cmath>

#include "../keywords.hpp"
#include "moment_params.hpp"

namespace multopt::bases {

struct Adamax {
  static constexpr const char* name = "adamax";
  static constexpr const char* alias = "Adamax";  // multopt::Adamax is this base with the additive rule

  using Params = MomentParams;

  // Slots: 0 the first moment m, 1 the exponentially weighted infinity norm u.
  static constexpr int slot_count = 2;
  static constexpr const char* slot_names[slot_count] = {"exp_avg", "exp_inf"};
  static bool uses_slot(const Params&, int /*slot*/) { return true; }
  static double initial_value(const Params&, int /*slot*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    S beta1, one_minus_beta1, beta2, eps;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long step, unsigned /*new_state_arrays*/) {
    return {1.0 / (1.0 - std::pow(p.beta1, double(step))), S(p.beta1), S(1.0 - p.beta1), S(p.beta2), S(p.eps)};
  }

  template <class V, class Slots, class S>
  static V direction(const V& g, const Slots& slot, const Coeffs<S>& c) {
    const V m = c.beta1 * slot.load(0) + c.one_minus_beta1 * g;
    const V u = max(c.beta2 * slot.load(1), abs(g) + c.eps);
    slot.store(0, m);
    slot.store(1, u);
    return m / u;
  }
};

}  // namespace multopt::bases
