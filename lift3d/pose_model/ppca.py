"""Probabilistic PCA in closed form (Tipping & Bishop 1999), on flat vectors.

A PPCA over D-dimensional vectors y models `y = μ + Σ_j a_j e_j + ε` with an
orthonormal basis e (J×D), `a_j ~ N(0, λ_j)` and `ε ~ N(0, σ² I)`, so
`cov y = eᵀ diag(λ) e + σ² I`. Poses are flattened (L, 3) → 3L row-major.

The basis size may be a traced integer (`num_active`): the basis keeps its
static J rows and the rows past `num_active` are zero with λ = 0, so growing
the basis (docs/method.md §2) does not recompile.

Shape letters: N samples, D = 3L dimensions, J basis vectors.

Reference: M. E. Tipping and C. M. Bishop, "Probabilistic principal component
analysis", J. R. Statist. Soc. B 61(3), 1999.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lift3d._precision import float32_matmuls


class PPCA(NamedTuple):
  """A probabilistic PCA (a pytree).

  Attributes:
    mean: (..., D) mean vector.
    basis: (..., J, D) orthonormal rows (inactive rows are zero).
    variances: (..., J) coefficient variances λ (0 for inactive rows).
    noise: (...) isotropic residual variance σ².
  """

  mean: jax.Array
  basis: jax.Array
  variances: jax.Array
  noise: jax.Array


def from_moments(mean: jax.Array, covariance: jax.Array, num_basis: int,
                 num_active=None, *, noise_floor: float = 0.0) -> PPCA:
  """The maximum-likelihood PPCA for a sample mean and covariance (closed form).

  `e` = top eigenvectors of `covariance`, `σ²` = mean of the remaining
  eigenvalues, `λ_j = eig_j − σ²` (Tipping & Bishop 1999, eq. 7–8).

  Args:
    mean: (D,) sample mean.
    covariance: (D, D) symmetric sample covariance (divided by N, not N−1).
    num_basis: static J, the number of basis rows returned.
    num_active: optional int or traced int32 in [0, J]: only the first
      `num_active` rows are used (the others zero); default J.
    noise_floor: lower bound on σ² (keeps the model proper on degenerate data).

  Returns:
    A `PPCA` with basis (J, D).
  """
  dim = covariance.shape[-1]
  if not 0 <= num_basis < dim:
    raise ValueError(f"num_basis must be in [0, {dim}), got {num_basis}")
  if num_active is None:
    num_active = num_basis
  covariance = 0.5 * (covariance + covariance.T)
  eigvals, eigvecs = jnp.linalg.eigh(covariance)  # ascending
  eigvals = jnp.maximum(eigvals[::-1], 0.0)
  eigvecs = eigvecs[:, ::-1].T  # rows, descending eigenvalue
  index = jnp.arange(dim)
  rest = index >= num_active
  noise = jnp.sum(jnp.where(rest, eigvals, 0.0)) / jnp.maximum(jnp.sum(rest), 1)
  noise = jnp.maximum(noise, noise_floor)
  active = (index < num_active)[:num_basis]
  variances = jnp.where(active, jnp.maximum(eigvals[:num_basis] - noise, 0.0), 0.0)
  basis = jnp.where(active[:, None], _fix_signs(eigvecs[:num_basis]), 0.0)
  return PPCA(mean, basis, variances, noise)


def _fix_signs(rows: jax.Array) -> jax.Array:
  """Makes each row's largest-magnitude entry positive (eigenvector signs are arbitrary)."""
  pivot = jnp.take_along_axis(rows, jnp.argmax(jnp.abs(rows), axis=-1)[:, None], axis=-1)
  return rows * jnp.where(pivot < 0, -1.0, 1.0)


@float32_matmuls
def fit(data, num_basis: int, *, weights=None, noise_floor: float = 0.0) -> PPCA:
  """Fits a PPCA to samples in closed form.

  Args:
    data: (N, D) samples.
    num_basis: J, the number of basis vectors (0 ≤ J < D).
    weights: optional (N,) non-negative sample weights.
    noise_floor: lower bound on σ².

  Returns:
    A `PPCA` with mean (D,), basis (J, D), variances (J,), noise ().
  """
  data = jnp.asarray(data, jnp.float32)
  if data.ndim != 2 or data.shape[0] < 2:
    raise ValueError(f"expected data (N, D) with N ≥ 2, got {data.shape}")
  if not bool(jnp.all(jnp.isfinite(data))):
    raise ValueError("data contain NaN or infinite values")
  if weights is None:
    weights = jnp.ones(data.shape[:1], jnp.float32)
  weights = jnp.asarray(weights, jnp.float32)
  if weights.shape != data.shape[:1]:
    raise ValueError(f"expected weights ({data.shape[0]},), got {weights.shape}")
  total = jnp.sum(weights)
  mean = weights @ data / total
  centred = data - mean
  covariance = (centred * weights[:, None]).T @ centred / total
  return from_moments(mean, covariance, num_basis, noise_floor=noise_floor)


@float32_matmuls
def project(ppca: PPCA, data: jax.Array) -> jax.Array:
  """Least-squares coefficients of `data` on the basis, `a = e (y − μ)`.

  Args:
    ppca: the model, basis (J, D).
    data: (..., D).

  Returns:
    (..., J) coefficients.
  """
  return (data - ppca.mean) @ ppca.basis.T


@float32_matmuls
def log_likelihood(ppca: PPCA, data: jax.Array) -> jax.Array:
  """Gaussian log-density of each sample under the PPCA, via the Woodbury identity.

  With an orthonormal basis, `C⁻¹ = (I − eᵀ diag(λ/(λ+σ²)) e)/σ²` and
  `log|C| = Σ_j log(λ_j + σ²) + (D − J) log σ²`: no D×D inverse is formed.

  Args:
    ppca: the model, mean (D,), basis (J, D).
    data: (..., D).

  Returns:
    (...) log-densities (natural log).
  """
  dim = data.shape[-1]
  num_basis = ppca.basis.shape[-2]
  centred = data - ppca.mean
  coeffs = centred @ ppca.basis.T
  shrink = ppca.variances / (ppca.variances + ppca.noise)
  quad = (jnp.sum(centred**2, -1) - jnp.sum(shrink * coeffs**2, -1)) / ppca.noise
  logdet = jnp.sum(jnp.log(ppca.variances + ppca.noise)) + (dim - num_basis) * jnp.log(ppca.noise)
  return -0.5 * (quad + logdet + dim * np.log(2 * np.pi))


def covariance(ppca: PPCA) -> jax.Array:
  """The model covariance `eᵀ diag(λ) e + σ² I`, (D, D) (for tests and small D)."""
  dim = ppca.mean.shape[-1]
  return (ppca.basis.T * ppca.variances) @ ppca.basis + ppca.noise * jnp.eye(dim)


def sample(key: jax.Array, ppca: PPCA, num: int) -> jax.Array:
  """Draws `num` samples from the PPCA.

  Args:
    key: a jax.random key.
    ppca: the model, mean (D,), basis (J, D).
    num: number of samples N.

  Returns:
    (N, D) samples.
  """
  coeff_key, noise_key = jax.random.split(key)
  num_basis = ppca.basis.shape[-2]
  coeffs = jax.random.normal(coeff_key, (num, num_basis)) * jnp.sqrt(ppca.variances)
  noise = jax.random.normal(noise_key, (num, ppca.mean.shape[-1])) * jnp.sqrt(ppca.noise)
  return ppca.mean + coeffs @ ppca.basis + noise
