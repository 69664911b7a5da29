// The stages every step applies before the base, in the order of docs/math.md: the clipping
// factor and maximize scale the gradient, the decoupled decay shrinks θ, the coupled decay adds
// weight_decay·θ (the shrunk θ) to the gradient. The step loop loads θ and g through here; a
// stage that is off costs one well-predicted branch a packet.
#pragma once

#include "simd.hpp"

namespace multopt {

template <class S>
struct Prestep {
  S gradient_scale = S(1);  // min(1, max_grad_norm / (‖g‖ + 1e-6)), negated to maximize
  S decay_factor = S(1);    // 1 − lr_factor·decay_rate·decoupled_weight_decay
  S weight_decay = S(0);

  // θ as the base and the rule see it.
  simd::Vec<S> theta(const S* param) const {
    const auto theta = simd::Vec<S>::load(param);
    return decay_factor != S(1) ? decay_factor * theta : theta;
  }

  // g as the base sees it.
  simd::Vec<S> gradient(const S* grad, const S* param) const {
    auto g = simd::Vec<S>::load(grad);
    if (gradient_scale != S(1)) g = gradient_scale * g;
    if (weight_decay != S(0)) g = g + weight_decay * theta(param);
    return g;
  }
};

}  // namespace multopt
