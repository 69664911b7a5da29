// The settings of Adam's two moments, which Adam, Adamax, NAdam and RAdam share: beta1 and
// beta2 in [0, 1), eps >= 0, with torch.optim's defaults.
#pragma once

#include "../validate.hpp"

namespace multopt::bases {

struct MomentParams {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;

  constexpr MomentParams() noexcept {}  // not an aggregate: fields are set by name, never by position

  template <class Self, class Visit>
  static constexpr void fields(Self& p, Visit&& visit) {
    visit("beta1", p.beta1);
    visit("beta2", p.beta2);
    visit("eps", p.eps);
  }
  void validate() const {
    require_in_half_open_unit_interval("beta1", beta1);
    require_in_half_open_unit_interval("beta2", beta2);
    require_non_negative("eps", eps);
  }
};

}  // namespace multopt::bases
