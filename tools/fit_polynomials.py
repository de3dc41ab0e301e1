"""Fit the polynomials behind fastact._math (run: python tools/fit_polynomials.py).

erfc: erfc(a) = exp(-a^2) t S(w) for a >= 0, with t = 3 / (3 + a) in (0, 1] and w = 2t - 1 =
(3 - a) / (3 + a) in (-1, 1]. S is smooth on [-1, 1] (at w = -1 it tends to 1 / (3 sqrt(pi)),
the leading term of erfc's asymptotic series), so one Chebyshev fit covers every a >= 0;
centred on 0, its monomial coefficients stay small and Horner's scheme adds little error.

x - tanh(x) = x^3 T(w) for |x| <= 1.5, where the difference cancels (beyond, tanh's own
error is at most 2 ulp of the difference); w = x^2 / 1.125 - 1 in [-1, 1], centred for the
same reason as erfc's.

log1p(e) for e in [0, 1] (softplus and logsigmoid take it of e = exp(-|x|)): e + e^2 Q(w),
w = 2e - 1 in [-1, 1]; Q(w) = (log1p(e) - e) / e^2 runs from -1/2 to ln 2 - 1, so the
leading e is exact and Q's error is scaled down by e Q / log1p(e), at most 0.44.

exp and expm1: e^r - 1 = r + r^2 P(r) on the reduced range |r| <= ln 2 / 2 (a hair wider:
the reduction's k is rounded from x log2(e) in float32). P is fitted directly in r, which is
small, so its Estrin evaluation is dominated by the low-order terms. Degree 4 for float32
and 9 for float64 (e^r to degree 6 and 11): fit errors of e^r about 1e-8 and 2e-17 of the
result, where Taylor's series needs degree 7 and 13 for the same.

Prints each polynomial's coefficients, highest degree first, and the fit's relative error.
"""

import mpmath as mp

ERFC_C = 3
ERFC_DEGREES = {"float32": 11, "float64": 25}
TANHSHRINK_Z = 2.25  # 1.5^2
TANHSHRINK_DEGREES = {"float32": 11, "float64": 22}
LOG1P_UNIT_DEGREES = {"float32": 9, "float64": 20}
EXPM1_DEGREES = {"float32": 4, "float64": 9}
EXPM1_R = mp.log(2) / 2 * mp.mpf("1.0005")


def erfc_s(w):
    t = (w + 1) / 2
    if t == 0:
        return 1 / (ERFC_C * mp.sqrt(mp.pi))
    a = ERFC_C * (1 - t) / t
    return mp.erfc(a) * mp.exp(a * a) / t


def tanhshrink_t(w):
    z = (w + 1) * TANHSHRINK_Z / 2
    if z == 0:
        return mp.mpf(1) / 3
    x = mp.sqrt(z)
    return (x - mp.tanh(x)) / x**3


def log1p_unit_q(w):
    e = (w + 1) / 2
    if e == 0:
        return mp.mpf(-1) / 2
    return (mp.log1p(e) - e) / e**2


def expm1_p(r):
    if abs(r) < mp.mpf("1e-20"):  # where expm1(r) - r cancels past the working precision
        return mp.mpf(1) / 2 + r / 6 + r * r / 24
    return (mp.expm1(r) - r) / r**2


def fit(f, interval, degree, scale_at):
    coeffs, err = mp.chebyfit(f, interval, degree + 1, error=True)
    return coeffs, err / abs(f(mp.mpf(scale_at)))


if __name__ == "__main__":
    mp.mp.dps = 50
    for name, f, interval, degrees, at in (
        ("erfc S(w)", erfc_s, [-1, 1], ERFC_DEGREES, 1),
        ("tanhshrink T(w)", tanhshrink_t, [-1, 1], TANHSHRINK_DEGREES, 1),
        ("log1p on [0, 1] Q(w)", log1p_unit_q, [-1, 1], LOG1P_UNIT_DEGREES, 1),
        ("expm1 P(r)", expm1_p, [-EXPM1_R, EXPM1_R], EXPM1_DEGREES, 0),
    ):
        for dtype, degree in degrees.items():
            coeffs, err = fit(f, interval, degree, at)
            print(f"# {name}, {dtype}: degree {degree}, max relative fit error {mp.nstr(err, 3)}")
            print(", ".join(repr(float(c)) for c in coeffs))
