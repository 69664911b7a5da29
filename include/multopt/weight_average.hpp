// The exponential moving average of the weights (StepOptions::ema_decay), the stage after the
// rule in docs/math.md: once a block of θ is stepped, ema ← d·ema + (1 − d)·θ, or ema ← θ where
// the average was made since the tensor's last step, as torch's AveragedModel with that average
// updated after every step. It reads θ back from the L1 cache, so memory sees one more read and
// write: the average's.
#pragma once

#include <cstddef>

#include "simd.hpp"

namespace multopt {

template <class S>
struct WeightAverage {
  S decay = S(0);       // d
  S complement = S(1);  // 1 − d, rounded once, as torch's avg_fn computes it
  bool restart = false;  // the average is new: it takes θ

  // average[0, n) from theta[0, n), n a multiple of the packet width. (A template, so that the
  // packet type, which differs between instruction sets, is part of its symbol: dispatch.hpp.)
  template <class V = simd::Vec<S>>
  void update(const S* theta, S* average, std::size_t n) const {
    for (std::size_t i = 0; i < n; i += V::size) {
      const V now = V::load(theta + i);
      (restart ? now : decay * V::load(average + i) + complement * now).store(average + i);
    }
  }
};

}  // namespace multopt
