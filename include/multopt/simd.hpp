// A thin value type over Eigen's packet math, so that every formula of the library is
// written once, with ordinary operators, and the same text runs on SIMD registers of
// float or double.
#pragma once

// GCC 12 warns inside its own AVX-512 headers ('__Y' may be used uninitialized, GCC bug
// 105593) wherever their intrinsics are inlined. The warning is spurious; it is muted here for
// the intrinsics headers (when Eigen is first included from here) and for multopt's SIMD code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <Eigen/Core>

// In a kernel translation unit (dispatch.hpp), compiled for one instruction set with its own
// flags, everything whose compiled code depends on those flags lives in an inline namespace of
// that instruction set: MULTOPT_KERNEL_ISA=avx2 puts simd::Vec, the step loop and the storage
// conversions in multopt::...::isa_avx2. Their symbols then differ from every other kernel's and
// from the program's own, so that the linker, which keeps one copy of each inline function and
// template instantiation, can never hand an AVX-512 copy to code that runs on a CPU without it.
// Everywhere else the macros are empty and nothing changes.
#if defined(MULTOPT_KERNEL_ISA)
#define MULTOPT_ISA_CAT_(a, b) a##b
#define MULTOPT_ISA_CAT(a, b) MULTOPT_ISA_CAT_(a, b)
#define MULTOPT_ISA_BEGIN inline namespace MULTOPT_ISA_CAT(isa_, MULTOPT_KERNEL_ISA) {
#define MULTOPT_ISA_END }
#else
#define MULTOPT_ISA_BEGIN
#define MULTOPT_ISA_END
#endif

namespace multopt::simd {
MULTOPT_ISA_BEGIN

namespace ei = Eigen::internal;

template <class S>
class Vec {
 public:
  using Packet = typename ei::packet_traits<S>::type;
  static constexpr int size = ei::unpacket_traits<Packet>::size;

  Vec(S broadcast) : p_(ei::pset1<Packet>(broadcast)) {}  // implicit: `c * v` reads as math
  static Vec from_packet(const Packet& p) { Vec v(S(0)); v.p_ = p; return v; }
  static Vec load(const S* x) { return from_packet(ei::ploadu<Packet>(x)); }
  void store(S* x) const { ei::pstoreu(x, p_); }
  const Packet& packet() const { return p_; }

  friend Vec operator+(const Vec& a, const Vec& b) { return from_packet(ei::padd(a.p_, b.p_)); }
  friend Vec operator-(const Vec& a, const Vec& b) { return from_packet(ei::psub(a.p_, b.p_)); }
  friend Vec operator*(const Vec& a, const Vec& b) { return from_packet(ei::pmul(a.p_, b.p_)); }
  friend Vec operator/(const Vec& a, const Vec& b) { return from_packet(ei::pdiv(a.p_, b.p_)); }
  friend Vec operator-(const Vec& a) { return from_packet(ei::pnegate(a.p_)); }

 private:
  Packet p_;
};

template <class S> Vec<S> abs(const Vec<S>& x) { return Vec<S>::from_packet(ei::pabs(x.packet())); }
template <class S> Vec<S> sqrt(const Vec<S>& x) { return Vec<S>::from_packet(ei::psqrt(x.packet())); }
template <class S> Vec<S> exp(const Vec<S>& x) { return Vec<S>::from_packet(ei::pexp(x.packet())); }

// max that returns NaN when either side is NaN, as torch.maximum does.
template <class S>
Vec<S> max(const Vec<S>& a, const Vec<S>& b) {
  return Vec<S>::from_packet(ei::pmax<Eigen::PropagateNaN>(a.packet(), b.packet()));
}

// x with its sign flipped where y has its sign bit set: x·sign(y) for every y but ±0, NaN.
template <class S>
Vec<S> flip_sign_by(const Vec<S>& x, const Vec<S>& y) {
  const auto sign_bit = ei::pset1<typename Vec<S>::Packet>(S(-0.0));
  return Vec<S>::from_packet(ei::pxor(x.packet(), ei::pand(y.packet(), sign_bit)));
}

// −1, +1 by the sign of x; x itself where it is ±0 or NaN (as torch.sign).
template <class S>
Vec<S> sign(const Vec<S>& x) {
  const auto& p = x.packet();
  const auto zero = ei::pset1<typename Vec<S>::Packet>(S(0));
  const auto unit = flip_sign_by(Vec<S>(S(1)), x).packet();
  return Vec<S>::from_packet(ei::pselect(ei::pcmp_eq(p, p), ei::pselect(ei::pcmp_eq(p, zero), p, unit), p));
}

// `updated` where `theta` is not zero, and `theta` (±0) where it is.
template <class S>
Vec<S> keep_zeros(const Vec<S>& theta, const Vec<S>& updated) {
  const auto zero = ei::pset1<typename Vec<S>::Packet>(S(0));
  return Vec<S>::from_packet(ei::pselect(ei::pcmp_eq(theta.packet(), zero), theta.packet(), updated.packet()));
}

namespace detail {
// Eigen's rational tanh for float (a few ulp); its clamp turns NaN into ±1, so NaN is put back.
// Eigen's NEON version ends at ±(1 − 2⁻²⁴) where tanh rounds to ±1 (|x| ≥ 9.02, and ±inf), which
// the multiplicative rule would carry into every saturated step: there ±1 is put in.
template <class Packet>
Packet tanh_float(const Packet& x) {
  Packet y = ei::ptanh(x);
#if defined(EIGEN_VECTORIZE_NEON)
  const Packet unit = ei::por(ei::pset1<Packet>(1.0f), ei::pand(x, ei::pset1<Packet>(-0.0f)));  // ±1 by x's sign
  y = ei::pselect(ei::pcmp_le(ei::pset1<Packet>(9.1f), ei::pabs(x)), unit, y);
#endif
  return ei::pselect(ei::pcmp_eq(x, x), y, x);
}

// a[0] + a[1]·x + … + a[11]·x¹¹ by Estrin's scheme: pairs, then pairs of pairs, so that a
// packet's chain of dependent operations is four multiply-adds deep rather than eleven, and the
// processor overlaps more packets at once.
template <class Packet>
Packet polynomial11(const Packet& x, const double (&a)[12]) {
  using ei::pmadd; using ei::pset1;
  const Packet x2 = ei::pmul(x, x), x4 = ei::pmul(x2, x2);
  const auto pair = [&](int k) { return pmadd(pset1<Packet>(a[k + 1]), x, pset1<Packet>(a[k])); };
  const Packet low = pmadd(pair(2), x2, pair(0)), middle = pmadd(pair(6), x2, pair(4)),
               high = pmadd(pair(10), x2, pair(8));
  return pmadd(pmadd(high, x4, middle), x4, low);
}

// 2^n for packets holding n + 1.5·2^52 (whole n, −1022 ≤ n ≤ 1023): n sits in the low bits of the
// sum, and shifted into the exponent field with its bias it is 2^n. GCC's and Clang's vector
// extensions do the 64-bit integer add and shift on any packet width.
template <class Packet>
Packet exponent_to_power(const Packet& shifted) {
#if defined(__GNUC__)
  typedef std::uint64_t Bits __attribute__((vector_size(sizeof(Packet))));
  Bits bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  bits = (bits + 1023) << 52;
  Packet power;
  std::memcpy(&power, &bits, sizeof power);
  return power;
#else
  return ei::pldexp(ei::pset1<Packet>(1.0), ei::psub(shifted, ei::pset1<Packet>(0x1.8p52)));
#endif
}

// tanh for double, which Eigen 3.4 does not vectorize, with one division per packet. With
// a = |x|: below 0.625, a + a·z·R(z), z = a², R a degree-11 polynomial fitted to
// (tanh(a)/a − 1)/z, whose error reaches the result scaled down by z·R ≤ 0.13; above,
// 1 − 2u/(1 + u) with u = e^{−2a} ≤ 0.29, where nothing cancels: e^{−2a} = 2^n·e^r with
// |r| ≤ ln2/2 and e^r a degree-11 polynomial (both fitted by tools/fit_tanh_double.py). Both are
// within 2 ulp of tanh (tests/simd_test.cpp); the sign is restored last so that ±0 and odd
// symmetry are exact, and NaN goes through. Always inlined: called once per packet of the step
// loop, a call would spill the loop's registers.
template <class Packet>
EIGEN_ALWAYS_INLINE Packet tanh_double(const Packet& x) {
  using ei::padd; using ei::pmadd; using ei::pmul; using ei::pset1;
  static constexpr double tanh_correction[12] = {
      -0.3333333333333333,   0.13333333333333042,    -0.05396825396789699,   0.021869488519008305,
      -0.008863235103240878, 0.0035921217511549622,  -0.0014557754120478055, 0.0005896606577757043,
      -0.0002375906496055562, 9.257116129556769e-05, -3.12011014257974e-05,  6.485163482793113e-06};
  static constexpr double exp_reduced[12] = {
      1.0,                   1.0,                    0.500000000000002,      0.16666666666666682,
      0.04166666666647329,   0.008333333333318461,   0.0013888888956219215,  0.00019841269893049545,
      2.4801481344570324e-05, 2.75572377367406e-06,  2.7634155490989483e-07, 2.511120325747114e-08};
  const Packet a = ei::pabs(x);
  const Packet z = pmul(a, a);
  const Packet small = pmadd(pmul(a, z), polynomial11(z, tanh_correction), a);
  // e^y, y = −2a, held at −40 where tanh rounds to 1 anyway: y = n·ln2 + r, n whole.
  const Packet y = ei::pmax(pmul(a, pset1<Packet>(-2.0)), pset1<Packet>(-40.0));
  const Packet round_to_whole = pset1<Packet>(0x1.8p52);  // its ulp is 1: adding it rounds to a whole number
  const Packet shifted = pmadd(y, pset1<Packet>(1.4426950408889634), round_to_whole);
  const Packet n = ei::psub(shifted, round_to_whole);
  // With a fused multiply-add, y − n·ln2's leading part is exact: |r| < 1 needs no more bits.
  Packet r = pmadd(n, pset1<Packet>(-0.6931471805599453), y);
  r = pmadd(n, pset1<Packet>(-2.3190468138462996e-17), r);
  const Packet u = pmul(polynomial11(r, exp_reduced), exponent_to_power(shifted));
  const Packet large = ei::psub(pset1<Packet>(1.0), ei::pdiv(padd(u, u), padd(u, pset1<Packet>(1.0))));
  const Packet magnitude = ei::pselect(ei::pcmp_lt(a, pset1<Packet>(0.625)), small, large);
  return ei::pselect(ei::pcmp_eq(x, x), ei::pxor(magnitude, ei::pand(x, pset1<Packet>(-0.0))), x);
}
}  // namespace detail

// The sum of a packet's lanes.
template <class S>
S sum(const Vec<S>& x) {
  return ei::predux(x.packet());
}

inline Vec<float> tanh(const Vec<float>& x) {
  return Vec<float>::from_packet(detail::tanh_float(x.packet()));
}
inline Vec<double> tanh(const Vec<double>& x) {
  return Vec<double>::from_packet(detail::tanh_double(x.packet()));
}

MULTOPT_ISA_END
}  // namespace multopt::simd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
