// Adagrad with learning-rate decay and an initial accumulator, as torch.optim.Adagrad
// (docs/math.md#adagrad):
//   S ← S + g²                  (S starts at initial_accumulator_value)
//   d = g / (√S + ε)
//   s = 1 / (1 + (t − 1)·lr_decay)   the learning-rate decay, applied by the rule
#pragma once

#include "../keywords.hpp"
#include "../validate.hpp"

MULTOPT_KEYWORD(lr_decay)
MULTOPT_KEYWORD(initial_accumulator_value)

namespace multopt::bases {

struct Adagrad {
  static constexpr const char* name = "adagrad";
  static constexpr const char* alias = "Adagrad";  // multopt::Adagrad is this base with the additive rule

  struct Params {
    double lr_decay = 0.0;
    double initial_accumulator_value = 0.0;
    double eps = 1e-10;

    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position

    template <class Self, class Visit>
    static constexpr void fields(Self& p, Visit&& visit) {
      visit("lr_decay", p.lr_decay);
      visit("initial_accumulator_value", p.initial_accumulator_value);
      visit("eps", p.eps);
    }
    void validate() const {
      require_in_range("lr_decay", lr_decay);
      require_in_range("initial_accumulator_value", initial_accumulator_value);
      require_in_range("eps", eps);
    }
  };

  // State array, named as torch.optim's: the sum of squared gradients S.
  enum Array : int { sum, array_count };
  static constexpr const char* array_names[array_count] = {"sum"};
  static bool uses_array(const Params&, int /*array*/) { return true; }
  static double initial_value(const Params& p, int /*array*/) { return p.initial_accumulator_value; }

  template <class S>
  struct Coeffs {
    double scale;
    S eps;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long step, unsigned /*new_state_arrays*/) {
    Coeffs<S> c;
    c.scale = 1.0 / (1.0 + double(step - 1) * p.lr_decay);
    c.eps = S(p.eps);
    return c;
  }

  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    const V total = arrays.load(sum) + g * g;
    arrays.store(sum, total);
    return g / (sqrt(total) + c.eps);
  }
};

}  // namespace multopt::bases
