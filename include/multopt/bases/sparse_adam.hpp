// SparseAdam, as torch.optim.SparseAdam (docs/math.md#sparse-rows): Adam whose ε is added to the
// uncorrected √v, the correction of both moments being in the scale:
//   m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²   (update_moments, moment_params.hpp)
//   d = m / (√v + ε)
//   s = √(1 − β2^t) / (1 − β1^t)
// Made for gradients given as rows: a step updates the moments of the rows it touches only (lazy
// Adam), and t counts the tensor's steps.
#pragma once

#include <cmath>

#include "moment_params.hpp"

namespace multopt::bases {

struct SparseAdam {
  static constexpr const char* name = "sparse_adam";
  static constexpr const char* alias = "SparseAdam";  // multopt::SparseAdam is this base with the additive rule

  struct Params : MomentParams {
    constexpr Params() noexcept {}  // not an aggregate: fields are set by name, never by position
  };

  // State arrays, named as torch.optim's: m and v.
  enum Array : int { exp_avg, exp_avg_sq, array_count };
  static constexpr const char* array_names[array_count] = {"exp_avg", "exp_avg_sq"};
  static bool uses_array(const Params&, int /*array*/) { return true; }
  static double initial_value(const Params&, int /*array*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    MomentCoeffs<S> moments;
    S eps;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long step, unsigned /*new_state_arrays*/) {
    const double t = double(step);
    Coeffs<S> c;
    c.scale = std::sqrt(1.0 - std::pow(p.beta2, t)) / (1.0 - std::pow(p.beta1, t));
    c.moments = MomentCoeffs<S>::of(p);
    c.eps = S(p.eps);
    return c;
  }

  template <class V, class Arrays, class S>
  static V direction(const V& g, const Arrays& arrays, const Coeffs<S>& c) {
    const auto [m, v] = update_moments<SparseAdam>(g, arrays, c.moments);
    return m / (sqrt(v) + c.eps);
  }
};

}  // namespace multopt::bases
