// NAdam, Adam with Nesterov momentum, as torch.optim.NAdam (torch 2). The product of the
// momentum coefficients, mu_product, is a per-tensor scalar that coeffs() advances each step.
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
      require_non_negative("momentum_decay", momentum_decay);
    }
  };

  // Slots: 0 the first moment m, 1 the second moment v. Scalar 0: Π, the product of every μ_t.
  static constexpr int slot_count = 2;
  static constexpr const char* slot_names[slot_count] = {"exp_avg", "exp_avg_sq"};
  static bool uses_slot(const Params&, int /*slot*/) { return true; }
  static double initial_value(const Params&, int /*slot*/) { return 0.0; }
  static constexpr int scalar_count = 1;
  static constexpr const char* scalar_names[scalar_count] = {"mu_product"};
  static constexpr double scalar_initial[scalar_count] = {1.0};

  template <class S>
  struct Coeffs {
    double scale;
    S beta1, one_minus_beta1, beta2, one_minus_beta2, inv_bias2, eps, grad_weight, avg_weight;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long step, unsigned /*new_state_arrays*/, std::array<double, 1>& scalar) {
    const double t = double(step);
    const double mu = p.beta1 * (1.0 - 0.5 * std::pow(0.96, t * p.momentum_decay));
    const double mu_next = p.beta1 * (1.0 - 0.5 * std::pow(0.96, (t + 1.0) * p.momentum_decay));
    const double product = scalar[0] *= mu;
    return {1.0, S(p.beta1), S(1.0 - p.beta1), S(p.beta2), S(1.0 - p.beta2),
            S(1.0 / (1.0 - std::pow(p.beta2, t))), S(p.eps),
            S((1.0 - mu) / (1.0 - product)), S(mu_next / (1.0 - product * mu_next))};
  }

  template <class V, class Slots, class S>
  static V direction(const V& g, const Slots& slot, const Coeffs<S>& c) {
    const auto [m, v] = update_moments(g, slot, c);
    return (c.grad_weight * g + c.avg_weight * m) / (sqrt(v * c.inv_bias2) + c.eps);
  }
};

}  // namespace multopt::bases
