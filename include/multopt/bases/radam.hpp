// RAdam, Adam with its variance rectified, as torch.optim.RAdam (docs/math.md#radam):
//   m, v as Adam's                 (update_moments, moment_params.hpp)
//   ρ∞ = 2/(1 − β2) − 1,   ρ_t = ρ∞ − 2t·β2^t / (1 − β2^t)
//   ρ_t > 5:  r = √[(ρ_t − 4)(ρ_t − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρ_t)],  d = m·r·√(1 − β2^t) / (√v + ε)
//   ρ_t ≤ 5:  d = m
//   s = 1 / (1 − β1^t)   the first moment's bias correction, applied by the rule
#pragma once

#include <cmath>

#include "../keywords.hpp"
#include "moment_params.hpp"

namespace multopt::bases {

struct Radam {
  static constexpr const char* name = "radam";
  static constexpr const char* alias = "RAdam";  // multopt::RAdam is this base with the additive rule

  using Params = MomentParams;

  // State arrays, named as torch.optim's: m and v.
  enum Array : int { exp_avg, exp_avg_sq, array_count };
  static constexpr const char* array_names[array_count] = {"exp_avg", "exp_avg_sq"};
  static bool uses_array(const Params&, int /*array*/) { return true; }
  static double initial_value(const Params&, int /*array*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    MomentCoeffs<S> moments;
    S rect, eps;  // rect: r·√(1−β2^t)
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
    Coeffs<S> c;
    c.scale = 1.0 / (1.0 - std::pow(p.beta1, t));
    c.moments = MomentCoeffs<S>::of(p);
    c.rect = S(r * std::sqrt(1.0 - beta2_t));
    c.eps = S(p.eps);
    c.rectified = rectified;
    return c;
  }

  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    const auto [m, v] = update_moments<Radam>(g, arrays, c.moments);
    return c.rectified ? m * c.rect / (sqrt(v) + c.eps) : m;
  }
};

}  // namespace multopt::bases
