// NAdam, Adam with Nesterov momentum, as torch.optim.NAdam of torch 2 (docs/math.md#nadam):
//   μ_t = β1·(1 − ½·0.96^(t·ψ)),   μ_{t+1} = β1·(1 − ½·0.96^((t + 1)·ψ))
//   Π ← Π·μ_t                      (mu_product: per-tensor scalar state, advanced by coeffs())
//   m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²   (update_moments, moment_params.hpp)
//   d = [(1 − μ_t)/(1 − Π)·g + μ_{t+1}/(1 − Π·μ_{t+1})·m] / (√(v / (1 − β2^t)) + ε)
//   s = 1
#pragma once

#include <array>
#include <cmath>

#include "../keywords.hpp"
#include "../validate.hpp"
#include "moment_params.hpp"

MULTOPT_KEYWORD(momentum_decay)

namespace multopt::bases {

struct Nadam {
  static constexpr const char* name = "nadam";
  static constexpr const char* alias = "NAdam";  // multopt::NAdam is this base with the additive rule

  struct Params : MomentParams {
    double momentum_decay = 4e-3;

    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position

    template <class Self, class Visit>
    static constexpr void fields(Self& p, Visit&& visit) {
      MomentParams::fields(p, visit);
      visit("momentum_decay", p.momentum_decay);
    }
    void validate() const {
      MomentParams::validate();
      require_in_range("momentum_decay", momentum_decay);
    }
  };

  // State arrays, named as torch.optim's: m and v. Scalar state: Π, the product of every μ_t.
  enum Array : int { exp_avg, exp_avg_sq, array_count };
  static constexpr const char* array_names[array_count] = {"exp_avg", "exp_avg_sq"};
  static bool uses_array(const Params&, int /*array*/) { return true; }
  static double initial_value(const Params&, int /*array*/) { return 0.0; }
  enum Scalar : int { mu_product, scalar_count };
  static constexpr const char* scalar_names[scalar_count] = {"mu_product"};
  static constexpr double scalar_initial[scalar_count] = {1.0};

  template <class S>
  struct Coeffs {
    double scale;
    MomentCoeffs<S> moments;
    S inv_bias2, eps, grad_weight, avg_weight;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long step, unsigned /*new_state_arrays*/,
                          std::array<double, scalar_count>& scalar) {
    const double t = double(step);
    const double mu = p.beta1 * (1.0 - 0.5 * std::pow(0.96, t * p.momentum_decay));
    const double mu_next = p.beta1 * (1.0 - 0.5 * std::pow(0.96, (t + 1.0) * p.momentum_decay));
    const double product = scalar[mu_product] *= mu;
    Coeffs<S> c;
    c.scale = 1.0;
    c.moments = MomentCoeffs<S>::of(p);
    c.inv_bias2 = S(1.0 / (1.0 - std::pow(p.beta2, t)));
    c.eps = S(p.eps);
    c.grad_weight = S((1.0 - mu) / (1.0 - product));
    c.avg_weight = S(mu_next / (1.0 - product * mu_next));
    return c;
  }

  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    const auto [m, v] = update_moments<Nadam>(g, arrays, c.moments);
    return (c.grad_weight * g + c.avg_weight * m) / (sqrt(v * c.inv_bias2) + c.eps);
  }
};

}  // namespace multopt::bases
