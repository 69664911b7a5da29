// RMSprop, optionally centered and with momentum, as torch.optim.RMSprop.
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
      require_in_unit_interval("alpha", alpha);  // 1 − α weighs g²: above 1 the mean square turns negative
      require_non_negative("eps", eps);
      require_in_unit_interval("momentum", momentum);  // above 1 the buffer grows as momentum^t
    }
  };

  // Slots: 0 the mean square q, 1 the momentum buffer b, 2 the mean gradient a (centered).
  static constexpr int slot_count = 3;
  static constexpr const char* slot_names[slot_count] = {"square_avg", "momentum_buffer", "grad_avg"};
  static bool uses_slot(const Params& p, int slot) {
    return slot == 0 || (slot == 1 && p.momentum > 0.0) || (slot == 2 && p.centered);
  }
  static double initial_value(const Params&, int /*slot*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    S alpha, one_minus_alpha, eps, momentum;
    bool centered, has_momentum;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long /*step*/, unsigned /*new_state_arrays*/) {
    return {1.0, S(p.alpha), S(1.0 - p.alpha), S(p.eps), S(p.momentum),
            p.centered, p.momentum > 0.0};
  }

  template <class V, class Slots, class S>
  static V direction(const V& g, const Slots& slot, const Coeffs<S>& c) {
    const V q = c.alpha * slot.load(0) + c.one_minus_alpha * g * g;
    slot.store(0, q);
    V avg = q;
    if (c.centered) {
      const V a = c.alpha * slot.load(2) + c.one_minus_alpha * g;
      slot.store(2, a);
      avg = q - a * a;
    }
    const V d = g / (sqrt(avg) + c.eps);
    if (!c.has_momentum) return d;
    const V b = c.momentum * slot.load(1) + d;
    slot.store(1, b);
    return b;
  }
};

}  // namespace multopt::bases
