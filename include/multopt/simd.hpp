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

#include <Eigen/Core>

namespace multopt::simd {

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
template <class Packet>
Packet tanh_float(const Packet& x) {
  return ei::pselect(ei::pcmp_eq(x, x), ei::ptanh(x), x);
}

// tanh for double, which Eigen 3.4 does not vectorize. On |x| < 0.625 the minimax rational
// form x + x·z·P(z)/Q(z), z = x², with the coefficients published in Moshier's Cephes; above,
// 1 − 2/(e^{2|x|} + 1), where no cancellation can occur. Both are within 2 ulp of tanh; the
// sign is restored last so that ±0 and odd symmetry are exact, and NaN, ±inf go through.
template <class Packet>
Packet tanh_double(const Packet& x) {
  using ei::padd; using ei::pdiv; using ei::pmadd; using ei::pmul; using ei::pset1;
  const Packet a = ei::pabs(x);
  const Packet z = pmul(a, a);
  const Packet p = pmadd(pmadd(pset1<Packet>(-9.64399179425052238628e-1), z,
                               pset1<Packet>(-9.92877231001918586564e1)), z,
                         pset1<Packet>(-1.61468768441708447952e3));
  const Packet q = pmadd(pmadd(padd(z, pset1<Packet>(1.12811678491632931402e2)), z,
                               pset1<Packet>(2.23548839060100448583e3)), z,
                         pset1<Packet>(4.84406305325125486048e3));
  const Packet small = pmadd(pmul(a, z), pdiv(p, q), a);
  const Packet one = pset1<Packet>(1.0);
  const Packet large =
      ei::psub(one, pdiv(pset1<Packet>(2.0), padd(ei::pexp(padd(a, a)), one)));
  const Packet magnitude = ei::pselect(ei::pcmp_lt(a, pset1<Packet>(0.625)), small, large);
  return ei::pxor(magnitude, ei::pand(x, pset1<Packet>(-0.0)));
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

}  // namespace multopt::simd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
