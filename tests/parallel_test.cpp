// The OpenMP path: any thread count and any chunk length give the serial path's bits.
// (In a build without OpenMP every run below is serial, and the test still must pass.)
#include <algorithm>
#include <array>
#include <random>
#include <vector>

#include "test_support.hpp"

namespace {

// Sizes that divide by no SIMD width, no chunk length and no thread count.
constexpr std::array<std::size_t, 5> kSizes = {3, 1031, 20011, 1, 7777};

// Ten steps of one optimizer holding kSizes tensors in two groups; returns every parameter
// and every state array, in order.
template <class Opt>
std::vector<typename Opt::Scalar> run(const multopt::Parallel& parallel) {
  using S = typename Opt::Scalar;
  const auto h = test::stateful_hyper<typename Opt::Hyper>();
  Opt opt = test::make<Opt>(h);
  auto other = h;
  other.weight_decay = 0.0;  // a second group with other settings
  opt.add_group(other);
  opt.set_parallel(parallel);

  std::mt19937 rng(11);
  std::vector<std::vector<S>> params, grads;
  for (std::size_t k = 0; k < kSizes.size(); ++k) {
    params.push_back(test::uniform<S>(rng, kSizes[k], 0.1, 2.0));
    grads.emplace_back(kSizes[k]);
  }
  for (std::size_t k = 0; k < kSizes.size(); ++k)
    opt.add_params(params[k].data(), grads[k].data(), kSizes[k], k % 2);

  for (int t = 0; t < 10; ++t) {
    for (auto& g : grads) {
      const auto fresh = test::uniform<S>(rng, g.size(), -1.0, 1.0);
      std::copy(fresh.begin(), fresh.end(), g.begin());
    }
    opt.step();
  }
  std::vector<S> everything;
  for (std::size_t k = 0; k < kSizes.size(); ++k) {
    everything.insert(everything.end(), params[k].begin(), params[k].end());
    for (int slot = 0; slot < Opt::BaseType::slot_count; ++slot) {
      const auto state = test::state_copy(opt, k, slot);
      everything.insert(everything.end(), state.begin(), state.end());
    }
  }
  return everything;
}

template <class Opt>
void check_thread_counts() {
  multopt::Parallel serial;
  serial.threads = 1;
  const auto expected = run<Opt>(serial);
  for (int threads : {1, 2, 3, 7}) {
    for (std::size_t chunk : {std::size_t(1), std::size_t(1000), std::size_t(1) << 14}) {
      multopt::Parallel parallel;
      parallel.threads = threads;
      parallel.serial_below = 0;  // thread even these small steps
      parallel.chunk = chunk;
      INFO(threads << " threads, chunks of " << chunk);
      CHECK(test::same_bits(run<Opt>(parallel), expected));
    }
  }
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("1, 2, 3 and 7 threads step float bit-identically to one", "[parallel]",
                        test::EveryOptimizer<float>) {
  check_thread_counts<TestType>();
}

TEMPLATE_LIST_TEST_CASE("1, 2, 3 and 7 threads step double bit-identically to one", "[parallel]",
                        test::EveryOptimizer<double>) {
  check_thread_counts<TestType>();
}
