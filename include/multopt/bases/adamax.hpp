// Adamax, Adam's infinity-norm variant, as torch.optim.Adamax (docs/math.md#adamax):
//   m ← β1·m + (1 − β1)·g
//   u ← max(β2·u, |g| + ε)
//   d = m / u
//   s = 1 / (1 − β1^t)   the first moment's bias correction, applied by the rule
#pragma once

#include <cmath>

#include "../keywords.hpp"
#include "moment_params.hpp"

namespace multopt::bases {

struct Adamax {
  static constexpr const char* name = "adamax";
  static constexpr const char* alias = "Adamax";  // multopt::Adamax is this base with the additive rule

  using Params = MomentParams;

  // State arrays, named as torch.optim's: m and the exponentially weighted infinity norm u.
  enum Array : int { exp_avg, exp_inf, array_count };
  static constexpr const char* array_names[array_count] = {"exp_avg", "exp_inf"};
  static bool uses_array(const Params&, int /*array*/) { return true; }
  static double initial_value(const Params&, int /*array*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    S beta1, one_minus_beta1, beta2, eps;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long step, unsigned /*new_state_arrays*/) {
    Coeffs<S> c;
    c.scale = 1.0 / (1.0 - std::pow(p.beta1, double(step)));
    c.beta1 = S(p.beta1);
    c.one_minus_beta1 = S(1.0 - p.beta1);
    c.beta2 = S(p.beta2);
    c.eps = S(p.eps);
    return c;
  }

  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    const V m = c.beta1 * arrays.load(exp_avg) + c.one_minus_beta1 * g;
    const V u = max(c.beta2 * arrays.load(exp_inf), abs(g) + c.eps);
    arrays.store(exp_avg, m);
    arrays.store(exp_inf, u);
    return m / u;
  }
};

}  // namespace multopt::bases
