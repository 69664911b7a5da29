// What the 16-bit tests share (mixed_precision_test.cpp, stochastic_rounding_test.cpp): a
// combination in bf16 or fp16 beside the same in float, the thread settings they step under,
// and one SGD step whose exact fp32 result is known.
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "test_support.hpp"

namespace mixed {

using multopt::Rounding;
using multopt::StorageMode;
using bf16 = Eigen::bfloat16;
using fp16 = Eigen::half;

// Sizes that divide by no SIMD width, no chunk length and no thread count.
inline constexpr std::array<std::size_t, 4> kSizes = {3, 1031, 20011, 1};

template <class P>
std::uint16_t bits(P x) {
  return Eigen::numext::bit_cast<std::uint16_t>(x);
}
template <class P>
float widen(P x) {
  return static_cast<float>(x);
}

using test::threaded;

// A combination in P beside the same in float, both made by name, on the same tensors (the
// float one from the 16-bit start widened) and the same fp32 gradients.
template <class P>
struct Pair {
  test::Made<P> narrow;
  test::Made<float> wide;
  std::vector<std::vector<P>> params16;
  std::vector<std::vector<float>> params, grads;
  std::mt19937 rng{5};

  Pair(const test::Combination& combination, const StorageMode& storage, const multopt::ThreadSettings& threading)
      : narrow(test::make_stateful<P>(combination)), wide(test::make_stateful<float>(combination)) {
    narrow->set_storage(storage);
    narrow->set_thread_settings(threading);
    wide->set_thread_settings(threading);
    for (std::size_t size : kSizes) {
      auto& p16 = params16.emplace_back();
      for (float x : test::uniform<float>(rng, size, 0.1, 2.0)) p16.push_back(P(x));
      params.emplace_back(p16.size());
      for (std::size_t i = 0; i < size; ++i) params.back()[i] = widen(p16[i]);
      grads.emplace_back(size);
    }
    for (std::size_t k = 0; k < kSizes.size(); ++k) {
      narrow->add_params(params16[k].data(), grads[k].data(), kSizes[k]);
      wide->add_params(params[k].data(), grads[k].data(), kSizes[k]);
    }
  }
  void new_gradients() {
    for (auto& g : grads) {
      const auto fresh = test::uniform<float>(rng, g.size(), -1.0, 1.0);
      std::copy(fresh.begin(), fresh.end(), g.begin());
    }
  }
  // Whether the state arrays and scalar states of both are equal bit for bit.
  bool same_state() const {
    for (std::size_t k = 0; k < kSizes.size(); ++k) {
      const auto a = test::tensor_state(*narrow, k);
      const auto b = test::tensor_state(*wide, k);
      if (a.arrays.size() != b.arrays.size() || !test::same_bits(a.scalars, b.scalars)) return false;
      for (std::size_t n = 0; n < a.arrays.size(); ++n)
        if (!test::same_bits(a.arrays[n], b.arrays[n])) return false;
    }
    return true;
  }
};

inline const test::Combination kMAdam = {"adam", "multiplicative"}, kHAdam = {"adam", "hybrid"};

// SGD with lr = 1 moves θ by −g exactly: each element's fp32 result is x = θ − g.
template <class P>
std::vector<P> stored_after_one_step(float theta, float step, std::size_t n, std::uint64_t seed, int threads = 1) {
  std::vector<P> param(n, P(theta));
  std::vector<float> grad(n, -step);
  multopt::SGD<P> opt(multopt::arg::lr = 1.0);
  opt.set_storage({Rounding::stochastic, seed});
  opt.set_thread_settings(threaded(threads, 4096));
  opt.add_params(param.data(), grad.data(), n);
  opt.step();
  return param;
}

}  // namespace mixed
