#!/usr/bin/env python3
"""Fits the two degree-11 polynomials of the double tanh in include/multopt/simd.hpp.

Chebyshev fits (near-minimax) in 50-digit arithmetic, printed lowest power first as simd.hpp
lists them, with the largest error of each fit. Needs mpmath (Debian: python3-mpmath).
"""
import mpmath as mp

mp.mp.dps = 50
THRESHOLD = mp.mpf("0.625")  # below: the polynomial form; above: 1 - 2u/(1 + u), u = e^(-2|x|)


def correction(z):
    """(tanh(a)/a - 1)/z with z = a*a: tanh(a) = a + a*z*correction(z)."""
    if z == 0:
        return mp.mpf(-1) / 3
    a = mp.sqrt(z)
    return (mp.tanh(a) / a - 1) / z


def report(name, function, interval):
    coefficients, error = mp.chebyfit(function, interval, 12, error=True)
    print(f"{name}: largest error {mp.nstr(error, 3)}")
    print("  " + ", ".join(repr(float(c)) for c in reversed(coefficients)))


report("tanh_correction on [0, 0.625^2]", correction, [0, THRESHOLD**2])
# e^r after y = n*ln2 + r: |r| <= ln2/2, with a margin for the rounding of n.
report("exp_reduced on ±1.01*ln2/2", mp.exp, [-mp.log(2) / 2 * mp.mpf("1.01"), mp.log(2) / 2 * mp.mpf("1.01")])
print("ln2 =", repr(float(mp.log(2))), " ln2 - double(ln2) =", repr(float(mp.log(2) - mp.mpf(float(mp.log(2))))))
