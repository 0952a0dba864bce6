"""Aligning training poses in the ground plane (METHOD §2, paper §4.1).

Model: `X_n ≈ R_{θ_n} (μ + Σ_j a_nj e_j)`, with R_θ the yaw rotation about the
vertical (y) axis. `align` finds every pose's yaw θ_n and a PPCA of the
de-rotated poses by alternation: a Tomasi–Kanade start, then PPCA steps (fixed
θ) and closed-form yaw steps (fixed μ, e), the basis grown from 1 to J
(choice, METHOD §2: a fixed number of alternations per basis size, stopping
early when the relative change of the cost falls below a tolerance).

The cost `Σ_n ||X_n − R_{θ_n}(μ + a_n·e)||²` (a_n the least-squares
coefficients) cannot increase: the PPCA step is the PCA optimum for fixed θ,
the yaw step is exact for fixed reconstructions, and re-projecting is exact
for fixed θ. Yaws are only defined up to one global rotation; `align` fixes it
so that the mean pose's left side points along +x (facing −z, the camera).

Shape letters: N poses, L joints, J basis vectors, D = 3L, C chunks, B rows.
"""

from __future__ import annotations

import functools
import logging
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from lift3d.pose_model import ppca as ppca_lib
from lift3d.pose_model import stream
from lift3d.pose_model.normalize import check_poses
from lift3d.skeleton import H36M17, Skeleton


def yaw_rotation(yaw: jax.Array) -> jax.Array:
  """`R_θ = [[cos θ, 0, sin θ], [0, 1, 0], [−sin θ, 0, cos θ]]`.

  Args:
    yaw: (...) radians.

  Returns:
    (..., 3, 3) rotation matrices.
  """
  c, s = jnp.cos(yaw), jnp.sin(yaw)
  zero, one = jnp.zeros_like(c), jnp.ones_like(c)
  rows = [jnp.stack([c, zero, s], -1), jnp.stack([zero, one, zero], -1),
          jnp.stack([-s, zero, c], -1)]
  return jnp.stack(rows, -2)


def rotate(poses: jax.Array, yaw: jax.Array) -> jax.Array:
  """Applies `R_θ` to every joint: `X_l ← R_θ X_l`.

  Args:
    poses: (..., L, 3), y up.
    yaw: (...) radians, broadcastable against the pose batch.

  Returns:
    (..., L, 3) rotated poses.
  """
  c, s = jnp.cos(yaw)[..., None], jnp.sin(yaw)[..., None]
  x, y, z = poses[..., 0], poses[..., 1], poses[..., 2]
  return jnp.stack([c * x + s * z, y, -s * x + c * z], -1)


def optimal_yaw(poses: jax.Array, targets: jax.Array) -> jax.Array:
  """The yaw θ minimising `||X − R_θ Q||²` in closed form (METHOD §2).

  `θ = atan2(Σ_l (x_l q_lz − z_l q_lx), Σ_l (x_l q_lx + z_l q_lz))`.

  Args:
    poses: (..., L, 3) X.
    targets: (..., L, 3) Q.

  Returns:
    (...) radians in (−π, π].
  """
  x, z = poses[..., 0], poses[..., 2]
  qx, qz = targets[..., 0], targets[..., 2]
  return jnp.arctan2(jnp.sum(x * qz - z * qx, -1), jnp.sum(x * qx + z * qz, -1))


def wrap(angle):
  """Wraps radians into [−π, π)."""
  return (angle + np.pi) % (2 * np.pi) - np.pi


class AlignResult(NamedTuple):
  """What `align` returns.

  Attributes:
    aligned: (N, L, 3) de-rotated poses `R_{θ_n}ᵀ X_n`, normalised units.
    yaws: (N,) radians, `X_n ≈ R_{θ_n} (aligned pose)`.
    ppca: the final PPCA of the aligned poses: mean (D,), basis (J, D),
      variances (J,), noise (); D = 3L flattened row-major from (L, 3).
    cost_history: (M,) the alignment cost `Σ_n ||X_n − R_{θ_n}(μ + a_n·e)||²`
      before and after every yaw step, in order (non-increasing).
    basis_sizes: (M,) int, the basis size in use for each cost entry.
  """

  aligned: np.ndarray
  yaws: np.ndarray
  ppca: ppca_lib.PPCA
  cost_history: np.ndarray
  basis_sizes: np.ndarray


# ---------------------------------------------------------------------------
# Passes over chunked poses (each jitted once per shape).


def _flat(poses):
  return poses.reshape(*poses.shape[:-2], -1)


@jax.jit
def _tk_gram(chunked: stream.Chunked):
  """Σ_n (x_n x_nᵀ + z_n z_nᵀ), the L×L Gram of the stacked x and z rows."""

  def fn(poses, mask):
    x = poses[..., 0] * mask[:, None]
    z = poses[..., 2] * mask[:, None]
    return x.T @ poses[..., 0] + z.T @ poses[..., 2]

  return stream.scan_sum(fn, chunked)


@jax.jit
def _tk_yaws(chunked: stream.Chunked, projector):
  """Per pose: the yaw read off the polar factor of its 2×2 block of A, for both signs."""

  def fn(poses, mask):
    # A_n = M_n P, M_n = [x row; z row] (2, L), P (L, 2) so that M ≈ A Bᵀ with
    # A's columns orthonormal over the stack; each block A_n ∝ G_{θ_n} H.
    a = poses[..., 0] @ projector  # (B, 2): first row of A_n
    b = poses[..., 2] @ projector  # (B, 2): second row
    det = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    # Closest [[cos, sin], [−sin, cos]] to [[a0, a1], [b0, b1]]: atan2(a1 − b0, a0 + b1).
    plus = jnp.arctan2(a[:, 1] - b[:, 0], a[:, 0] + b[:, 1])
    minus = jnp.arctan2(-a[:, 1] - b[:, 0], a[:, 0] - b[:, 1])  # second column negated
    return jnp.stack([plus, minus], -1), jnp.sum(det * mask)

  return stream.scan_map_sum(fn, chunked)


def tomasi_kanade_yaws(chunked: stream.Chunked) -> jax.Array:
  """Initial yaws by the Tomasi–Kanade variant of METHOD §2 (up to one global yaw).

  Args:
    chunked: poses (C, B, L, 3), normalised and centred.

  Returns:
    (C, B) yaws in radians.
  """
  gram = _tk_gram(chunked)
  eigvals, eigvecs = jnp.linalg.eigh(gram)
  # Rank-2 SVD of M (2N×L): M = U S Vᵀ, A = U = M V S⁻¹.
  projector = eigvecs[:, -2:][:, ::-1] / jnp.sqrt(jnp.maximum(eigvals[-2:][::-1], 1e-30))
  both, det = _tk_yaws(chunked, projector)
  # The factorisation is defined up to a global 2×2 transform; if it is a
  # reflection every block is one too, so flip A's second column.
  return jnp.where(det >= 0, both[..., 0], both[..., 1])


@functools.partial(jax.jit, static_argnames=("num_basis",))
def _ppca_step(chunked: stream.Chunked, yaws, reference, num_active, noise_floor, *, num_basis):
  """PPCA of the de-rotated poses (fixed yaws), from chunked sums."""

  def stats(poses_and_yaws, mask):
    poses, yaw = poses_and_yaws
    centred = _flat(rotate(poses, -yaw)) - reference
    weighted = centred * mask[:, None]
    return jnp.sum(mask), jnp.sum(weighted, 0), weighted.T @ centred

  count, total, outer = stream.scan_sum(stats, stream.Chunked((chunked.data, yaws), chunked.mask))
  shift = total / count
  covariance = outer / count - jnp.outer(shift, shift)
  return ppca_lib.from_moments(reference + shift, covariance, num_basis, num_active,
                               noise_floor=noise_floor)


def _reconstruct(poses, yaw, model: ppca_lib.PPCA):
  """De-rotate, project, and return (aligned, model reconstruction) (B, L, 3)."""
  aligned = rotate(poses, -yaw)
  coeffs = ppca_lib.project(model, _flat(aligned))
  recon = (model.mean + coeffs @ model.basis).reshape(aligned.shape)
  return aligned, recon


@functools.partial(jax.jit, static_argnames=("steps",))
def _yaw_step(chunked: stream.Chunked, yaws, model: ppca_lib.PPCA, *, steps: int):
  """`steps` rounds of (project, closed-form yaw) per pose; costs before and after."""

  def fn(poses_and_yaws, mask):
    poses, yaw = poses_and_yaws
    aligned, recon = _reconstruct(poses, yaw, model)
    before = jnp.sum(mask * jnp.sum((aligned - recon) ** 2, (-2, -1)))
    for _ in range(steps):
      yaw = optimal_yaw(poses, recon)
      aligned, recon = _reconstruct(poses, yaw, model)
    after = jnp.sum(mask * jnp.sum((aligned - recon) ** 2, (-2, -1)))
    return yaw, (before, after)

  return stream.scan_map_sum(fn, stream.Chunked((chunked.data, yaws), chunked.mask))


@jax.jit
def _derotate(chunked: stream.Chunked, yaws):
  def fn(poses_and_yaws, mask):
    poses, yaw = poses_and_yaws
    return rotate(poses, -yaw) * mask[:, None, None]

  return stream.scan_map(fn, stream.Chunked((chunked.data, yaws), chunked.mask))


def canonical_yaw(mean: jax.Array, skeleton: Skeleton = H36M17) -> jax.Array:
  """The yaw φ such that `R_φ` turns the pose's left-minus-right vector onto +x.

  Args:
    mean: (L, 3) a pose, y up.
    skeleton: gives the left/right pairs.

  Returns:
    () radians.
  """
  left = np.array([a for a, _ in skeleton.left_right])
  right = np.array([b for _, b in skeleton.left_right])
  side = jnp.mean(mean[left], 0) - jnp.mean(mean[right], 0)
  return jnp.arctan2(side[2], side[0])


def rotate_ppca(model: ppca_lib.PPCA, yaw, num_joints: int) -> ppca_lib.PPCA:
  """The PPCA of `R_φ Y` given the PPCA of Y (rotation keeps the basis orthonormal)."""
  mean = rotate(model.mean.reshape(num_joints, 3), yaw).reshape(-1)
  basis = rotate(model.basis.reshape(-1, num_joints, 3), yaw).reshape(model.basis.shape)
  return ppca_lib.PPCA(mean, basis, model.variances, model.noise)


class _ChunkedAlignment(NamedTuple):
  aligned: stream.Chunked
  yaws: jax.Array
  ppca: ppca_lib.PPCA
  cost_history: np.ndarray
  basis_sizes: np.ndarray


def align_chunked(chunked: stream.Chunked, num_basis: int, *, skeleton: Skeleton = H36M17,
                  iterations_per_size: int = 4, yaw_steps: int = 2, tolerance: float = 1e-4,
                  noise_floor: float = 1e-7, progress: bool = False) -> _ChunkedAlignment:
  """`align` on poses already chunked and sharded (see `lift3d.pose_model.stream`).

  Args:
    chunked: poses (C, B, L, 3) normalised, with mask (C, B).
    num_basis, skeleton, iterations_per_size, yaw_steps, tolerance,
      noise_floor, progress: as for `align`.

  Returns:
    aligned poses (chunked like the input), yaws (C, B), the final PPCA, the
    cost history and the basis size of each entry.
  """
  num_joints = chunked.data.shape[-2]
  yaws = tomasi_kanade_yaws(chunked)
  reference = jnp.zeros((3 * num_joints,), jnp.float32)
  costs, sizes = [], []
  bar = tqdm.tqdm(total=num_basis * iterations_per_size, desc="align", disable=not progress)
  model = None
  for size in range(1, num_basis + 1):
    previous = None
    for iteration in range(iterations_per_size):
      model = _ppca_step(chunked, yaws, reference, jnp.int32(size), noise_floor,
                         num_basis=num_basis)
      reference = model.mean
      yaws, (before, after) = _yaw_step(chunked, yaws, model, steps=yaw_steps)
      before, after = float(before), float(after)
      costs += [before, after]
      sizes += [size, size]
      bar.update(1)
      bar.set_postfix(J=size, cost=f"{after:.5g}")
      if previous is not None and previous - after <= tolerance * abs(previous):
        bar.update(iterations_per_size - 1 - iteration)
        break
      previous = after
  bar.close()
  logging.info("align: J=%d, final cost %.6g after %d alternations", num_basis, costs[-1],
               len(costs) // 2)
  # Fix the global yaw: the mean pose's left side along +x.
  phi = canonical_yaw(model.mean.reshape(num_joints, 3), skeleton)
  model = rotate_ppca(model, phi, num_joints)
  yaws = wrap(yaws - phi)
  aligned = stream.Chunked(_derotate(chunked, yaws), chunked.mask)
  return _ChunkedAlignment(aligned, yaws, model, np.array(costs), np.array(sizes))


def align(poses, num_basis: int, *, skeleton: Skeleton = H36M17, iterations_per_size: int = 4,
          yaw_steps: int = 2, tolerance: float = 1e-4, noise_floor: float = 1e-7,
          chunk_size: int = 65536, devices=None, progress: bool = False) -> AlignResult:
  """Aligns poses in the ground plane and fits a PPCA to them (METHOD §2).

  Args:
    poses: (N, L, 3) normalised poses (see `normalize`), y up.
    num_basis: J, the final basis size (grown from 1).
    skeleton: the joints' skeleton (fixes the global yaw from its left/right pairs).
    iterations_per_size: alternations (PPCA step + yaw step) per basis size.
    yaw_steps: closed-form yaw updates (each followed by re-projection) per
      alternation.
    tolerance: move to the next basis size when the relative decrease of the
      cost over one alternation is below this.
    noise_floor: lower bound on the PPCA noise σ², normalised units².
    chunk_size: poses per chunk of the streamed sums.
    devices: devices to shard the poses over (default all local devices).
    progress: show a tqdm bar.

  Returns:
    An `AlignResult`.
  """
  check_poses(poses, skeleton)
  num = np.shape(poses)[0]
  if np.ndim(poses) != 3 or num < 2:
    raise ValueError(f"expected poses (N, L, 3) with N ≥ 2, got {np.shape(poses)}")
  dim = 3 * skeleton.num_joints
  if not 1 <= num_basis < dim:
    raise ValueError(f"num_basis must be in [1, {dim}), got {num_basis}")
  mesh = stream.make_mesh(devices)
  chunked = stream.chunk(np.asarray(poses, np.float32), chunk_size, mesh)
  out = align_chunked(chunked, num_basis, skeleton=skeleton,
                      iterations_per_size=iterations_per_size, yaw_steps=yaw_steps,
                      tolerance=tolerance, noise_floor=noise_floor, progress=progress)
  return AlignResult(stream.unchunk(out.aligned.data, num), stream.unchunk(out.yaws, num),
                     out.ppca, out.cost_history, out.basis_sizes)
