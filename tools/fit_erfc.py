"""Fit the polynomial behind fastact._math's erfc (run: python tools/fit_erfc.py).

erfc(a) = exp(-a^2) t S(w) for a >= 0, with t = 3 / (3 + a) in (0, 1] and w = 2t - 1 =
(3 - a) / (3 + a) in (-1, 1]. S is smooth on [-1, 1] (at w = -1 it tends to 1 / (3 sqrt(pi)),
the leading term of erfc's asymptotic series), so one Chebyshev fit covers every a >= 0;
centred on 0, its monomial coefficients stay small and Horner's scheme adds little error.
Prints the coefficients, highest degree first, and the fit's relative error.
"""

import mpmath as mp

C = 3
DEGREES = {"float32": 11, "float64": 25}


def s_of_w(w):
    t = (w + 1) / 2
    if t == 0:
        return 1 / (C * mp.sqrt(mp.pi))
    a = C * (1 - t) / t
    return mp.erfc(a) * mp.exp(a * a) / t


if __name__ == "__main__":
    mp.mp.dps = 50
    for dtype, degree in DEGREES.items():
        coeffs, err = mp.chebyfit(s_of_w, [-1, 1], degree + 1, error=True)
        print(f"# {dtype}: degree {degree}, max relative fit error {mp.nstr(err / s_of_w(mp.mpf(1)), 3)}")
        print(", ".join(repr(float(c)) for c in coeffs))
