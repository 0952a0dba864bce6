"""Mixture of PPCA (docs/method.md §3) against planted components, brute force and dense maths."""

import importlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lift3d.pose_model import stream
from lift3d.pose_model.mixture import (
    Mixture,
    component_log_densities,
    fit_mixture,
    greedy_centres,
    log_likelihood,
    responsibilities,
)
from tests.float32_bounds import (
    ULPS_PER_FUNCTION,
    UNIT_ROUNDOFF,
    as_float32,
    assert_within,
    bound,
    gamma,
    woodbury_log_density_depth,
    woodbury_log_density_magnitude,
)
from tests.pose_model import synthetic

mixture_lib = importlib.import_module("lift3d.pose_model.mixture")
DIM, NUM_BASIS = 12, 2
_DEPTH = woodbury_log_density_depth(DIM, NUM_BASIS)


def _planted(seed=0):
  rng = np.random.default_rng(seed)
  means = np.stack([np.zeros(DIM), np.full(DIM, 3.0), np.r_[np.full(6, 3.0), np.full(6, -3.0)]])
  bases = np.stack([synthetic.random_orthonormal(rng, NUM_BASIS, DIM) for _ in range(3)])
  variances = np.array([[1.0, 0.5], [0.8, 0.3], [1.2, 0.2]])
  noise = np.array([0.05, 0.02, 0.08])
  weights = np.array([0.5, 0.3, 0.2])
  return rng, Mixture(means, bases, variances, noise, weights)


def _sample(rng, mix, num):
  labels = rng.choice(3, size=num, p=mix.weights)
  data = np.concatenate([
      synthetic.sample_ppca(rng, mix.mean[k], mix.basis[k], mix.variances[k], mix.noise[k],
                            int(np.sum(labels == k))) for k in range(3)])
  return data, np.sort(labels)


def test_planted_mixture_is_recovered():
  rng, planted = _planted()
  data, _ = _sample(rng, planted, 6000)
  fit = fit_mixture(data, 3, NUM_BASIS, key=jax.random.key(0), iterations=40, tolerance=0.0,
                    chunk_size=1024)
  assert fit.log_likelihood[-1] >= fit.log_likelihood[0]
  mix = fit.mixture
  # Match components by the permutation that best matches the means.
  perm = min(itertools.permutations(range(3)),
             key=lambda p: np.sum((np.asarray(mix.mean)[list(p)] - planted.mean) ** 2))
  perm = list(perm)
  np.testing.assert_allclose(np.asarray(mix.mean)[perm], planted.mean, atol=0.12)
  np.testing.assert_allclose(np.asarray(mix.weights)[perm], planted.weights, atol=0.03)
  np.testing.assert_allclose(np.asarray(mix.noise)[perm], planted.noise, rtol=0.1)
  np.testing.assert_allclose(np.asarray(mix.variances)[perm], planted.variances, rtol=0.15)
  for k, j in enumerate(perm):
    angles = synthetic.principal_angles(np.asarray(mix.basis[j]), planted.basis[k])
    assert angles.max() < 0.1, (k, angles)
  # The reported likelihood is the model's own.
  # (E-step columns form vs centred form: each within `bound` of exact, per sample.)
  _, magnitude = _dense_log_densities(Mixture(*map(as_float32, mix)), as_float32(data))
  per_sample = np.asarray(log_likelihood(mix, jnp.asarray(data, jnp.float32)), np.float64)
  tolerance = (np.mean(2 * bound(magnitude, _DEPTH).max(1)
                       + bound(per_sample, 2 * ULPS_PER_FUNCTION + 4))
               + bound(np.mean(np.abs(per_sample)), len(data) + 1))
  assert_within(fit.log_likelihood[-1], np.mean(per_sample), tolerance, "mean log-likelihood:")


def test_log_likelihood_never_decreases():
  # Overlapping components (close means, different subspaces): EM takes many steps.
  rng, planted = _planted(4)
  planted = planted._replace(mean=planted.mean * 0.1, noise=np.array([0.3, 0.3, 0.3]))
  data, _ = _sample(rng, planted, 6000)
  fit = fit_mixture(data, 3, NUM_BASIS, key=jax.random.key(1), iterations=25, tolerance=0.0,
                    chunk_size=1024)
  history = fit.log_likelihood
  assert len(history) > 10, history
  assert history[-1] > history[0] + 0.01
  assert np.all(np.diff(history) >= -1e-6 * np.abs(history[:-1])), np.diff(history)


def _dense_log_densities(mix, data):
  """float64 `log π_k + log N(y_n; μ_k, C_k)` from dense covariances, and the error scale.

  Returns (N, K) log-densities and the (N, K) magnitude of the terms that cancel
  in either Woodbury form of the library (`woodbury_log_density_magnitude`).
  """
  dense, magnitude = [], []
  for k in range(len(mix.weights)):
    mean, basis, variances, noise = mix.mean[k], mix.basis[k], mix.variances[k], mix.noise[k]
    cov = basis.T @ np.diag(variances) @ basis + noise * np.eye(DIM)
    centred = data - mean
    quad = np.einsum("nd,de,ne->n", centred, np.linalg.inv(cov), centred)
    logdet = np.linalg.slogdet(cov)[1]
    dense.append(np.log(mix.weights[k]) - 0.5 * (quad + logdet + DIM * np.log(2 * np.pi)))
    magnitude.append(abs(np.log(mix.weights[k]))
                     + woodbury_log_density_magnitude(data, mean, basis, variances, noise))
  return np.stack(dense, -1), np.stack(magnitude, -1)


@pytest.mark.usefixtures("full_precision")
def test_log_densities_match_dense_gaussians_and_chunked_form():
  rng, planted = _planted(1)
  data, _ = _sample(rng, planted, 7)
  # The reference sees the float32-rounded inputs, so only the rounding inside differs.
  mix = Mixture(*(jnp.asarray(x, jnp.float32) for x in planted))
  data32 = jnp.asarray(data, jnp.float32)
  dense, magnitude = _dense_log_densities(Mixture(*map(as_float32, planted)), as_float32(data))
  tolerance = bound(magnitude, _DEPTH)
  # The densities span −1 to −10⁴ with terms of 10³–10⁵ cancelling: a relative
  # tolerance on the result would be too loose for the far ones, too tight for −1.
  assert np.ptp(dense) > 1e3 and np.min(np.abs(dense)) < 5, dense
  assert_within(component_log_densities(mix, data32), dense, tolerance, "centred form:")
  columns = mixture_lib._log_densities_columns(mix, data32.T)
  assert_within(columns.T, dense, tolerance, "columns form:")
  # Softmax: |Δr_k| ≤ r_k (|Δl_k| + Σ_j r_j |Δl_j|) ≤ 2 r_k max_j |Δl_j|, plus the exp's rounding.
  resp_dense = np.exp(dense - dense.max(1, keepdims=True))
  resp_dense /= resp_dense.sum(1, keepdims=True)
  resp = responsibilities(mix, data32)
  resp_tolerance = resp_dense * (2 * tolerance.max(1, keepdims=True)
                                 + gamma(3 * ULPS_PER_FUNCTION + 3 + len(planted.weights)))
  assert_within(resp, resp_dense, resp_tolerance + UNIT_ROUNDOFF, "responsibilities:")


def _brute_force_greedy(data, k):
  dist = np.linalg.norm(data[:, None] - data[None], axis=-1)
  chosen = []
  for _ in range(k):
    def total(c, chosen=chosen):
      return np.sum(np.min(dist[:, [*chosen, c]], axis=1))
    chosen.append(min((c for c in range(len(data)) if c not in chosen), key=total))
  return chosen


def test_greedy_centres_match_brute_force_and_stop_on_duplicates():
  rng = np.random.default_rng(2)
  data = rng.normal(size=(40, 5))
  np.testing.assert_array_equal(greedy_centres(data, 4), _brute_force_greedy(data, 4))
  # The first centre is the medoid.
  dist = np.linalg.norm(data[:, None] - data[None], axis=-1)
  assert greedy_centres(data, 1)[0] == np.argmin(dist.sum(0))
  # Only two distinct points: the choice stops at two centres.
  dup = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), [6, 4], axis=0)
  assert sorted(greedy_centres(dup, 3).tolist()) in ([0, 6], [0, 7], [0, 8], [0, 9])


@pytest.mark.usefixtures("full_precision")
def test_sharded_sums_match_numpy():
  rng = np.random.default_rng(3)
  data = rng.normal(size=(1000, 4)).astype(np.float32)
  chunked = stream.chunk(data, 96, stream.make_mesh())
  assert chunked.data.shape[0] * chunked.data.shape[-1] >= 1000
  total = jax.jit(lambda c: stream.scan_sum(lambda x, m: (x * m) @ x.T, c))(chunked)
  data64 = data.astype(np.float64)
  assert_within(total, data64.T @ data64, bound(np.abs(data64).T @ np.abs(data64), len(data)))
  np.testing.assert_allclose(stream.unchunk(chunked.data, 1000), data)


def test_fit_mixture_rejects_bad_input():
  with pytest.raises(ValueError, match="N, D"):
    fit_mixture(np.zeros((10,)), 2, 1, key=jax.random.key(0))
  with pytest.raises(ValueError, match="NaN"):
    fit_mixture(np.full((10, 3), np.nan), 2, 1, key=jax.random.key(0))
  with pytest.raises(ValueError, match="num_basis"):
    fit_mixture(np.zeros((10, 3)), 2, 3, key=jax.random.key(0))


@pytest.mark.usefixtures("full_precision")
@pytest.mark.parametrize("num_components", [1, 3])
def test_em_statistics_match_direct_sums(num_components):
  rng, planted = _planted(5)
  planted = Mixture(*(x[:num_components] for x in planted[:4]),
                    np.full(num_components, 1.0 / num_components))
  data, _ = _sample(rng, _planted(5)[1], 700)
  mix = Mixture(*(jnp.asarray(x, jnp.float32) for x in planted))
  chunked = stream.chunk(data.astype(np.float32), 256, stream.make_mesh())
  scatter = mixture_lib._scatter(chunked)
  total, (counts, sums, outer) = mixture_lib._em_stats(chunked, mix, scatter)
  data = as_float32(data)
  resp = np.asarray(responsibilities(mix, jnp.asarray(data, jnp.float32)), np.float64)
  # Both the E-step (columns form) and `responsibilities` (centred form) are within
  # `tolerance` of the dense log-densities, so they differ by at most twice that,
  # and each responsibility by r·(2·2·max|Δl| + the softmax's own rounding).
  _, magnitude = _dense_log_densities(Mixture(*map(as_float32, planted)), data)
  tolerance = bound(magnitude, _DEPTH)
  resp_error = resp * (4 * tolerance.max(1, keepdims=True)
                       + gamma(3 * ULPS_PER_FUNCTION + 3 + num_components))  # (N, K)
  depth = len(data) + num_components  # sums over N (and over K for the heaviest component)
  assert_within(counts, resp.sum(0), resp_error.sum(0) + bound(resp.sum(0), depth), "counts:")
  assert_within(sums, resp.T @ data, resp_error.T @ np.abs(data)
                + bound(resp.T @ np.abs(data), depth), "sums:")
  # The heaviest component's moments are the scatter minus the others': bound every
  # component by the scatter's magnitude.
  abs_scatter = np.abs(data).T @ np.abs(data)
  assert_within(outer, np.einsum("nk,nd,ne->kde", resp, data, data),
                np.einsum("nk,nd,ne->kde", resp_error, np.abs(data), np.abs(data))
                + bound(abs_scatter, depth + 1), "outer:")
  # Per sample: the two forms' log-sum-exp differ by ≤ 2·max|Δl| plus its own rounding.
  per_sample = np.asarray(log_likelihood(mix, jnp.asarray(data, jnp.float32)), np.float64)
  total_tolerance = (np.sum(2 * tolerance.max(1) + bound(per_sample, 2 * ULPS_PER_FUNCTION + 4))
                     + bound(np.sum(np.abs(per_sample)), len(data)))
  assert_within(total, np.sum(per_sample), total_tolerance, "log-likelihood:")
