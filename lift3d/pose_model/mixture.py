"""Mixture of probabilistic PCA (docs/method.md §3, paper §4.2), fitted by EM on chunked data.

Component k is a PPCA (mean μ_k, orthonormal basis e_k, variances λ_k, noise
σ_k²) with weight π_k. EM (Tipping & Bishop 1999, "Mixtures of probabilistic
principal component analysers") treats the component labels as missing: the
E-step computes responsibilities `r_nk ∝ π_k N(y_n; μ_k, e_kᵀ diag(λ_k) e_k +
σ_k² I)` in log space with the Woodbury identity, and the M-step refits every
component in closed form from its responsibility-weighted mean and covariance,
so the log-likelihood never decreases. The sufficient statistics (Σ r, Σ r·y,
Σ r·y yᵀ, with y centred on a fixed offset near the data mean so that float32
sums stay well conditioned) are accumulated chunk by chunk and across devices.

Initial centres are chosen greedily on a subsample (docs/method.md §3); the first
M-step uses the hard assignment of every sample to its nearest centre.

Shape letters: N samples, D dimensions, K components, J basis vectors,
C chunks, B rows per chunk.
"""

from __future__ import annotations

import functools
import logging
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lift3d._precision import float32_matmuls
from lift3d.pose_model import ppca as ppca_lib
from lift3d.pose_model import stream
from lift3d.progress import bar as progress_bar


class Mixture(NamedTuple):
  """A mixture of PPCA over flat vectors (a pytree).

  Attributes:
    mean: (K, D) component means.
    basis: (K, J, D) orthonormal basis rows per component.
    variances: (K, J) coefficient variances λ.
    noise: (K,) isotropic residual variances σ².
    weights: (K,) mixture weights π, summing to 1.
  """

  mean: jax.Array
  basis: jax.Array
  variances: jax.Array
  noise: jax.Array
  weights: jax.Array

  def component(self, k: int) -> ppca_lib.PPCA:
    """The PPCA of component k."""
    return ppca_lib.PPCA(self.mean[k], self.basis[k], self.variances[k], self.noise[k])


@float32_matmuls
def component_log_densities(mixture: Mixture, data: jax.Array) -> jax.Array:
  """`log π_k + log N(y; μ_k, C_k)` for every sample and component (Woodbury).

  Args:
    mixture: the model.
    data: (..., D).

  Returns:
    (..., K) joint log-densities.
  """
  per_component = jax.vmap(
      lambda mean, basis, variances, noise: ppca_lib.log_likelihood(
          ppca_lib.PPCA(mean, basis, variances, noise), data),
      out_axes=-1,
  )(mixture.mean, mixture.basis, mixture.variances, mixture.noise)
  return per_component + jnp.log(mixture.weights)


@float32_matmuls
def log_likelihood(mixture: Mixture, data: jax.Array) -> jax.Array:
  """Log-density of each sample under the mixture.

  Args:
    mixture: the model.
    data: (..., D).

  Returns:
    (...) log-densities.
  """
  return jax.nn.logsumexp(component_log_densities(mixture, data), axis=-1)


@float32_matmuls
def responsibilities(mixture: Mixture, data: jax.Array) -> jax.Array:
  """Posterior component probabilities `r_nk`, (..., K), rows summing to 1."""
  return jax.nn.softmax(component_log_densities(mixture, data), axis=-1)


def greedy_centres(data, num_centres: int, *, min_distance: float = 1e-6) -> np.ndarray:
  """Greedy initial centres (docs/method.md §3).

  Each new centre is the sample that most reduces `Σ_n min_{s∈S} ||y_n − s||`;
  the choice stops early when the best candidate lies closer than
  `min_distance` to a chosen centre (so duplicates are never chosen).

  Args:
    data: (n, D) samples (a subsample of the training set).
    num_centres: K, the most centres to choose.
    min_distance: the early-stop threshold, in the units of `data`.

  Returns:
    (k,) int indices into `data`, 1 ≤ k ≤ K, in the order chosen.
  """
  data = np.asarray(data, np.float64)
  if data.ndim != 2 or len(data) < 1:
    raise ValueError(f"expected data (n, D) with n ≥ 1, got {data.shape}")
  sq = np.sum(data**2, 1)
  dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * data @ data.T, 0.0))
  nearest = np.full(len(data), np.inf)
  chosen: list[int] = []
  for _ in range(min(num_centres, len(data))):
    totals = np.sum(np.minimum(nearest[:, None], dist), axis=0)
    totals[chosen] = np.inf
    best = int(np.argmin(totals))
    if chosen and np.min(dist[best, chosen]) < min_distance:
      break
    chosen.append(best)
    nearest = np.minimum(nearest, dist[:, best])
  return np.array(chosen, np.int64)


def _log_densities_columns(mixture: Mixture, columns):
  """`component_log_densities` for samples as columns: (D, B) → (K, B).

  One product `[μ_k; e_k] y` for all components gives `μ_k·y` and `e_k y`;
  `||y − μ_k||² = ||y||² − 2 μ_k·y + ||μ_k||²`, and the Woodbury form of
  `ppca.log_likelihood` needs nothing else: no (K, D, B) temporaries.
  """
  dim = columns.shape[0]
  num_components, num_basis = mixture.basis.shape[:2]
  stacked = jnp.concatenate([mixture.mean[:, None], mixture.basis], 1)  # (K, 1+J, D)
  proj = (stacked.reshape(-1, dim) @ columns).reshape(num_components, num_basis + 1, -1)
  sq_mean = jnp.sum(mixture.mean**2, 1)
  basis_mean = jnp.einsum("kjd,kd->kj", mixture.basis, mixture.mean)
  centred_sq = jnp.sum(columns**2, 0) - 2.0 * proj[:, 0] + sq_mean[:, None]  # (K, B)
  coeffs = proj[:, 1:] - basis_mean[:, :, None]  # (K, J, B)
  noise = mixture.noise[:, None]
  shrink = mixture.variances / (mixture.variances + noise)
  quad = (centred_sq - jnp.sum(shrink[:, :, None] * coeffs**2, 1)) / noise
  logdet = (jnp.sum(jnp.log(mixture.variances + noise), 1)
            + (dim - num_basis) * jnp.log(mixture.noise))
  log_normal = -0.5 * (quad + logdet[:, None] + dim * np.log(2 * np.pi))
  return log_normal + jnp.log(mixture.weights)[:, None]


@jax.jit
def _scatter(chunked: stream.Chunked):
  """Σ_n y_n y_nᵀ over all samples (fixed for the whole EM)."""
  return stream.scan_sum(lambda columns, mask: (columns * mask) @ columns.T, chunked)


@jax.jit
def _em_stats(chunked: stream.Chunked, mixture: Mixture, scatter):
  """E-step: log-likelihood of `mixture` and the statistics (Σ r, Σ r·y, Σ r·y yᵀ) per component.

  The responsibilities sum to one per sample, so the second moments of the
  heaviest component are the total scatter minus the others': K−1 products
  instead of K (a third less work for K = 3, none for K = 1), and the
  subtraction is well conditioned since that component holds ≥ 1/K of the data.
  """
  num_components = mixture.weights.shape[0]
  heaviest = jnp.argmax(mixture.weights)
  others = jnp.argsort(jnp.arange(num_components) == heaviest, stable=True)[:-1]

  def fn(columns, mask):
    dim = columns.shape[0]
    joint = _log_densities_columns(mixture, columns)
    total = jax.nn.logsumexp(joint, 0, keepdims=True)
    weights = jnp.exp(joint - total) * mask  # (K, B)
    counts = jnp.sum(weights, 1)
    sums = weights @ columns.T  # (K, D)
    # One ((K−1)·D, B) × (B, D) product for the other components.
    weighted = (weights[others][:, None, :] * columns[None]).reshape(-1, columns.shape[1])
    outer = (weighted @ columns.T).reshape(num_components - 1, dim, dim)
    return jnp.sum(total[0] * mask), (counts, sums, outer)

  log_likelihood, (counts, sums, partial) = stream.scan_sum(fn, chunked)
  outer = jnp.zeros((num_components, *scatter.shape), scatter.dtype).at[others].set(partial)
  outer = outer.at[heaviest].set(scatter - jnp.sum(partial, 0))
  return log_likelihood, (counts, sums, outer)


@functools.partial(jax.jit, static_argnames=("num_basis",))
def _m_step(stats, previous: Mixture, noise_floor, *, num_basis):
  """Closed-form M-step: each component is the ML PPCA of its weighted moments."""
  counts, sums, outer = stats
  safe = jnp.maximum(counts, 1e-12)
  mean = sums / safe[:, None]
  covariance = outer / safe[:, None, None] - mean[:, :, None] * mean[:, None, :]
  fitted = jax.vmap(
      lambda mean, cov: ppca_lib.from_moments(mean, cov, num_basis, noise_floor=noise_floor)
  )(mean, covariance)
  weights = counts / jnp.sum(counts)
  mixture = Mixture(fitted.mean, fitted.basis, fitted.variances, fitted.noise, weights)
  # A component that lost (almost) all its samples keeps its old shape; its
  # weight goes to ~0, so it no longer affects the likelihood.
  alive = counts > 1e-6 * jnp.sum(counts)
  return jax.tree.map(
      lambda new, old: jnp.where(alive.reshape((-1,) + (1,) * (new.ndim - 1)), new, old),
      mixture, previous._replace(weights=weights))


# σ² of the vanishing-width Gaussians that turn the E-step into a hard
# assignment (squared distances are ≥ 1e-8 apart in float32 sums of normalised
# poses, so the responsibilities are one-hot).
_HARD_WIDTH = 1e-12


class MixtureFit(NamedTuple):
  """What `fit_mixture` returns.

  Attributes:
    mixture: the fitted `Mixture`.
    log_likelihood: (M,) mean log-likelihood per sample of the model before
      each M-step (the last entry is the returned model's), non-decreasing.
    centres: (K, D) the greedy initial centres.
  """

  mixture: Mixture
  log_likelihood: np.ndarray
  centres: np.ndarray


@float32_matmuls
def fit_mixture_chunked(chunked: stream.Chunked, num_samples: int, num_components: int,
                        num_basis: int, *, key: jax.Array, iterations: int = 30,
                        tolerance: float = 1e-5, init_subsample: int = 2000,
                        min_centre_distance: float = 1e-6, noise_floor: float = 1e-7,
                        offset=None, progress: bool = False) -> MixtureFit:
  """`fit_mixture` on samples already chunked (see `lift3d.pose_model.stream`).

  Args:
    chunked: samples minus `offset`, as columns (C, D, B), with mask (C, B).
      Centring the samples near their mean keeps the float32 second moments
      accurate.
    num_samples: N, the number of real (unpadded) samples.
    offset: (D,) added back to the means and centres; default zero.
    Others: as for `fit_mixture`.

  Returns:
    A `MixtureFit`.
  """
  rows = chunked.data.shape[-1]
  mesh = stream.mesh_of(chunked)
  # (NumPy draws the subsample, seeded from the key: jax.random.choice without
  # replacement would compile a sort of all N indices.)
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
  pick = np.sort(rng.choice(num_samples, min(init_subsample, num_samples), replace=False))
  subsample = np.asarray(chunked.data[pick // rows, :, pick % rows])  # (n, D)
  centres = subsample[greedy_centres(subsample, num_components, min_distance=min_centre_distance)]
  if len(centres) < num_components:
    logging.warning("fit_mixture: only %d distinct initial centres for %d components",
                    len(centres), num_components)
  num_found, dim = centres.shape
  # The first M-step uses the hard assignment to the nearest centre: the
  # E-step of a mixture of equal isotropic Gaussians of vanishing width at the
  # centres (so it reuses the compiled E-step). Every centre owns at least
  # itself, so the M-step replaces no component by this placeholder.
  hard = Mixture(jnp.asarray(centres, jnp.float32),
                 jnp.zeros((num_found, num_basis, dim), jnp.float32),
                 jnp.zeros((num_found, num_basis), jnp.float32),
                 jnp.full((num_found,), _HARD_WIDTH, jnp.float32),
                 jnp.full((num_found,), 1.0 / num_found, jnp.float32))
  hard = stream.replicate(hard, mesh)
  noise_floor = stream.replicate(jnp.float32(noise_floor), mesh)
  scatter = _scatter(chunked)
  mixture = _m_step(_em_stats(chunked, hard, scatter)[1], hard, noise_floor,
                    num_basis=num_basis)
  history = []
  bar = progress_bar(total=iterations, desc="EM", disable=not progress)
  for _ in range(iterations):
    total, stats = _em_stats(chunked, mixture, scatter)
    history.append(float(total) / num_samples)
    bar.update(1)
    bar.set_postfix(ll=f"{history[-1]:.6g}")
    if len(history) > 1 and history[-1] - history[-2] <= tolerance * abs(history[-2]):
      break  # converged: keep the model whose likelihood was just measured.
    mixture = _m_step(stats, mixture, noise_floor, num_basis=num_basis)
  else:
    history.append(float(_em_stats(chunked, mixture, scatter)[0]) / num_samples)
  bar.close()
  logging.info("EM: K=%d J=%d, mean log-likelihood %.6g after %d iterations",
               len(centres), num_basis, history[-1], len(history) - 1)
  if offset is not None:
    mixture = mixture._replace(mean=mixture.mean + offset)
    centres = centres + offset
  return MixtureFit(mixture, np.array(history), np.asarray(centres))


@float32_matmuls
def fit_mixture(data, num_components: int, num_basis: int, *, key: jax.Array,
                iterations: int = 30, tolerance: float = 1e-5, init_subsample: int = 2000,
                min_centre_distance: float = 1e-6, noise_floor: float = 1e-7,
                chunk_size: int = 8192, devices=None, progress: bool = False) -> MixtureFit:
  """Fits a mixture of PPCA by EM (docs/method.md §3).

  Args:
    data: (N, D) samples (aligned, flattened poses).
    num_components: K, the most components (fewer if the greedy centres stop
      early).
    num_basis: J, basis vectors per component.
    key: jax.random key (draws the subsample for the initial centres).
    iterations: the most EM iterations.
    tolerance: stop when the mean log-likelihood rises by less than this
      fraction of its magnitude.
    init_subsample: size of the subsample the greedy centres are chosen from.
    min_centre_distance: greedy early-stop distance, units of `data`.
    noise_floor: lower bound on each σ_k².
    chunk_size: rows per chunk of the streamed sums.
    devices: devices to shard over (default all local devices).
    progress: show a tqdm bar.

  Returns:
    A `MixtureFit`.
  """
  data = np.asarray(data, np.float32)
  if data.ndim != 2 or data.shape[0] < 2:
    raise ValueError(f"expected data (N, D) with N ≥ 2, got {data.shape}")
  if not np.all(np.isfinite(data)):
    raise ValueError("data contain NaN or infinite values")
  if not 0 <= num_basis < data.shape[1]:
    raise ValueError(f"num_basis must be in [0, {data.shape[1]}), got {num_basis}")
  if num_components < 1:
    raise ValueError(f"num_components must be ≥ 1, got {num_components}")
  offset = np.mean(data, 0, dtype=np.float64).astype(np.float32)
  chunked = stream.chunk(data - offset, chunk_size, stream.make_mesh(devices))
  return fit_mixture_chunked(
      chunked, data.shape[0], num_components, num_basis, key=key, iterations=iterations,
      tolerance=tolerance, init_subsample=init_subsample,
      min_centre_distance=min_centre_distance, noise_floor=noise_floor,
      offset=jnp.asarray(offset), progress=progress)
