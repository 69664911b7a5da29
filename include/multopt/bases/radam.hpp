// RAdam, Adam with its variance rectified, as torch.optim.RAdam: while the rectification
// term ρ_t is at most 5 the direction is the bare first moment.
#pragma once

#include <cmath>

#include "../keywords.hpp"
#include "moment_params.hpp"

namespace multopt::bases {

struct Radam {
  static constexpr const char* name = "radam";
  static constexpr const char* alias = "RAdam";  // multopt::RAdam is this base with the additive rule

  using Params = MomentParams;

  // Slots: 0 the first moment m, 1 the second moment v.
  static constexpr int slot_count = 2;
  static constexpr const char* slot_names[slot_count] = {"exp_avg", "exp_avg_sq"};
  static bool uses_slot(const Params&, int /*slot*/) { return true; }
  static double initial_value(const Params&, int /*slot*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    S beta1, one_minus_beta1, beta2, one_minus_beta2, rect, eps;  // rect: r·√(1−β2^t)
    bool rectified;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long step, unsigned /*new_state_arrays*/) {
    const double t = double(step), beta2_t = std::pow(p.beta2, t);
    const double rho_inf = 2.0 / (1.0 - p.beta2) - 1.0;
    const double rho_t = rho_inf - 2.0 * t * beta2_t / (1.0 - beta2_t);
    const bool rectified = rho_t > 5.0;
    const double r = rectified ? std::sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                                           ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                               : 0.0;
    return {1.0 / (1.0 - std::pow(p.beta1, t)), S(p.beta1), S(1.0 - p.beta1), S(p.beta2), S(1.0 - p.beta2),
            S(r * std::sqrt(1.0 - beta2_t)), S(p.eps), rectified};
  }

  template <class V, class Slots, class S>
  static V direction(const V& g, const Slots& slot, const Coeffs<S>& c) {
    const auto [m, v] = update_moments(g, slot, c);
    return c.rectified ? m * c.rect / (sqrt(v) + c.eps) : m;
  }
};

}  // namespace multopt::bases
