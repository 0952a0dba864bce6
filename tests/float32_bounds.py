"""Float32 tolerances derived from the computation, never tuned to one machine.

A float32 result is compared with a float64 reference computed from the same
float32-rounded inputs, so the only difference is the rounding inside the
computation. Its bound is the forward error of the operations (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2002, §3.1): a sum or dot
product of n terms, in any order and with or without fused multiply-adds,
errs by at most γ_n·Σ|terms|, γ_n = n·u/(1 − n·u), with u = 2⁻²⁴ the float32
unit roundoff. The tolerance is therefore γ times the *magnitude of what
cancels*, not a fraction of the result: a log-density of −1.15 left after
terms of size 10³ cancel carries an error of order u·10³, and a relative
tolerance on −1.15 is the wrong yardstick.

For long sums (n > 100) the worst case γ_n grows like n while real rounding
errors, being of both signs, grow like √n; there the probabilistic bound
λ·√n·u (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019, Theorem 2.4) is used
with λ = 10, which holds with probability at least 1 − 2·exp(−λ²/2 · (1−u)²)
≈ 1 − 4e-22 per entry. `depth` counts every rounding on the longest chain of
operations; an elementary function (log, exp) counts as `ULPS_PER_FUNCTION`
roundings (XLA's float32 log and exp are accurate to a few ulp).
"""

import numpy as np

UNIT_ROUNDOFF = 2.0**-24
ULPS_PER_FUNCTION = 4
_LAMBDA = 10.0


def gamma(depth: float) -> float:
  """Relative error factor of `depth` chained float32 roundings.

  Args:
    depth: number of roundings on the longest chain (n for a length-n sum).

  Returns:
    γ_depth = depth·u/(1 − depth·u) for short chains, λ·√depth·u (λ = 10) once
    that is smaller (depth > 100).
  """
  worst = depth * UNIT_ROUNDOFF / (1.0 - depth * UNIT_ROUNDOFF)
  return min(worst, _LAMBDA * np.sqrt(depth) * UNIT_ROUNDOFF)


def bound(magnitude, depth: float):
  """Absolute float32 error bound: γ_depth times the magnitude of the terms that cancel.

  Args:
    magnitude: (...) Σ|terms| of the computation, e.g. Σ_d |x_d y_d| for a dot
      product x·y; same units as the result.
    depth: roundings on the longest chain (see `gamma`).

  Returns:
    (...) float64 absolute tolerance, for `np.testing.assert_allclose(..., rtol=0, atol=...)`
    or an elementwise `np.abs(got - want) <= bound`.
  """
  return gamma(depth) * np.abs(np.asarray(magnitude, np.float64))


def as_float32(x):
  """`x` rounded to float32, returned as float64 (the exact inputs a float32 computation sees)."""
  return np.asarray(np.asarray(x, np.float32), np.float64)


def assert_within(got, want, tolerance, err_msg: str = "") -> None:
  """Asserts |got − want| ≤ tolerance elementwise (tolerance broadcast), with a useful message.

  Args:
    got: (...) the float32 result.
    want: (...) the float64 reference.
    tolerance: (...) absolute bound from `bound`.
    err_msg: prefix of the failure message.
  """
  got, want, tolerance = np.broadcast_arrays(np.asarray(got, np.float64),
                                             np.asarray(want, np.float64),
                                             np.asarray(tolerance, np.float64))
  error = np.abs(got - want)
  bad = ~(error <= tolerance)
  if np.any(bad):
    worst = np.unravel_index(np.argmax(np.where(np.isfinite(error), error / tolerance, np.inf)),
                             error.shape)
    raise AssertionError(
        f"{err_msg} {int(bad.sum())} of {bad.size} entries exceed the float32 bound; worst at "
        f"{worst}: got {got[worst]!r}, want {want[worst]!r}, |diff| {error[worst]:.3g} > "
        f"{tolerance[worst]:.3g}")


def woodbury_log_density_magnitude(data, mean, basis, variances, noise):
  """Magnitude of the terms that cancel in a PPCA log-density (METHOD §2, Woodbury form).

  Covers both forms in `lift3d.pose_model`: `y − μ` centred first, or
  `||y||² − 2μ·y + ||μ||²` from one product: each squared norm and projection
  is bounded by its sum of absolute terms.

  Args:
    data: (N, D) samples.
    mean: (D,).
    basis: (J, D) orthonormal rows.
    variances: (J,) λ.
    noise: () σ².

  Returns:
    (N,) float64 Σ|terms| of `−½ (quad + log|C| + D log 2π)`, same units (nats).
  """
  data, mean, basis = (np.asarray(x, np.float64) for x in (data, mean, basis))
  variances, noise = np.asarray(variances, np.float64), float(noise)
  dim, num_basis = data.shape[-1], basis.shape[0]
  shrink = variances / (variances + noise)
  proj = np.abs(data) @ np.abs(basis).T + np.abs(basis) @ np.abs(mean)  # (N, J)
  quad_terms = (np.sum(data**2, -1) + 2 * np.abs(data) @ np.abs(mean) + np.sum(mean**2)
                + np.sum(shrink * proj**2, -1)) / noise
  other_terms = (np.sum(np.abs(np.log(variances + noise))) + (dim - num_basis)
                 * abs(np.log(noise)) + dim * np.log(2 * np.pi))
  return 0.5 * (quad_terms + other_terms)


def woodbury_log_density_depth(dim: int, num_basis: int) -> int:
  """Roundings on the longest chain of that log-density: a D-sum, a J-sum, 4 operations, a log."""
  return dim + num_basis + 4 + ULPS_PER_FUNCTION
