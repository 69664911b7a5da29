// The one loop that walks parameter arrays: every base × rule combination steps through here.
// Each element of parameter, gradient and state is read once and written once, one SIMD
// packet at a time (between the base and the rule, a block's directions wait in a small
// buffer). A tensor's last partial packet goes through the same packet code on a padded copy,
// so every element sees the same arithmetic wherever it sits, and the OpenMP split, whatever
// the thread count, gives results bit-identical to the serial loop. 16-bit parameters and
// 16-bit state go through the same float loop, a block at a time (step_blocks). A chunk of a
// tensor is sent to these loops by step_chunk.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "prestep.hpp"
#include "simd.hpp"
#include "conversions.hpp"
#include "storage.hpp"
#include "weight_average.hpp"

// One compiled copy of a function: never inlined, and with GCC never cloned either (its
// interprocedural passes would otherwise make a copy for a call with constant bounds, such as
// the padded tail's, and compile that copy's arithmetic differently).
#if defined(_MSC_VER)
#define MULTOPT_SINGLE_COPY __declspec(noinline)
#elif defined(__clang__)
#define MULTOPT_SINGLE_COPY __attribute__((noinline))
#else
#define MULTOPT_SINGLE_COPY __attribute__((noipa))
#endif

namespace multopt {

// The arguments of one tensor's step: where its arrays are and this step's coefficients. P is
// how the parameter is stored, S = Arithmetic<P> what it is computed in (storage.hpp).
template <class Base, class Rule, class P>
struct TensorStepArgs {
  using S = Arithmetic<P>;
  P* param;
  GradientPointer<P> grad;
  std::size_t size;
  std::array<S*, Base::array_count> arrays;  // null where the base does not use the array, or it is 16-bit
  // The 16-bit state arrays (of a step computed in float), where `narrow_state`; null elsewhere.
  std::array<FloatStatePointer, Base::array_count> narrow_arrays{};
  bool narrow_state = false;
  typename Base::template Coeffs<S> base;
  typename Rule::template Coeffs<S> rule;
  Prestep<S> prestep;
  S* master = nullptr;                  // 16-bit P under Rounding::master: the fp32 weights
  S* ema = nullptr;                     // the weights' moving average (StepOptions::ema_decay), or null
  WeightAverage<S> averaging{};         // how it moves, where there is one
  Rounding rounding = Rounding::master;  // 16-bit P: how the result is stored
  std::uint64_t rounding_key = 0;        // Rounding::stochastic: this tensor's step's key
  std::size_t offset = 0;                // Rounding::stochastic: the place of param[0] in its tensor
  // A gradient given as rows (TensorRefs::rows): the rows it touches, in increasing order, of
  // row_width elements each; grad holds their gradients one row after another, and `size` counts
  // those rows' elements alone.
  const std::size_t* rows = nullptr;
  std::size_t row_width = 0;
};

// Everything below runs in the step's kernels: compiled per instruction set (simd.hpp,
// dispatch.hpp).
namespace detail {
MULTOPT_ISA_BEGIN

// A base's view of its state arrays at the current packet.
template <class S, std::size_t N>
struct StateAtPacket {
  const std::array<S*, N>& arrays;
  std::size_t offset;
  simd::Vec<S> load(int k) const { return simd::Vec<S>::load(arrays[k] + offset); }
  void store(int k, const simd::Vec<S>& v) const { v.store(arrays[k] + offset); }
};

// Whole packets [begin, end), a block of packets at a time: first the base's direction of every
// packet of the block, into a small buffer, then the rule's update of every packet from it.
// Each element sees the same operations as in one fused loop; two short loops rather than one
// long one halve the chain of dependent operations a packet goes through (state update, square
// root, division, then the rule's tanh), so the processor overlaps more packets at once
// (measured in docs/performance.md).
// One compiled copy: a compiler may fuse multiplies and adds differently in each place a
// function is inlined or cloned (GCC does by default), so the full packets and the padded tail,
// wherever a tensor is cut, must run this one compiled loop.
// Where the tensor has a moving average of its weights, each block's is updated from θ right
// after the block's update (weight_average.hpp).
template <class Base, class Rule, class S>
MULTOPT_SINGLE_COPY void step_packets(const TensorStepArgs<Base, Rule, S>& t, S* param, const S* grad,
                                      const std::array<S*, Base::array_count>& arrays, S* ema, std::size_t begin,
                                      std::size_t end) {
  using V = simd::Vec<S>;
  constexpr std::size_t width = V::size, block = 32 * width;
  alignas(64) S direction[block];
  // Local copies: a store through param or a state array might, for all the compiler knows,
  // change t's coefficients or the array pointers, which it would then load again (and
  // broadcast) for every packet. The prestep stays read through t: copied too, it lets GCC
  // split the loop on its stages and fuse multiplies and adds differently in each copy, which
  // changes the last bit of some results.
  const auto base = t.base;
  const auto rule = t.rule;
  const std::array<S*, Base::array_count> state = arrays;
  for (std::size_t first = begin; first < end; first += block) {
    const std::size_t last = std::min(end, first + block);
    for (std::size_t i = first; i < last; i += width) {
      const V g = Rule::transform_gradient(t.prestep.gradient(grad + i, param + i), rule);
      Base::direction(g, StateAtPacket<S, Base::array_count>{state, i}, base).store(direction + (i - first));
    }
    for (std::size_t i = first; i < last; i += width)
      Rule::apply(t.prestep.theta(param + i), V::load(direction + (i - first)), rule).store(param + i);
    if (ema) t.averaging.update(param + first, ema + first, last - first);
  }
}

// The elements [full, size) that do not fill a packet, through a zero-padded packet.
template <class Base, class Rule, class S>
void step_tail(const TensorStepArgs<Base, Rule, S>& t, std::size_t full) {
  constexpr std::size_t width = simd::Vec<S>::size;
  const std::size_t rest = t.size - full;
  S param[width] = {}, grad[width] = {}, state[Base::array_count][width] = {}, ema[width] = {};
  std::array<S*, Base::array_count> arrays{};
  std::copy_n(t.param + full, rest, param);
  std::copy_n(t.grad + full, rest, grad);
  if (t.ema) std::copy_n(t.ema + full, rest, ema);
  for (std::size_t k = 0; k < arrays.size(); ++k) {
    if (!t.arrays[k]) continue;
    arrays[k] = state[k];
    std::copy_n(t.arrays[k] + full, rest, state[k]);
  }
  step_packets(t, param, grad, arrays, t.ema ? ema : nullptr, 0, width);
  std::copy_n(param, rest, t.param + full);
  if (t.ema) std::copy_n(ema, rest, t.ema + full);
  for (std::size_t k = 0; k < arrays.size(); ++k)
    if (arrays[k]) std::copy_n(state[k], rest, t.arrays[k] + full);
}

// Elements [begin, end) of a float or double tensor; begin is a multiple of the packet width.
template <class Base, class Rule, class S>
void step_float(const TensorStepArgs<Base, Rule, S>& t, std::size_t begin, std::size_t end) {
  constexpr std::size_t width = simd::Vec<S>::size;
  const std::size_t full = std::min(end, t.size - t.size % width);
  if (begin < full) step_packets(t, t.param, t.grad, t.arrays, t.ema, begin, full);
  if (end == t.size && full < end) step_tail(t, full);
}

// The key of state array `array`'s stochastic rounding at a step of key `key` (the parameters').
inline std::uint64_t state_rounding_key(std::uint64_t key, std::size_t array) {
  return mix64(key ^ (0x5851f42d4c957f2du * (array + 1)));
}

// A float tensor with 16-bit state, or a 16-bit tensor, a block at a time: what is 16-bit is
// widened into float buffers (a 16-bit parameter, or its master weights, and its gradient where
// it is not fp32), stepped by the float loop above, the same compiled code as
// Optimizer<Base, Rule, float>'s (so that fp32 values follow it bit for bit, however a compiler
// fuses multiplies and adds), and stored rounded. The buffers stay in the L1 cache: memory sees
// one read and one write of each 16-bit element. The moving average, fp32, follows the fp32
// result: the master weights, or θ before it is rounded.
template <class Base, class Rule, class P>
void step_blocks(const TensorStepArgs<Base, Rule, P>& t, std::size_t begin, std::size_t end) {
  constexpr std::size_t block = 1024;  // a multiple of every packet width
  alignas(64) float theta[block], gradient[block], state[Base::array_count][block];
  const bool stochastic = t.rounding == Rounding::stochastic;
  std::array<std::uint64_t, Base::array_count> state_keys{};  // each 16-bit array's, for stochastic rounding
  for (std::size_t k = 0; k < state_keys.size(); ++k)
    if (stochastic && t.narrow_arrays[k]) state_keys[k] = state_rounding_key(t.rounding_key, k);
  for (std::size_t first = begin; first < end; first += block) {
    const std::size_t n = std::min(end, first + block) - first;
    float* param = theta;
    const float* grad = gradient;
    if constexpr (is_16bit<P>) {
      if (t.master) param = t.master + first;
      else Storage<P>::widen(t.param + first, theta, n);
      if (t.grad.wide) grad = t.grad.wide + first;
      else Storage<P>::widen(t.grad.narrow + first, gradient, n);
    } else {
      param = t.param + first;
      grad = t.grad + first;
    }
    TensorStepArgs<Base, Rule, float> view{param, grad, n, {}, {}, false, t.base, t.rule, t.prestep};
    for (std::size_t k = 0; k < view.arrays.size(); ++k) {
      if (t.arrays[k]) view.arrays[k] = t.arrays[k] + first;
      if (!t.narrow_arrays[k]) continue;
      widen_state(t.narrow_arrays[k], first, state[k], n);
      view.arrays[k] = state[k];
    }
    view.ema = t.ema ? t.ema + first : nullptr;
    view.averaging = t.averaging;
    step_float(view, 0, n);
    for (std::size_t k = 0; k < view.arrays.size(); ++k)
      if (t.narrow_arrays[k])
        narrow_state(state[k], t.narrow_arrays[k], first, n, stochastic, state_keys[k], t.offset + first);
    if constexpr (is_16bit<P>) {
      if (stochastic) Storage<P>::narrow_stochastic(param, t.param + first, n, t.rounding_key, t.offset + first);
      else Storage<P>::narrow_nearest(param, t.param + first, n);
    }
  }
}

MULTOPT_ISA_END
}  // namespace detail

}  // namespace multopt
