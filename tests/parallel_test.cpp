// The OpenMP path: any thread count and any chunk length give the serial path's bits, for
// every combination in every parameter type.
// (In a build without OpenMP every run below is serial, and the test still must pass.)
#include <algorithm>
#include <array>
#include <random>
#include <vector>

#include "test_support.hpp"

namespace {

// Sizes that divide by no SIMD width, no chunk length and no thread count.
constexpr std::array<std::size_t, 5> kSizes = {3, 1031, 20011, 1, 7777};

// Ten steps of one optimizer holding kSizes tensors in two groups; returns every parameter,
// and every tensor's state.
template <class S>
auto run(const test::Combination& combination, const multopt::ThreadSettings& threading) {
  auto opt = test::make_stateful<S>(combination);
  opt->add_group({{"weight_decay", 0.0}});  // a second group with other settings
  opt->set_thread_settings(threading);

  std::mt19937 rng(11);
  std::vector<std::vector<S>> params, grads;
  for (std::size_t k = 0; k < kSizes.size(); ++k) {
    params.push_back(test::uniform<S>(rng, kSizes[k], 0.1, 2.0));
    grads.emplace_back(kSizes[k]);
  }
  for (std::size_t k = 0; k < kSizes.size(); ++k)
    opt->add_params(params[k].data(), grads[k].data(), kSizes[k], k % 2);

  for (int t = 0; t < 10; ++t) {
    for (auto& g : grads) {
      const auto fresh = test::uniform<S>(rng, g.size(), -1.0, 1.0);
      std::copy(fresh.begin(), fresh.end(), g.begin());
    }
    opt->step();
  }
  std::vector<S> everything;
  for (const auto& p : params) everything.insert(everything.end(), p.begin(), p.end());
  return std::pair(everything, test::tensor_states(*opt));
}

template <class S>
void check_thread_counts(const test::Combination& combination) {
  const auto expected = run<S>(combination, multopt::ThreadSettings{1});
  for (int threads : {1, 2, 3, 7}) {
    for (std::size_t chunk : {std::size_t(1), std::size_t(1000), std::size_t(1) << 14}) {
      const auto threading = test::threaded(threads, chunk);
      INFO(test::describe(combination) << ", " << threads << " threads, chunks of " << chunk);
      const auto actual = run<S>(combination, threading);
      CHECK(test::same_bits(actual.first, expected.first));
      CHECK(actual.second == expected.second);
    }
  }
}

}  // namespace

// bf16 for the 16-bit storage path (fp16's differs only in its conversions; mixed_precision_test
// threads both).
// Under AddressSanitizer, which is there to check the memory the threads touch (each base's arrays,
// each rule's code), every base and every rule at least once rather than every combination: these
// were the sanitized suite's longest tests.
TEMPLATE_TEST_CASE("1, 2, 3 and 7 threads step every combination bit-identically to one", "[parallel]", float,
                   double, Eigen::bfloat16) {
#ifdef MULTOPT_TEST_UNDER_ASAN
  check_thread_counts<TestType>(GENERATE(from_range(test::covering_combinations())));
#else
  check_thread_counts<TestType>(GENERATE(from_range(test::every_combination())));
#endif
}
