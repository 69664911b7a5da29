// How values go between memory and the step's packets (storage.hpp says how they are stored):
// float and double as they are; 16-bit ones widened exactly and narrowed to nearest even (NaN
// kept NaN, ±inf kept, overflow to ±inf, subnormals produced as IEEE does, whatever the
// processor's flush-to-zero settings) or stochastically, with a counter-based generator's bits.
// The AVX-512 BF16 instruction flushes subnormals, so it is not used.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "simd.hpp"
#include "storage.hpp"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace multopt {

// The conversions below run in the step's kernels: compiled per instruction set (simd.hpp).
namespace detail {
MULTOPT_ISA_BEGIN

inline std::uint32_t float_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
inline float float_of(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
template <class P>
std::uint16_t bits16(P x) {
  return Eigen::numext::bit_cast<std::uint16_t>(x);
}
template <class P>
P from_bits16(std::uint16_t u) {
  return Eigen::numext::bit_cast<P>(u);
}

// 64 bits mixed (SplitMix64's finalizer).
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}
// 32 bits mixed (a two-multiply integer hash of low bias).
inline std::uint32_t mix32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  return x ^ (x >> 16);
}

// The key of one tensor's step for stochastic rounding: a counter-based generator gives each
// element of it 32 random bits from (key, element index) alone, so that the bits do not depend
// on which thread steps the element, or in which chunk. The element index enters in two parts:
// its upper 32 bits with the key (index_key, the same for 2^32 elements in a row), then its
// lower 32 bits (random_bits), so that a loop over elements vectorizes in 32-bit lanes.
inline std::uint64_t rounding_key(std::uint64_t seed, std::uint64_t tensor, std::uint64_t step) {
  return mix64(seed ^ mix64(tensor ^ mix64(step + 0x9e3779b97f4a7c15u)));
}
inline std::uint64_t index_key(std::uint64_t key, std::uint64_t index) {
  return key + (index >> 32) * 0x9e3779b97f4a7c15u;
}
inline std::uint32_t random_bits(std::uint64_t keyed, std::uint32_t low_index) {
  return mix32(mix32(low_index ^ std::uint32_t(keyed)) + std::uint32_t(keyed >> 32));
}

// a if c, else b: a select of computed values, which compilers turn into packet code where a
// conditional expression over floating-point values can stay a branch (GCC keeps a possibly
// trapping operation behind its condition, and then does not vectorize the loop).
inline std::uint32_t select(bool c, std::uint32_t a, std::uint32_t b) {
  const std::uint32_t mask = 0u - std::uint32_t(c);
  return (a & mask) | (b & ~mask);
}

// bfloat16 is the upper half of a float: widening is a shift; narrowing to nearest even adds
// 0x7fff plus the kept part's lowest bit; stochastic narrowing adds 16 random bits and cuts,
// which rounds up with probability (cut part)/2^16 exactly, across binades, into subnormals and
// from the largest finite value to infinity alike. NaN stays a quiet NaN of its sign.
inline float widen(Eigen::bfloat16 x) { return float_of(std::uint32_t(bits16(x)) << 16); }
inline std::uint16_t nearest_bits(float x, Eigen::bfloat16) {
  const std::uint32_t u = float_bits(x);
  if (x != x) return std::uint16_t((u >> 16) | 0x40u);
  return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline std::uint16_t stochastic_bits(float x, std::uint32_t random, Eigen::bfloat16 type) {
  if (x != x) return nearest_bits(x, type);
  return std::uint16_t((float_bits(x) + (random >> 16)) >> 16);
}

// IEEE half. Stochastic narrowing: |x| rounded toward zero to the half `low` (its exponent
// rebiased and its mantissa cut; below 2^-14 the multiple of 2^-24 under it, as a·2^24 is exact),
// then up to the next half with probability (|x| − low)/ulp, computed exactly (the difference
// of nearby floats and the scaling by a power of two are exact) and compared with 24 random
// bits: exact but below 2^-48, where the probability is rounded up to a multiple of 2^-24. Above
// the largest finite half the grid goes on to 2^16, which stands for infinity. Integer selects
// throughout, so that the loop over an array vectorizes. NaN gives the quiet NaN of its sign.
inline float widen(Eigen::half x) { return float(x); }
inline std::uint16_t nearest_bits(float x, Eigen::half) { return bits16(Eigen::half(x)); }
inline std::uint16_t stochastic_bits(float x, std::uint32_t random, Eigen::half) {
  const std::uint32_t u = float_bits(x), magnitude = u & 0x7fffffffu, sign = (u >> 16) & 0x8000u;
  const float a = float_of(magnitude);
  const std::uint32_t normal = std::min((magnitude >> 13) - 0x1c000u, 0x7bffu);
  // min(2^-14, a), not min(a, 2^-14): a NaN gives 2^-14, a value that converts to int.
  const std::uint32_t subnormal = std::uint32_t(std::int32_t(std::min(0x1p-14f, a) * 0x1p24f));
  const std::uint32_t low = select(magnitude >= 0x38800000u, normal, subnormal);
  const float normal_value = float_of((low + 0x1c000u) << 13);
  const float subnormal_value = float(std::int32_t(low)) * 0x1p-24f;
  const float low_value = float_of(select(low >= 0x400u, float_bits(normal_value), float_bits(subnormal_value)));
  const std::uint32_t exponent = std::max(1u, low >> 10);  // of a finite half; 1 for subnormals
  const float inverse_ulp = float_of((127u + 25u - exponent) << 23);
  const float fraction = (a - low_value) * inverse_ulp;
  const std::uint32_t up = std::uint32_t(float(std::int32_t(random >> 8)) < fraction * 0x1p24f);
  const std::uint32_t non_finite = select(magnitude > 0x7f800000u, 0x7e00u, 0x7c00u);
  return std::uint16_t(select(magnitude >= 0x7f800000u, non_finite, low + up) | sign);
}

MULTOPT_ISA_END
}  // namespace detail

MULTOPT_ISA_BEGIN

// How values of type P go between memory and packets of Arithmetic<P>. float, double: as they are.
template <class P>
struct Storage {
  static simd::Vec<P> load(const P* x) { return simd::Vec<P>::load(x); }
};

// 16-bit types, an array at a time, through the exact scalar conversions above, which the
// compiler turns into packet code (bfloat16: integer shifts and adds), or through F16C's
// conversions eight at a time (half: they round to nearest even and keep subnormals).
template <class P>
struct Storage16 {
  static void widen(const P* x, float* out, std::size_t n) {
    std::size_t i = 0;
#if defined(__F16C__)
    if constexpr (std::is_same_v<P, Eigen::half>)
      for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
#endif
    for (; i < n; ++i) out[i] = detail::widen(x[i]);
  }

  static void narrow_nearest(const float* x, P* out, std::size_t n) {
    std::size_t i = 0;
#if defined(__F16C__)
    if constexpr (std::is_same_v<P, Eigen::half>)
      for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i < n; ++i) out[i] = detail::from_bits16<P>(detail::nearest_bits(x[i], P()));
  }

  // `first`: the element index of x[0] in its tensor, which the random bits are keyed by; the
  // elements of one index_key at a time.
  static void narrow_stochastic(const float* x, P* out, std::size_t n, std::uint64_t key, std::size_t first) {
    for (std::size_t i = 0; i < n;) {
      const std::uint64_t index = std::uint64_t(first + i);
      const std::uint64_t same_key = (std::uint64_t(1) << 32) - (index & 0xffffffffu);
      const std::size_t count = std::size_t(std::min<std::uint64_t>(n - i, same_key));
      const std::uint64_t keyed = detail::index_key(key, index);
      const std::uint32_t low_index = std::uint32_t(index);
      for (std::size_t j = 0; j < count; ++j) {
        const std::uint32_t random = detail::random_bits(keyed, low_index + std::uint32_t(j));
        out[i + j] = detail::from_bits16<P>(detail::stochastic_bits(x[i + j], random, P()));
      }
      i += count;
    }
  }

  // A packet of widened values (the gradient scan reads 16-bit gradients so).
  static simd::Vec<float> load(const P* x) {
    alignas(64) float lanes[simd::Vec<float>::size];
    widen(x, lanes, simd::Vec<float>::size);
    return simd::Vec<float>::load(lanes);
  }
};

template <>
struct Storage<Eigen::bfloat16> : Storage16<Eigen::bfloat16> {};
template <>
struct Storage<Eigen::half> : Storage16<Eigen::half> {};

// A 16-bit state array's elements [first, first + n), widened into `out`, and back: rounded to
// nearest even, or, with `stochastic`, with the random bits of `key` and each element's index.
inline void widen_state(const FloatStatePointer& state, std::size_t first, float* out, std::size_t n) {
  if (state.storage == StateStorage::bfloat16)
    Storage<Eigen::bfloat16>::widen(static_cast<const Eigen::bfloat16*>(state.data) + first, out, n);
  else Storage<Eigen::half>::widen(static_cast<const Eigen::half*>(state.data) + first, out, n);
}
inline void narrow_state(const float* values, const FloatStatePointer& state, std::size_t first, std::size_t n,
                         bool stochastic, std::uint64_t key, std::size_t index) {
  const auto narrow = [&](auto* out) {
    using P = std::remove_pointer_t<decltype(out)>;
    if (stochastic) Storage<P>::narrow_stochastic(values, out + first, n, key, index);
    else Storage<P>::narrow_nearest(values, out + first, n);
  };
  if (state.storage == StateStorage::bfloat16) narrow(static_cast<Eigen::bfloat16*>(state.data));
  else narrow(static_cast<Eigen::half*>(state.data));
}

MULTOPT_ISA_END
}  // namespace multopt
