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
from tests.pose_model import synthetic

mixture_lib = importlib.import_module("lift3d.pose_model.mixture")
DIM, NUM_BASIS = 12, 2


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
  np.testing.assert_allclose(fit.log_likelihood[-1],
                             float(jnp.mean(log_likelihood(mix, data))), atol=2e-4)


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


@pytest.mark.usefixtures("full_precision")
def test_log_densities_match_dense_gaussians_and_chunked_form():
  rng, planted = _planted(1)
  mix = Mixture(*(jnp.asarray(x, jnp.float32) for x in planted))
  data, _ = _sample(rng, planted, 7)
  dense = []
  for k in range(3):
    cov = planted.basis[k].T @ np.diag(planted.variances[k]) @ planted.basis[k]
    cov += planted.noise[k] * np.eye(DIM)
    centred = data - planted.mean[k]
    quad = np.einsum("nd,de,ne->n", centred, np.linalg.inv(cov), centred)
    dense.append(np.log(planted.weights[k]) - 0.5 * (quad + np.linalg.slogdet(cov)[1]
                                                     + DIM * np.log(2 * np.pi)))
  dense = np.stack(dense, -1)
  data32 = jnp.asarray(data, jnp.float32)
  np.testing.assert_allclose(component_log_densities(mix, data32), dense, rtol=1e-4)
  columns = mixture_lib._log_densities_columns(mix, data32.T)
  np.testing.assert_allclose(columns.T, dense, rtol=1e-4)
  resp = responsibilities(mix, data32)
  np.testing.assert_allclose(resp, np.exp(dense - dense.max(1, keepdims=True))
                             / np.exp(dense - dense.max(1, keepdims=True)).sum(1, keepdims=True),
                             atol=1e-5)


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
  np.testing.assert_allclose(total, data.T @ data, rtol=1e-4)
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
  resp = np.asarray(responsibilities(mix, jnp.asarray(data, jnp.float32)), np.float64)
  np.testing.assert_allclose(counts, resp.sum(0), rtol=1e-4)
  np.testing.assert_allclose(sums, resp.T @ data, rtol=1e-4, atol=1e-2)
  np.testing.assert_allclose(outer, np.einsum("nk,nd,ne->kde", resp, data, data), rtol=1e-4,
                             atol=0.05)
  np.testing.assert_allclose(total, np.sum(log_likelihood(mix, jnp.asarray(data))), rtol=1e-5)
