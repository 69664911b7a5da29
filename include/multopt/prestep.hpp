// The stages every step applies before the base, in the order of docs/math.md: a loss-scaled
// gradient is unscaled, the clipping factor and maximize scale it, the decoupled decay shrinks θ, the coupled decay adds
// weight_decay·θ (the shrunk θ) to the gradient. The step loop loads θ and g through here; a
// stage that is off costs one well-predicted branch a packet.
#pragma once

#include "simd.hpp"

namespace multopt {

template <class S>
struct Prestep {
  S unscale = S(1);         // 1 / grad_scale (StepOptions), a multiply of its own as torch unscales
  S gradient_scale = S(1);  // min(1, max_grad_norm / (‖g‖ + 1e-6)), negated to maximize
  S decay_factor = S(1);    // 1 − lr_factor·decay_rate·decoupled_weight_decay
  S weight_decay = S(0);

  // θ as the base and the rule see it. (Templates, so that the packet type, which differs
  // between instruction sets, is part of their symbols: dispatch.hpp.)
  template <class V = simd::Vec<S>>
  V theta(const S* param) const {
    const auto theta = V::load(param);
    return decay_factor != S(1) ? decay_factor * theta : theta;
  }

  // g as the base sees it.
  template <class V = simd::Vec<S>>
  V gradient(const S* grad, const S* param) const {
    auto g = V::load(grad);
    if (unscale != S(1)) g = unscale * g;
    if (gradient_scale != S(1)) g = gradient_scale * g;
    if (weight_decay != S(0)) g = g + weight_decay * theta<V>(param);
    return g;
  }
};

}  // namespace multopt
