// RMSprop, optionally centered and with momentum, as torch.optim.RMSprop (docs/math.md#rmsprop):
//   q ← α·q + (1 − α)·g²
//   a ← α·a + (1 − α)·g                 (centered only)
//   u = g / (√(q − a²) + ε)  (centered)  or  g / (√q + ε)
//   d = u,  or with μ > 0:  b ← μ·b + u,  d = b
//   s = 1
#pragma once

#include "../keywords.hpp"
#include "../validate.hpp"

MULTOPT_KEYWORD(alpha)
MULTOPT_KEYWORD(centered)

namespace multopt::bases {

struct Rmsprop {
  static constexpr const char* name = "rmsprop";
  static constexpr const char* alias = "RMSprop";  // multopt::RMSprop is this base with the additive rule

  struct Params {
    double alpha = 0.99;
    double eps = 1e-8;
    double momentum = 0.0;
    bool centered = false;

    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position

    template <class Self, class Visit>
    static constexpr void fields(Self& p, Visit&& visit) {
      visit("alpha", p.alpha);
      visit("eps", p.eps);
      visit("momentum", p.momentum);
      visit("centered", p.centered);
    }
    void validate() const {
      require_in_range("alpha", alpha);
      require_in_range("eps", eps);
      require_in_range("momentum", momentum);
    }
  };

  // State arrays, named as torch.optim's: the mean square q, the momentum buffer b and the mean
  // gradient a (centered).
  enum Array : int { square_avg, momentum_buffer, grad_avg, array_count };
  static constexpr const char* array_names[array_count] = {"square_avg", "momentum_buffer", "grad_avg"};
  static bool uses_array(const Params& p, int array) {
    return array == square_avg || (array == momentum_buffer && p.momentum > 0.0) || (array == grad_avg && p.centered);
  }
  static double initial_value(const Params&, int /*array*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    S alpha, one_minus_alpha, eps, momentum;
    bool centered, has_momentum;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long /*step*/, unsigned /*new_state_arrays*/) {
    Coeffs<S> c;
    c.scale = 1.0;
    c.alpha = S(p.alpha);
    c.one_minus_alpha = S(1.0 - p.alpha);
    c.eps = S(p.eps);
    c.momentum = S(p.momentum);
    c.centered = p.centered;
    c.has_momentum = p.momentum > 0.0;
    return c;
  }

  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    const V q = c.alpha * arrays.load(square_avg) + c.one_minus_alpha * g * g;
    arrays.store(square_avg, q);
    V avg = q;
    if (c.centered) {
      const V a = c.alpha * arrays.load(grad_avg) + c.one_minus_alpha * g;
      arrays.store(grad_avg, a);
      avg = q - a * a;
    }
    const V d = g / (sqrt(avg) + c.eps);
    if (!c.has_momentum) return d;
    const V b = c.momentum * arrays.load(momentum_buffer) + d;
    arrays.store(momentum_buffer, b);
    return b;
  }
};

}  // namespace multopt::bases
