"""Closed-form PPCA (Tipping & Bishop 1999) against planted parameters and dense maths."""

import jax
import jax.numpy as jnp
import numpy as np

from lift3d.pose_model import ppca
from tests.float32_bounds import (
    as_float32,
    assert_within,
    bound,
    gamma,
    woodbury_log_density_depth,
    woodbury_log_density_magnitude,
)
from tests.pose_model import synthetic

DIM, NUM_BASIS, NUM = 12, 3, 40000


def _planted(seed=0):
  rng = np.random.default_rng(seed)
  mean = rng.normal(size=DIM)
  basis = synthetic.random_orthonormal(rng, NUM_BASIS, DIM)
  variances = np.array([4.0, 2.0, 1.0])
  noise = 0.1
  return rng, mean, basis, variances, noise


def test_planted_ppca_is_recovered():
  rng, mean, basis, variances, noise = _planted()
  data = synthetic.sample_ppca(rng, mean, basis, variances, noise, NUM)
  fitted = ppca.fit(data, NUM_BASIS)
  # Principal angles between the planted and fitted subspaces: O(1/sqrt(N)).
  angles = synthetic.principal_angles(np.asarray(fitted.basis), basis)
  assert angles.max() < 0.02, angles
  # Orthonormal to the eigensolver's backward error p(D)·u (p(D) = D², see below) plus the product.
  assert_within(np.asarray(fitted.basis) @ np.asarray(fitted.basis).T, np.eye(NUM_BASIS),
                bound(1.0, DIM**2 + DIM))
  # Eigenvalue estimates have relative standard error sqrt(2/N) ≈ 0.007.
  np.testing.assert_allclose(fitted.variances, variances, rtol=0.04)
  np.testing.assert_allclose(fitted.noise, noise, rtol=0.03)
  np.testing.assert_allclose(fitted.mean, mean, atol=5 * np.sqrt(5.0 / NUM))


def test_log_likelihood_matches_dense_gaussian():
  rng, mean, basis, variances, noise = _planted(1)
  model = ppca.PPCA(*(jnp.asarray(x, jnp.float32) for x in (mean, basis, variances, noise)))
  data = synthetic.sample_ppca(rng, mean, basis, variances, noise, 5)
  # The reference sees the float32-rounded inputs (only the rounding inside differs).
  mean, basis, variances, noise, data = map(as_float32, (mean, basis, variances, noise, data))
  cov = basis.T @ np.diag(variances) @ basis + noise * np.eye(DIM)
  centred = data - mean
  _, logdet = np.linalg.slogdet(cov)
  dense = -0.5 * (np.einsum("nd,de,ne->n", centred, np.linalg.inv(cov), centred) + logdet
                  + DIM * np.log(2 * np.pi))
  # The float32 basis is orthonormal to u·D per entry, not exactly: Woodbury then
  # differs from the dense inverse by about that times the quadratic form.
  magnitude = woodbury_log_density_magnitude(data, mean, basis, variances, noise)
  depth = woodbury_log_density_depth(DIM, NUM_BASIS) + DIM
  assert_within(ppca.log_likelihood(model, jnp.asarray(data, jnp.float32)), dense,
                bound(magnitude, depth))
  # Each entry is a J-term sum of products, then + σ² on the diagonal.
  assert_within(ppca.covariance(model), cov,
                bound(np.abs(basis.T) @ np.diag(variances) @ np.abs(basis) + noise * np.eye(DIM),
                      NUM_BASIS + 2))


def test_from_moments_with_fewer_active_rows_equals_smaller_fit():
  rng, mean, basis, variances, noise = _planted(2)
  data = as_float32(synthetic.sample_ppca(rng, mean, basis, variances, noise, 3000))
  small = ppca.fit(data, 2)
  centred = data - data.mean(0)
  cov64 = centred.T @ centred / len(data)
  cov = jnp.asarray(cov64, jnp.float32)
  grown = jax.jit(ppca.from_moments, static_argnums=2)(jnp.asarray(data.mean(0), jnp.float32),
                                                       cov, 4, jnp.int32(2))
  np.testing.assert_allclose(grown.basis[2:], 0.0)
  np.testing.assert_allclose(grown.variances[2:], 0.0)
  # The two covariances differ by `fit`'s float32 sums over N (and the rounding of
  # `cov`); each eigensolver adds a backward error of p(D)·u·||C|| (LAPACK's
  # symmetric eigensolvers are backward stable; p(D) = D² is a safe modest
  # polynomial). Weyl bounds each eigenvalue's change by ||ΔC||₂ ≤ ||ΔC||_F, and
  # Davis–Kahan each eigenvector's angle by ||ΔC||₂ / (gap to the other eigenvalues).
  abs_scatter = np.abs(centred).T @ np.abs(centred) / len(data)
  delta_cov = np.linalg.norm(bound(abs_scatter, len(data) + 4) + bound(cov64, 1))
  delta_cov += 2 * gamma(DIM**2) * np.linalg.norm(cov64)
  eigvals = np.linalg.eigvalsh(cov64)[::-1]
  gaps = np.array([min(abs(eigvals[j] - eigvals[i]) for i in range(DIM) if i != j)
                   for j in range(2)])
  assert np.all(2 * delta_cov / gaps < 1e-3), gaps  # the check below is a sharp one
  signs = np.sign(np.sum(np.asarray(grown.basis[:2]) * np.asarray(small.basis), 1, keepdims=True))
  assert_within(signs * np.asarray(grown.basis[:2]), small.basis,
                2 * delta_cov / gaps[:, None], "basis:")
  # noise = mean of the D − J smallest eigenvalues; variances = eigenvalue − noise.
  assert_within(grown.noise, small.noise, delta_cov + bound(eigvals[2:].mean(), DIM), "noise:")
  assert_within(grown.variances[:2], small.variances,
                2 * delta_cov + bound(eigvals[:2], DIM + 2), "variances:")
  # Inactive rows do not change the density: the same model without them.
  points = jnp.asarray(data[:4], jnp.float32)
  trimmed = ppca.PPCA(grown.mean, grown.basis[:2], grown.variances[:2], grown.noise)
  magnitude = woodbury_log_density_magnitude(points, grown.mean, grown.basis, grown.variances,
                                             grown.noise)
  assert_within(ppca.log_likelihood(grown, points), ppca.log_likelihood(trimmed, points),
                2 * bound(magnitude, woodbury_log_density_depth(DIM, 4)), "log-likelihood:")


def test_sample_has_the_model_covariance():
  _, mean, basis, variances, noise = _planted(3)
  model = ppca.PPCA(*(jnp.asarray(x, jnp.float32) for x in (mean, basis, variances, noise)))
  draws = np.asarray(ppca.sample(jax.random.key(0), model, 20000), np.float64)
  np.testing.assert_allclose(np.cov(draws.T), ppca.covariance(model), atol=0.15)
  point = as_float32(mean + basis[0])
  # e (y − μ): the rounded inputs are off by u·|y| per entry, then a D-term dot product.
  assert_within(np.asarray(ppca.project(model, jnp.asarray(point, jnp.float32))), [1.0, 0.0, 0.0],
                bound(np.abs(basis) @ (np.abs(point) + np.abs(mean)), DIM + 3))


def test_projection_and_log_likelihood_use_full_float32_products():
  # On GPU/TPU the default is TF32/bfloat16; the moments need float32.
  data = np.random.default_rng(0).normal(size=(500, DIM)).astype(np.float32)
  model = ppca.fit(data, 2)
  for fn in (lambda x: ppca.project(model, x), lambda x: ppca.log_likelihood(model, x)):
    text = jax.jit(fn).lower(data).as_text()
    dots = [line for line in text.splitlines() if "dot_general" in line]
    assert dots
    assert all("precision = [HIGHEST, HIGHEST]" in line for line in dots), dots
