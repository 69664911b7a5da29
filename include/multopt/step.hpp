// The one loop that walks a tensor: every base × rule combination steps through here.
// Each element of parameter, gradient and state is read once and written once, one SIMD
// packet at a time. The last partial packet goes through the same packet code on a padded
// copy, so every element sees the same arithmetic wherever it sits in the array.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>

#include "simd.hpp"

namespace multopt {

// One tensor's step: where its arrays are and the coefficients of this step.
template <class Base, class Rule, class S>
struct TensorStep {
  S* param;
  const S* grad;
  std::size_t size;
  std::array<S*, Base::slot_count> slots;  // null where the base does not use the slot
  typename Base::template Coeffs<S> base;
  typename Rule::template Coeffs<S> rule;
  S weight_decay;
};

namespace detail {

// A base's view of its state arrays at the current packet.
template <class S, std::size_t N>
struct SlotCursor {
  const std::array<S*, N>& slots;
  std::size_t offset;
  simd::Vec<S> load(int k) const { return simd::Vec<S>::load(slots[k] + offset); }
  void store(int k, const simd::Vec<S>& v) const { v.store(slots[k] + offset); }
};

template <class Base, class Rule, class S>
inline void step_packet(const TensorStep<Base, Rule, S>& t, S* param, const S* grad,
                        const std::array<S*, Base::slot_count>& slots, std::size_t i) {
  using V = simd::Vec<S>;
  const V theta = V::load(param + i);
  V g = V::load(grad + i);
  if (t.weight_decay != S(0)) g = g + t.weight_decay * theta;  // coupled L2, as torch.optim
  g = Rule::transform_gradient(g, t.rule);
  const V d = Base::direction(g, SlotCursor<S, Base::slot_count>{slots, i}, t.base);
  Rule::apply(theta, d, t.rule).store(param + i);
}

}  // namespace detail

template <class Base, class Rule, class S>
void step_tensor(const TensorStep<Base, Rule, S>& t) {
  constexpr std::size_t width = simd::Vec<S>::size;
  const std::size_t full = t.size - t.size % width;
  for (std::size_t i = 0; i < full; i += width) detail::step_packet(t, t.param, t.grad, t.slots, i);
  if (full == t.size) return;

  const std::size_t rest = t.size - full;
  S param[width] = {}, grad[width] = {}, state[Base::slot_count][width] = {};
  std::array<S*, Base::slot_count> slots{};
  std::copy_n(t.param + full, rest, param);
  std::copy_n(t.grad + full, rest, grad);
  for (std::size_t k = 0; k < slots.size(); ++k) {
    if (!t.slots[k]) continue;
    slots[k] = state[k];
    std::copy_n(t.slots[k] + full, rest, state[k]);
  }
  detail::step_packet(t, param, grad, slots, 0);
  std::copy_n(param, rest, t.param + full);
  for (std::size_t k = 0; k < slots.size(); ++k)
    if (slots[k]) std::copy_n(state[k], rest, t.slots[k] + full);
}

}  // namespace multopt
