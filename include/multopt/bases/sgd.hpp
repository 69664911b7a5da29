// SGD with momentum μ, dampening τ and Nesterov look-ahead, as torch.optim.SGD
// (docs/math.md#sgd):
//   μ = 0:  d = g
//   μ > 0:  b ← g on the buffer's first step, then b ← μ·b + (1 − τ)·g;  d = b, or g + μ·b (Nesterov)
//   s = 1
#pragma once

#include "../keywords.hpp"
#include "../validate.hpp"

MULTOPT_KEYWORD(dampening)
MULTOPT_KEYWORD(nesterov)

namespace multopt::bases {

struct Sgd {
  static constexpr const char* name = "sgd";
  static constexpr const char* alias = "SGD";  // multopt::SGD is this base with the additive rule

  struct Params {
    double momentum = 0.0;
    double dampening = 0.0;
    bool nesterov = false;

    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position

    template <class Self, class Visit>
    static constexpr void fields(Self& p, Visit&& visit) {
      visit("momentum", p.momentum);
      visit("dampening", p.dampening);
      visit("nesterov", p.nesterov);
    }
    void validate() const {
      require_in_range("momentum", momentum);
      require_number("dampening", dampening);  // any value, as torch.optim, but not NaN
      if (nesterov && !(momentum > 0.0 && dampening == 0.0))
        reject("nesterov", 1.0, "off unless momentum > 0 and dampening = 0");
    }
  };

  // State array, named as torch.optim's: the momentum buffer b.
  enum Array : int { momentum_buffer, array_count };
  static constexpr const char* array_names[array_count] = {"momentum_buffer"};
  static bool uses_array(const Params& p, int /*array*/) { return p.momentum > 0.0; }
  static double initial_value(const Params&, int /*array*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    S momentum, one_minus_dampening;
    bool has_momentum, nesterov, fresh_buffer;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long /*step*/, unsigned new_state_arrays) {
    Coeffs<S> c;
    c.scale = 1.0;
    c.momentum = S(p.momentum);
    c.one_minus_dampening = S(1.0 - p.dampening);
    c.has_momentum = p.momentum > 0.0;
    c.nesterov = p.nesterov;
    c.fresh_buffer = (new_state_arrays & (1u << momentum_buffer)) != 0;
    return c;
  }

  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    if (!c.has_momentum) return g;
    const V b = c.fresh_buffer ? g : c.momentum * arrays.load(momentum_buffer) + c.one_minus_dampening * g;
    arrays.store(momentum_buffer, b);
    return c.nesterov ? g + c.momentum * b : b;
  }
};

}  // namespace multopt::bases
