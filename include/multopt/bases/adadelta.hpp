// Adadelta, as torch.optim.Adadelta (docs/math.md#adadelta): the step is scaled by the running
// size of past steps, so that its additive lr defaults to 1.0.
//   a ← ρ·a + (1 − ρ)·g²
//   d = √(b + ε) / √(a + ε) · g
//   b ← ρ·b + (1 − ρ)·d²
//   s = 1
#pragma once

#include "../keywords.hpp"
#include "../validate.hpp"

MULTOPT_KEYWORD(rho)

namespace multopt::bases {

struct Adadelta {
  static constexpr const char* name = "adadelta";
  static constexpr const char* alias = "Adadelta";  // multopt::Adadelta is this base with the additive rule
  static constexpr double default_lr = 1.0;  // the rules' additive lr, as torch's

  struct Params {
    double rho = 0.9;
    double eps = 1e-6;

    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position

    template <class Self, class Visit>
    static constexpr void fields(Self& p, Visit&& visit) {
      visit("rho", p.rho);
      visit("eps", p.eps);
    }
    void validate() const {
      require_in_range("rho", rho);
      require_in_range("eps", eps);
    }
  };

  // State arrays, named as torch.optim's: the mean square gradient a and the mean square step b.
  enum Array : int { square_avg, acc_delta, array_count };
  static constexpr const char* array_names[array_count] = {"square_avg", "acc_delta"};
  static bool uses_array(const Params&, int /*array*/) { return true; }
  static double initial_value(const Params&, int /*array*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    S rho, one_minus_rho, eps;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long /*step*/, unsigned /*new_state_arrays*/) {
    Coeffs<S> c;
    c.scale = 1.0;
    c.rho = S(p.rho);
    c.one_minus_rho = S(1.0 - p.rho);
    c.eps = S(p.eps);
    return c;
  }

  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    const V a = c.rho * arrays.load(square_avg) + c.one_minus_rho * g * g, b = arrays.load(acc_delta);
    const V d = sqrt(b + c.eps) / sqrt(a + c.eps) * g;
    arrays.store(square_avg, a);
    arrays.store(acc_delta, c.rho * b + c.one_minus_rho * d * d);
    return d;
  }
};

}  // namespace multopt::bases
