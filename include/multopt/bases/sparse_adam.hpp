// SparseAdam, as torch.optim.SparseAdam: Adam whose eps is added to the uncorrected sqrt(v), the
// correction of both moments being in the step size. Made for gradients given as rows
// (docs/math.md, "Sparse rows"): a step updates the moments of the rows it touches only (lazy
// Adam), and the correction counts the tensor's steps.
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

  // Slots: 0 the first moment m, 1 the second moment v.
  static constexpr int slot_count = 2;
  static constexpr const char* slot_names[slot_count] = {"exp_avg", "exp_avg_sq"};
  static bool uses_slot(const Params&, int /*slot*/) { return true; }
  static double initial_value(const Params&, int /*slot*/) { return 0.0; }

  template <class S>
  struct Coeffs {
    double scale;
    S beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
  };
  template <class S>
  static Coeffs<S> coeffs(const Params& p, long step, unsigned /*new_state_arrays*/) {
    const double t = double(step);
    return {std::sqrt(1.0 - std::pow(p.beta2, t)) / (1.0 - std::pow(p.beta1, t)),
            S(p.beta1), S(1.0 - p.beta1), S(p.beta2), S(1.0 - p.beta2), S(p.eps)};
  }

  template <class V, class Slots, class S>
  static V direction(const V& g, const Slots& slot, const Coeffs<S>& c) {
    const auto [m, v] = update_moments(g, slot, c);
    return m / (sqrt(v) + c.eps);
  }
};

}  // namespace multopt::bases
