// The vectorized tanh against the C library's, over the whole range and the special values.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <multopt/simd.hpp>

namespace {

template <class S>
S simd_tanh(S x) {
  using V = multopt::simd::Vec<S>;
  S lanes[V::size];
  tanh(V(x)).store(lanes);
  return lanes[V::size - 1];
}

// Distance in units in the last place, via the ordered integer view of the floats.
template <class S>
double ulp_distance(S a, S b) {
  using Int = std::conditional_t<sizeof(S) == 8, std::int64_t, std::int32_t>;
  auto ordered = [](S x) {
    Int i;
    std::memcpy(&i, &x, sizeof i);
    return i < 0 ? std::numeric_limits<Int>::min() - i : i;
  };
  const Int i = ordered(a), j = ordered(b);
  using Unsigned = std::make_unsigned_t<Int>;  // the difference, exactly, before it becomes a double
  return double(i > j ? Unsigned(Unsigned(i) - Unsigned(j)) : Unsigned(Unsigned(j) - Unsigned(i)));
}

// |x| from the smallest subnormal to far into saturation, log-spaced, both signs.
template <class S>
std::vector<S> sweep() {
  std::vector<S> xs;
  // Doubling through the subnormals (a relative step rounds to no step there).
  for (S x = std::numeric_limits<S>::denorm_min(); x < S(100);
       x *= x < std::numeric_limits<S>::min() ? S(2) : S(1.0001)) {
    xs.push_back(x);
    xs.push_back(-x);
  }
  return xs;
}

template <class S>
double worst_ulp_error() {
  double worst = 0.0;
  for (S x : sweep<S>()) {
    const S exact = S(std::tanh(static_cast<long double>(x)));
    worst = std::max(worst, ulp_distance(simd_tanh(x), exact));
  }
  return worst;
}

}  // namespace

TEST_CASE("double tanh is within 2 ulp of tanh over the whole range", "[simd]") {
  CHECK(sweep<double>().size() > 100000);
  CHECK(worst_ulp_error<double>() <= 2.0);
}

// Eigen's rational approximation for float: a few ulp (one more without fused multiply-adds, as
// an x86-64 baseline build computes it), and exactly x below 4e-4.
#if defined(__FMA__) || defined(__aarch64__)
constexpr double float_tanh_ulp = 4.0;
#else
constexpr double float_tanh_ulp = 5.0;
#endif
TEST_CASE("float tanh is within 4 ulp of tanh over the whole range (5 without FMA)", "[simd]") {
  CHECK(worst_ulp_error<float>() <= float_tanh_ulp);
}

TEMPLATE_TEST_CASE("tanh keeps signed zeros, saturates and propagates NaN", "[simd]", float, double) {
  using S = TestType;
  const S inf = std::numeric_limits<S>::infinity();
  CHECK(simd_tanh(S(0)) == S(0));
  CHECK_FALSE(std::signbit(simd_tanh(S(0))));
  CHECK(std::signbit(simd_tanh(S(-0.0))));
  CHECK(simd_tanh(inf) == S(1));
  CHECK(simd_tanh(-inf) == S(-1));
  CHECK(simd_tanh(S(1e4)) == S(1));
  CHECK(simd_tanh(S(-40)) == S(-1));
  CHECK(std::isnan(simd_tanh(std::numeric_limits<S>::quiet_NaN())));
  const S tiny = std::numeric_limits<S>::denorm_min();
  CHECK(simd_tanh(tiny) == tiny);
  CHECK(simd_tanh(-tiny) == -tiny);
}
