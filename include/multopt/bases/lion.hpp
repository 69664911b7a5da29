// Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023): the sign of an
// interpolation of momentum and gradient (docs/math.md#lion). Its weight decay is
// decoupled_weight_decay.
//   d = sign(β1·m + (1 − β1)·g)     (sign(0) = 0)
//   m ← β2·m + (1 − β2)·g
//   s = 1
#pragma once

#include "../keywords.hpp"
#include "../validate.hpp"

namespace multopt::bases {

struct Lion {
  static constexpr const char* name = "lion";
  static constexpr const char* alias = "Lion";  // multopt::Lion is this base with the additive rule

  struct Params {
    double beta1 = 0.9;
    double beta2 = 0.99;

    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position

    template <class Self, class Visit>
    static constexpr void fields(Self& p, Visit&& visit) {
      visit("beta1", p.beta1);
      visit("beta2", p.beta2);
    }
    // Lion's betas may be 1 (the paper's range), unlike Adam's: a range of their own, not
    // setting_ranges' beta1 and beta2 (validate.hpp).
    void validate() const {
      require_in_unit_interval("beta1", beta1);
      require_in_unit_interval("beta2", beta2);
    }
  };

  // State array: the momentum m, named as Adam's first moment.
  enum Array : int { exp_avg, array_count };
  static constexpr const char* array_names[array_count] = {"exp_avg"};
  static bool uses_array(const Params&, int /*array*/) { return true; }
  static double initial_value(const Params&, int /*array*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    S beta1, one_minus_beta1, beta2, one_minus_beta2;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long /*step*/, unsigned /*new_state_arrays*/) {
    Coeffs<S> c;
    c.scale = 1.0;
    c.beta1 = S(p.beta1);
    c.one_minus_beta1 = S(1.0 - p.beta1);
    c.beta2 = S(p.beta2);
    c.one_minus_beta2 = S(1.0 - p.beta2);
    return c;
  }

  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    const V m = arrays.load(exp_avg);
    arrays.store(exp_avg, c.beta2 * m + c.one_minus_beta2 * g);
    return sign(c.beta1 * m + c.one_minus_beta1 * g);
  }
};

}  // namespace multopt::bases
