// Stochastic rounding of 16-bit parameters (conversions.hpp): unbiased, the same at any thread
// count and chunk length, different for another seed, and element by element the narrowing
// that conversions.hpp documents.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "mixed_precision.hpp"

using namespace mixed;

TEST_CASE("stochastic rounding is unbiased", "[mixed][stochastic]") {
  // n = 2^20 elements whose exact result x lies between the neighbours lo < hi: the number that
  // round up is binomial(n, p = (x − lo)/(hi − lo)). Refused beyond 6 standard deviations:
  // a false alarm has probability 2·10^-9 per check (the seed is fixed, so this run's outcome is too).
  constexpr std::size_t n = std::size_t(1) << 20;
  // x = theta + step lies between the neighbours lo < hi (hi = +inf standing for 65536 in fp16).
  auto check = [&](auto tag, float theta, float step, double lo, double hi) {
    using P = typename decltype(tag)::type;
    const float x = theta + step;
    const double top = std::isinf(hi) ? 65536.0 : hi;
    const double p = (double(x) - lo) / (top - lo);
    const auto stored = stored_after_one_step<P>(theta, step, n, 42);
    std::size_t up = 0, down = 0;
    for (const P& v : stored) {
      up += widen(v) == hi;
      down += widen(v) == lo;
    }
    INFO("theta " << theta << " step " << step << " in [" << lo << ", " << hi << "), p " << p);
    CHECK(up + down == n);
    CHECK(std::abs(double(up) - n * p) <= 6 * std::sqrt(n * p * (1 - p)));
  };
  const double tiny = std::ldexp(1.0, -24);  // fp16's smallest subnormal
  for (float f : {0.3f, 0.001f, 0.75f}) {
    check(std::common_type<bf16>{}, 1.0f, f / 128, 1.0, 1.0 + 1.0 / 128);               // bf16 ulp at 1: 2^-7
    check(std::common_type<bf16>{}, -3.0f, -f / 64, -3.0 - 1.0 / 64, -3.0);             // negative
    check(std::common_type<fp16>{}, 1.0f, f / 1024, 1.0, 1.0 + 1.0 / 1024);             // fp16 ulp at 1: 2^-10
    check(std::common_type<fp16>{}, 0.0f, float(f * tiny), 0.0, tiny);                  // fp16 subnormals
  }
  check(std::common_type<bf16>{}, 2.0f - 1.0f / 128, 0.4f / 128, 2.0 - 1.0 / 128, 2.0);  // across a binade
  check(std::common_type<fp16>{}, 65504.0f, 8.0f, 65504.0, std::numeric_limits<double>::infinity());
}

TEST_CASE("stochastic rounding is the same at any thread count and chunk length", "[mixed][stochastic]") {
  auto run = [](const multopt::ThreadSettings& threading) {
    Pair<fp16> pair(kHAdam, StorageMode{Rounding::stochastic, 99}, threading);
    for (int t = 0; t < 4; ++t) pair.new_gradients(), pair.narrow->step();
    std::vector<std::uint16_t> all;
    for (const auto& p : pair.params16)
      for (fp16 v : p) all.push_back(bits(v));
    return all;
  };
  const auto serial = run(threaded(1, 1u << 14));
  for (int threads : {2, 3, 7})
    for (std::size_t chunk : {std::size_t(1), std::size_t(1000)}) CHECK(run(threaded(threads, chunk)) == serial);
  // Other seeds, other bits; the same seed, the same bits.
  CHECK(stored_after_one_step<bf16>(1.0f, 0.3f / 128, 4096, 1) != stored_after_one_step<bf16>(1.0f, 0.3f / 128, 4096, 2));
  const auto a = stored_after_one_step<bf16>(1.0f, 0.3f / 128, 70000, 3, 1);
  const auto b = stored_after_one_step<bf16>(1.0f, 0.3f / 128, 70000, 3, 3);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * 2) == 0);
}

namespace {

// Stochastic narrowing as documented (conversions.hpp), element by element, fp16 in double through
// Eigen's conversions: |x| rounded toward zero to the half `low`, then up where 24 random bits
// fall below (|x| − low)/ulp · 2^24; bf16: 16 random bits added below the kept half, and cut.
// NaN: a quiet NaN of its sign.
std::uint16_t stochastic_fp16(float x, std::uint32_t random) {
  const std::uint16_t sign = std::signbit(x) ? 0x8000u : 0u;
  const float a = std::abs(x);
  if (std::isnan(a)) return std::uint16_t(sign | 0x7e00u);
  if (std::isinf(a)) return std::uint16_t(sign | 0x7c00u);
  std::uint16_t low = bits(fp16(a));
  if (widen(Eigen::numext::bit_cast<fp16>(low)) > a) --low;
  const int exponent = std::max(1, int(low >> 10));
  const double fraction = (double(a) - double(widen(Eigen::numext::bit_cast<fp16>(low)))) / std::ldexp(1.0, exponent - 25);
  return std::uint16_t(sign | (low + (double(random >> 8) < fraction * 16777216.0 ? 1u : 0u)));
}
std::uint16_t stochastic_bf16(float x, std::uint32_t random) {
  const std::uint32_t u = multopt::detail::float_bits(x);
  return std::uint16_t(std::isnan(x) ? (u >> 16) | 0x40u : (u + (random >> 16)) >> 16);
}

}  // namespace

TEST_CASE("stochastic narrowing of an array is its definition, element by element", "[mixed][stochastic]") {
  // Random floats of every exponent, and each 16-bit value's neighbours as floats; element
  // indices that cross 2^32, where the generator's upper index bits change.
  std::mt19937 rng(11);
  std::vector<float> x;
  for (int k = 0; k < (1 << 18); ++k) x.push_back(multopt::detail::float_of(std::uint32_t(rng())));
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const float h = widen(Eigen::numext::bit_cast<fp16>(std::uint16_t(b)));
    const float g = widen(Eigen::numext::bit_cast<bf16>(std::uint16_t(b)));
    for (float v : {h, std::nextafter(h, 0.0f), std::nextafter(h, 2 * h), g, std::nextafter(g, 0.0f)}) x.push_back(v);
  }
  const std::uint64_t key = 0x0123456789abcdefu, first = (std::uint64_t(1) << 32) - 1000;
  std::vector<fp16> h(x.size());
  std::vector<bf16> b(x.size());
  multopt::Storage<fp16>::narrow_stochastic(x.data(), h.data(), x.size(), key, first);
  multopt::Storage<bf16>::narrow_stochastic(x.data(), b.data(), x.size(), key, first);
  std::size_t wrong_fp16 = 0, wrong_bf16 = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::uint64_t index = first + i;
    const std::uint32_t random = multopt::detail::random_bits(multopt::detail::index_key(key, index), std::uint32_t(index));
    wrong_fp16 += bits(h[i]) != stochastic_fp16(x[i], random);
    wrong_bf16 += bits(b[i]) != stochastic_bf16(x[i], random);
  }
  CHECK(wrong_fp16 == 0);
  CHECK(wrong_bf16 == 0);
}
