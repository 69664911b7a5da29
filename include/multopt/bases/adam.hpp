// Adam with bias correction and optional AMSGrad, as torch.optim.Adam (docs/math.md#adam):
//   m ← β1·m + (1 − β1)·g                  (update_moments, moment_params.hpp)
//   v ← β2·v + (1 − β2)·g²
//   v ← max(v_max, v), stored as v_max     (AMSGrad only)
//   d = m / (√v / √(1 − β2^t) + ε)
//   s = 1 / (1 − β1^t)                     the first moment's bias correction, applied by the rule
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

  // State arrays, named as torch.optim's: m, v and the running max of v (AMSGrad).
  enum Array : int { exp_avg, exp_avg_sq, max_exp_avg_sq, array_count };
  static constexpr const char* array_names[array_count] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  static bool uses_array(const Params& p, int array) { return array != max_exp_avg_sq || p.amsgrad; }
  static double initial_value(const Params&, int /*array*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    MomentCoeffs<S> moments;
    S inv_sqrt_bias2, eps;
    bool amsgrad;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long step, unsigned /*new_state_arrays*/) {
    const double t = double(step);
    Coeffs<S> c;
    c.scale = 1.0 / (1.0 - std::pow(p.beta1, t));
    c.moments = MomentCoeffs<S>::of(p);
    c.inv_sqrt_bias2 = S(1.0 / std::sqrt(1.0 - std::pow(p.beta2, t)));
    c.eps = S(p.eps);
    c.amsgrad = p.amsgrad;
    return c;
  }

  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    auto [m, v] = update_moments<Adam>(g, arrays, c.moments);
    if (c.amsgrad) {
      v = max(arrays.load(max_exp_avg_sq), v);
      arrays.store(max_exp_avg_sq, v);
    }
    return m / (sqrt(v) * c.inv_sqrt_bias2 + c.eps);
  }
};

}  // namespace multopt::bases
