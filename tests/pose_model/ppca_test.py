"""Closed-form PPCA (Tipping & Bishop 1999) against planted parameters and dense maths."""

import jax
import jax.numpy as jnp
import numpy as np

from lift3d.pose_model import ppca
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
  np.testing.assert_allclose(np.asarray(fitted.basis) @ np.asarray(fitted.basis).T,
                             np.eye(NUM_BASIS), atol=1e-5)
  # Eigenvalue estimates have relative standard error sqrt(2/N) ≈ 0.007.
  np.testing.assert_allclose(fitted.variances, variances, rtol=0.04)
  np.testing.assert_allclose(fitted.noise, noise, rtol=0.03)
  np.testing.assert_allclose(fitted.mean, mean, atol=5 * np.sqrt(5.0 / NUM))


def test_log_likelihood_matches_dense_gaussian():
  rng, mean, basis, variances, noise = _planted(1)
  model = ppca.PPCA(*(jnp.asarray(x, jnp.float32) for x in (mean, basis, variances, noise)))
  data = synthetic.sample_ppca(rng, mean, basis, variances, noise, 5)
  cov = basis.T @ np.diag(variances) @ basis + noise * np.eye(DIM)
  centred = data - mean
  _, logdet = np.linalg.slogdet(cov)
  dense = -0.5 * (np.einsum("nd,de,ne->n", centred, np.linalg.inv(cov), centred) + logdet
                  + DIM * np.log(2 * np.pi))
  np.testing.assert_allclose(ppca.log_likelihood(model, jnp.asarray(data, jnp.float32)), dense,
                             rtol=1e-5)
  np.testing.assert_allclose(ppca.covariance(model), cov, atol=1e-5)


def test_from_moments_with_fewer_active_rows_equals_smaller_fit():
  rng, mean, basis, variances, noise = _planted(2)
  data = synthetic.sample_ppca(rng, mean, basis, variances, noise, 3000)
  small = ppca.fit(data, 2)
  centred = data - data.mean(0)
  cov = jnp.asarray(centred.T @ centred / len(data), jnp.float32)
  grown = jax.jit(ppca.from_moments, static_argnums=2)(jnp.asarray(data.mean(0), jnp.float32),
                                                       cov, 4, jnp.int32(2))
  np.testing.assert_allclose(grown.basis[:2], small.basis, atol=1e-4)
  np.testing.assert_allclose(grown.basis[2:], 0.0)
  np.testing.assert_allclose(grown.variances[:2], small.variances, rtol=1e-4)
  np.testing.assert_allclose(grown.variances[2:], 0.0)
  np.testing.assert_allclose(grown.noise, small.noise, rtol=1e-4)
  # Inactive rows do not change the density.
  points = jnp.asarray(data[:4], jnp.float32)
  np.testing.assert_allclose(ppca.log_likelihood(grown, points),
                             ppca.log_likelihood(small, points), rtol=1e-5)


def test_sample_has_the_model_covariance():
  _, mean, basis, variances, noise = _planted(3)
  model = ppca.PPCA(*(jnp.asarray(x, jnp.float32) for x in (mean, basis, variances, noise)))
  draws = np.asarray(ppca.sample(jax.random.key(0), model, 20000), np.float64)
  np.testing.assert_allclose(np.cov(draws.T), ppca.covariance(model), atol=0.15)
  np.testing.assert_allclose(np.asarray(ppca.project(model, jnp.asarray(mean + basis[0]))),
                             [1.0, 0.0, 0.0], atol=1e-5)


def test_projection_and_log_likelihood_use_full_float32_products():
  # On GPU/TPU the default is TF32/bfloat16; the moments need float32.
  data = np.random.default_rng(0).normal(size=(500, DIM)).astype(np.float32)
  model = ppca.fit(data, 2)
  for fn in (lambda x: ppca.project(model, x), lambda x: ppca.log_likelihood(model, x)):
    text = jax.jit(fn).lower(data).as_text()
    dots = [line for line in text.splitlines() if "dot_general" in line]
    assert dots
    assert all("precision = [HIGHEST, HIGHEST]" in line for line in dots), dots
