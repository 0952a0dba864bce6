"""Fitting the 3D pose model: normalise, mirror, align, mixture of PPCA (docs/method.md §1–§3).

The poses are chunked once and sharded over all local devices; every pass
(alignment, EM) streams the chunks, so memory stays a few copies of the poses
and the same fit runs on one CPU or a multi-device host.

Shape letters: N poses, L joints, K components, J basis vectors, D = 3L.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lift3d._precision import float32_matmuls
from lift3d.pose_model import mixture as mixture_lib
from lift3d.pose_model import stream
from lift3d.pose_model.alignment import align_chunked, from_planes
from lift3d.pose_model.model import PoseModel
from lift3d.pose_model.normalization import normalize
from lift3d.skeleton import H36M17, Skeleton, check_poses

# Fits on at least this many poses show progress bars unless told otherwise.
_PROGRESS_FROM = 100_000


class FitResult(NamedTuple):
  """A fitted model and what the fit saw.

  Attributes:
    model: the `PoseModel`.
    num_poses: poses fitted (input poses, doubled with `mirror`).
    yaws: (N,) radians, the ground-plane yaw of each input pose in the model
      frame (`pose ≈ R_θ · aligned pose`, normalised).
    scales: (N,) metres, each input pose's normalisation scale.
    align_cost: (M,) alignment cost history (non-increasing).
    log_likelihood: (I,) mean log-likelihood per pose over EM (non-decreasing).
    seconds: wall time of the fit.
    phase_seconds: wall time of each phase ("prepare", "align", "em").
  """

  model: PoseModel
  num_poses: int
  yaws: np.ndarray
  scales: np.ndarray
  align_cost: np.ndarray
  log_likelihood: np.ndarray
  seconds: float
  phase_seconds: dict


@float32_matmuls
def fit_detailed(poses, *, num_components: int = 3, num_basis: int = 10, key: jax.Array,
                 mirror: bool = True, skeleton: Skeleton = H36M17,
                 align_iterations: int = 4, align_yaw_steps: int = 2,
                 align_tolerance: float = 1e-4, align_subsample: int | None = 65536,
                 em_iterations: int = 30,
                 em_tolerance: float = 1e-4, init_subsample: int = 2000,
                 min_centre_distance: float = 1e-6, noise_floor: float = 1e-7,
                 chunk_size: int = 8192, devices=None,
                 progress: bool | None = None) -> FitResult:
  """`fit`, returning the model with its fit diagnostics (`FitResult`).

  Args: as for `fit`.
  """
  start = time.perf_counter()
  check_poses(poses, skeleton)
  if np.ndim(poses) != 3 or np.shape(poses)[0] < 2:
    raise ValueError(f"expected poses (N, {skeleton.num_joints}, 3) with N ≥ 2, got "
                     f"{np.shape(poses)}")
  dim = 3 * skeleton.num_joints
  if not 1 <= num_basis < dim:
    raise ValueError(f"num_basis must be in [1, {dim}), got {num_basis}")
  if num_components < 1:
    raise ValueError(f"num_components must be ≥ 1, got {num_components}")
  num_input = np.shape(poses)[0]
  if progress is None:
    progress = num_input >= _PROGRESS_FROM

  normalised, scales = normalize(poses, skeleton)
  normalised = np.asarray(normalised)
  limb_scale = jnp.mean(scales)
  num = 2 * num_input if mirror else num_input
  perm = np.array(skeleton.mirror_permutation)
  flip = np.array([-1.0, 1.0, 1.0], np.float32)

  def planes(start, stop):
    """Poses [start, stop) of [normalised; mirrored] as (n, 3L) planes (align.to_planes)."""
    part = normalised[start:min(stop, num_input)]
    if stop > num_input:  # the mirrors (normalize.mirror, chunk by chunk)
      mirrored = normalised[max(start, num_input) - num_input:stop - num_input][:, perm] * flip
      part = np.concatenate([part, mirrored])
    return np.swapaxes(part, 1, 2).reshape(len(part), -1)

  mesh = stream.make_mesh(devices)
  chunked = stream.chunk_from(num, planes, chunk_size, mesh)
  normalised = None  # (free it: the chunks hold the poses now)
  subsample = None
  if align_subsample is not None and num > align_subsample:
    stride = -(-num // align_subsample)
    subsample = stream.chunk(stream.gather(chunked, np.arange(0, num, stride)), chunk_size, mesh)
  logging.info("fit: %d poses (%s), %d chunks of %d on %d device(s)%s", num,
               "with mirrors" if mirror else "no mirrors", chunked.data.shape[0],
               chunked.data.shape[-1], mesh.size,
               "" if subsample is None else f", aligning on every {stride}-th pose")

  phases = {"prepare": time.perf_counter() - start}
  # The aligned poses are streamed centred on the alignment mean (see
  # mixture.fit_mixture_chunked).
  aligned = align_chunked(
      chunked, num_basis, subsample=subsample, centre=True, skeleton=skeleton,
      iterations_per_size=align_iterations, yaw_steps=align_yaw_steps,
      tolerance=align_tolerance, noise_floor=noise_floor, progress=progress)
  del chunked, subsample
  yaws = stream.unchunk(aligned.yaws, num)[:num_input]
  phases["align"] = time.perf_counter() - start - sum(phases.values())
  align_cost = aligned.cost_history
  em = mixture_lib.fit_mixture_chunked(
      aligned.aligned, num, num_components, num_basis, key=key, iterations=em_iterations,
      tolerance=em_tolerance, init_subsample=init_subsample,
      min_centre_distance=min_centre_distance, noise_floor=noise_floor,
      offset=aligned.ppca.mean, progress=progress)
  del aligned
  phases["em"] = time.perf_counter() - start - sum(phases.values())
  mix = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), em.mixture)  # off the mesh
  model = PoseModel(
      mean=from_planes(mix.mean, skeleton.num_joints),
      basis=from_planes(mix.basis, skeleton.num_joints),
      variances=mix.variances,
      noise=mix.noise,
      weights=mix.weights,
      limb_scale=limb_scale,
  )
  num_found = model.num_components
  seconds = time.perf_counter() - start
  logging.info("fit: K=%d J=%d on %d poses in %.1f s (%s)", num_found, num_basis, num, seconds,
               ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
  return FitResult(model, num, yaws, np.asarray(scales), align_cost, em.log_likelihood, seconds,
                   phases)


@float32_matmuls
def fit(poses, *, num_components: int = 3, num_basis: int = 10, key: jax.Array,
        mirror: bool = True, skeleton: Skeleton = H36M17, align_iterations: int = 4,
        align_yaw_steps: int = 2, align_tolerance: float = 1e-4,
        align_subsample: int | None = 65536, em_iterations: int = 30,
        em_tolerance: float = 1e-4, init_subsample: int = 2000,
        min_centre_distance: float = 1e-6, noise_floor: float = 1e-7,
        chunk_size: int = 8192, devices=None, progress: bool | None = None) -> PoseModel:
  """Fits the mixture-of-PPCA pose model to raw 3D poses (docs/method.md §1–§3).

  Normalises every pose (centre, unit limb norm), adds the left–right mirrors,
  aligns all poses in the ground plane while growing a PPCA basis to
  `num_basis`, then fits a `num_components` mixture of PPCA to the aligned
  poses by EM from greedy initial centres.

  Args:
    poses: (N, L, 3) metres, y up, L = skeleton.num_joints, N ≥ 2.
    num_components: K, the most mixture components (fewer if the greedy
      centres run out of distinct poses).
    num_basis: J, basis vectors per component and for the alignment PPCA.
      The defaults K = 3, J = 10 come from experiments/benchmarks/fit_quality.py
      (see experiments/benchmarks/RESULTS.md).
    key: jax.random key (subsample for the initial centres).
    mirror: add the left–right mirror of every pose (docs/method.md §1.3).
    skeleton: the joints' skeleton.
    align_iterations: alignment alternations per basis size.
    align_yaw_steps: closed-form yaw updates per alternation.
    align_tolerance: relative cost decrease below which the alignment moves
      to the next basis size.
    align_subsample: with more poses than this (mirrors included), the
      alignment alternation runs on an evenly strided subset of about this
      size and every pose then gets its yaw from the final alignment PPCA
      (see `align.align_chunked`); None aligns on all poses.
    em_iterations: the most EM iterations.
    em_tolerance: relative log-likelihood increase below which EM stops.
    init_subsample: poses the greedy centres are chosen from.
    min_centre_distance: greedy early-stop distance, normalised units.
    noise_floor: lower bound on every σ², normalised units².
    chunk_size: poses per streamed chunk (memory ~ chunk_size·K·3L floats).
    devices: devices to shard the poses over (default all local devices).
    progress: tqdm bars; default on for N ≥ 100,000.

  Returns:
    A `PoseModel` in the normalised frame (y up, the mean pose facing −z with
    its left side along +x), `limb_scale` the mean normalisation scale of the
    input poses in metres.

  Raises:
    ValueError: on a bad shape, NaN, or bad sizes.
  """
  return fit_detailed(
      poses, num_components=num_components, num_basis=num_basis, key=key, mirror=mirror,
      skeleton=skeleton, align_iterations=align_iterations, align_yaw_steps=align_yaw_steps,
      align_tolerance=align_tolerance, align_subsample=align_subsample,
      em_iterations=em_iterations, em_tolerance=em_tolerance,
      init_subsample=init_subsample, min_centre_distance=min_centre_distance,
      noise_floor=noise_floor, chunk_size=chunk_size, devices=devices,
      progress=progress).model
