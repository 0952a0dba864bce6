"""Aligning training poses in the ground plane (docs/method.md §2, paper §4.1).

Model: `X_n ≈ R_{θ_n} (μ + Σ_j a_nj e_j)`, with R_θ the yaw rotation about the
vertical (y) axis. `align` finds every pose's yaw θ_n and a PPCA of the
de-rotated poses by alternation: a Tomasi–Kanade start, then PPCA steps (fixed
θ) and closed-form yaw steps (fixed μ, e), the basis grown from 1 to J
(choice, docs/method.md §2: a fixed number of alternations per basis size, stopping
early when the relative change of the cost falls below a tolerance).

The cost `Σ_n ||X_n − R_{θ_n}(μ + a_n·e)||²` (a_n the least-squares
coefficients) cannot increase: the PPCA step is the PCA optimum for fixed θ,
the yaw step is exact for fixed reconstructions, and re-projecting is exact
for fixed θ. Yaws are only defined up to one global rotation; `align` fixes it
so that the mean pose's left side points along +x (facing −z, the camera).

For large training sets `align_chunked` can run the alternation on an evenly
strided subset and then give every pose its yaw from the final PPCA (choice:
the PPCA of ~65k poses is as good as that of millions, and the alignment cost
then no longer grows with N); `fit` does so above `align_subsample` poses.

Shape letters: N poses, L joints, J basis vectors, D = 3L, C chunks, B rows.
"""

from __future__ import annotations

import functools
import logging
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lift3d import camera
from lift3d._precision import float32_matmuls
from lift3d.pose_model import ppca as ppca_lib
from lift3d.pose_model import stream
from lift3d.progress import bar as progress_bar
from lift3d.skeleton import H36M17, Skeleton, check_poses


def optimal_yaw(poses: jax.Array, targets: jax.Array) -> jax.Array:
  """The yaw θ minimising `||X − R_θ Q||²` in closed form (docs/method.md §2).

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
      variances (J,), noise (); D = 3L flattened row-major from (L, 3)
      (reshape to (L, 3) / (J, L, 3)).
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
# Passes over chunked poses (each jitted once per shape). Inside a chunk a
# pose batch is "planes": (D, B) with D = 3L ordered (x of every joint, then y,
# then z), samples on the minor axis so the maths vectorises over samples.


def to_planes(poses):
  """(..., L, 3) → (..., 3L) ordered (x_1..x_L, y_1..y_L, z_1..z_L)."""
  return jnp.swapaxes(poses, -1, -2).reshape(*poses.shape[:-2], -1)


def from_planes(flat, num_joints: int):
  """(..., 3L) plane order → (..., L, 3)."""
  return jnp.swapaxes(flat.reshape(*flat.shape[:-1], 3, num_joints), -1, -2)


def _rotate_planes(planes, yaw):
  """R_θ on (D, B) planes, yaw (B,)."""
  rotated = camera.rotate_yaw(planes.reshape(3, -1, planes.shape[-1]), yaw, axis=0)
  return rotated.reshape(planes.shape)


def _optimal_yaw_planes(planes, targets):
  """`optimal_yaw` on (D, B) planes → (B,)."""
  x, _, z = jnp.split(planes, 3, axis=0)
  qx, _, qz = jnp.split(targets, 3, axis=0)
  return jnp.arctan2(jnp.sum(x * qz - z * qx, 0), jnp.sum(x * qx + z * qz, 0))


@jax.jit
def _tk_gram(chunked: stream.Chunked):
  """Σ_n (x_n x_nᵀ + z_n z_nᵀ), the L×L Gram of the stacked x and z rows."""

  def fn(planes, mask):
    x, _, z = jnp.split(planes, 3, axis=0)
    return (x * mask) @ x.T + (z * mask) @ z.T

  return stream.scan_sum(fn, chunked)


@jax.jit
def _tk_yaws(chunked: stream.Chunked, projector):
  """Per pose: the yaw read off the polar factor of its 2×2 block of A, for both signs."""

  def fn(planes, mask):
    # A_n = M_n P, M_n = [x row; z row] (2, L), P (L, 2) so that M ≈ A Bᵀ with
    # A's columns orthonormal over the stack; each block A_n ∝ G_{θ_n} H.
    x, _, z = jnp.split(planes, 3, axis=0)
    a = projector.T @ x  # (2, B): first row of every A_n
    b = projector.T @ z  # (2, B): second row
    det = a[0] * b[1] - a[1] * b[0]
    # Closest [[cos, sin], [−sin, cos]] to [[a0, a1], [b0, b1]]: atan2(a1 − b0, a0 + b1).
    plus = jnp.arctan2(a[1] - b[0], a[0] + b[1])
    minus = jnp.arctan2(-a[1] - b[0], a[0] - b[1])  # second column negated
    return jnp.stack([plus, minus]), jnp.sum(det * mask)

  return stream.scan_map_sum(fn, chunked)


@float32_matmuls
def tomasi_kanade_yaws(chunked: stream.Chunked) -> jax.Array:
  """Initial yaws by the Tomasi–Kanade variant of docs/method.md §2 (up to one global yaw).

  Args:
    chunked: poses as planes (C, 3L, B), normalised and centred.

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
  return jnp.where(det >= 0, both[:, 0], both[:, 1])


@functools.partial(jax.jit, static_argnames=("num_basis",))
def _ppca_step(chunked: stream.Chunked, yaws, reference, num_active, noise_floor, *, num_basis):
  """PPCA of the de-rotated poses (fixed yaws), from chunked sums (plane order)."""

  def stats(planes_and_yaws, mask):
    planes, yaw = planes_and_yaws
    centred = _rotate_planes(planes, -yaw) - reference[:, None]
    weighted = centred * mask
    return jnp.sum(mask), jnp.sum(weighted, 1), weighted @ centred.T

  count, total, outer = stream.scan_sum(stats, stream.Chunked((chunked.data, yaws), chunked.mask))
  shift = total / count
  covariance = outer / count - jnp.outer(shift, shift)
  return ppca_lib.from_moments(reference + shift, covariance, num_basis, num_active,
                               noise_floor=noise_floor)


def _yaw_rounds(planes, yaw, mask, model: ppca_lib.PPCA, steps: int, *, start_from_mean=False):
  """`steps` rounds of (project, closed-form yaw) for fixed (μ, e); costs before and after.

  Works in the J-dimensional coefficient space: with G = [μ; e] split into its
  x, y, z blocks and U = [x, 0, z], V = [−z, 0, x], W = [0, y, 0], the
  de-rotated pose is `R_θᵀ X = cos θ U + sin θ V + W`, so every projection
  is `cos θ GU + sin θ GV + GW` from three small products made once, and
  the yaw update `atan2(⟨V, Q⟩, ⟨U, Q⟩)` needs only `GU`, `GV` (Q = μ + a·e).
  The costs before and after are summed from explicit residuals (the
  expanded form `||X||² − 2⟨R_θᵀX, μ⟩ + ||μ||² − ||a||²` loses too many float32
  digits to show the monotone decrease).
  """
  x, y, z = jnp.split(planes, 3, axis=0)
  stacked = jnp.concatenate([model.mean[None], model.basis])  # (1+J, D)
  gx, gy, gz = jnp.split(stacked, 3, axis=1)  # (1+J, L) each
  gu = gx @ x + gz @ z  # (1+J, B)
  gv = gz @ x - gx @ z
  gw = gy @ y
  basis_mean = model.basis @ model.mean  # (J,), zero up to rounding

  def coefficients(yaw):
    proj = jnp.cos(yaw) * gu[1:] + jnp.sin(yaw) * gv[1:] + gw[1:]  # e·(R_θᵀ X)
    return proj - basis_mean[:, None]

  mx, my, mz = jnp.split(model.mean, 3)
  ex, ey, ez = jnp.split(model.basis, 3, axis=1)  # (J, L) each

  def cost(yaw, coeffs):
    # Plane by plane (no (D, B) concatenation): residual of R_θᵀX − μ − eᵀa.
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    res_x = c * x - s * z - mx[:, None] - ex.T @ coeffs
    res_y = y - my[:, None] - ey.T @ coeffs
    res_z = s * x + c * z - mz[:, None] - ez.T @ coeffs
    per_pose = jnp.sum(res_x**2, 0) + jnp.sum(res_y**2, 0) + jnp.sum(res_z**2, 0)
    return jnp.sum(mask * per_pose)

  if start_from_mean:  # Procrustes against the mean alone (a = 0).
    yaw = jnp.arctan2(gv[0], gu[0])
  coeffs = coefficients(yaw)
  before = None if start_from_mean else cost(yaw, coeffs)
  for _ in range(steps):
    yaw = jnp.arctan2(gv[0] + jnp.sum(coeffs * gv[1:], 0), gu[0] + jnp.sum(coeffs * gu[1:], 0))
    coeffs = coefficients(yaw)
  return yaw, (before, cost(yaw, coeffs))


@functools.partial(jax.jit, static_argnames=("steps",))
def _yaw_step(chunked: stream.Chunked, yaws, model: ppca_lib.PPCA, *, steps: int):
  """`steps` rounds of (project, closed-form yaw) per pose; costs before and after."""

  def fn(planes_and_yaws, mask):
    planes, yaw = planes_and_yaws
    return _yaw_rounds(planes, yaw, mask, model, steps)

  return stream.scan_map_sum(fn, stream.Chunked((chunked.data, yaws), chunked.mask))


@functools.partial(jax.jit, static_argnames=("steps",))
def _yaws_from_model(chunked: stream.Chunked, model: ppca_lib.PPCA, *, steps: int):
  """Yaws of every pose for a fixed model: Procrustes on the mean, then `steps` rounds."""

  def fn(planes, mask):
    return _yaw_rounds(planes, None, mask, model, steps, start_from_mean=True)

  return stream.scan_map_sum(fn, chunked)


@jax.jit
def _derotate(chunked: stream.Chunked, yaws, offset):
  """De-rotated planes minus `offset` (D,), zero on padding."""

  def fn(planes_and_yaws, mask):
    planes, yaw = planes_and_yaws
    return (_rotate_planes(planes, -yaw) - offset[:, None]) * mask

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


def rotate_ppca(model: ppca_lib.PPCA, yaw) -> ppca_lib.PPCA:
  """The PPCA of `R_φ Y` given the PPCA of Y, both in plane order (rotation keeps
  the basis orthonormal)."""
  mean = _rotate_planes(model.mean[:, None], yaw)[:, 0]
  basis = _rotate_planes(model.basis.T, yaw).T
  return ppca_lib.PPCA(mean, basis, model.variances, model.noise)


def ppca_to_rows(model: ppca_lib.PPCA, num_joints: int) -> ppca_lib.PPCA:
  """A plane-order PPCA re-flattened row-major from (L, 3)."""
  def rows(x):
    return from_planes(x, num_joints).reshape(*x.shape)
  return ppca_lib.PPCA(rows(model.mean), rows(model.basis), model.variances, model.noise)


class ChunkedAlignment(NamedTuple):
  """What `align_chunked` returns (plane order, chunked like its input)."""

  aligned: stream.Chunked
  yaws: jax.Array
  ppca: ppca_lib.PPCA
  cost_history: np.ndarray
  basis_sizes: np.ndarray
  final_cost: float


@float32_matmuls
def align_chunked(chunked: stream.Chunked, num_basis: int, *, subsample=None, centre=False,
                  skeleton: Skeleton = H36M17, iterations_per_size: int = 4,
                  yaw_steps: int = 2, tolerance: float = 1e-4, noise_floor: float = 1e-7,
                  progress: bool = False) -> ChunkedAlignment:
  """`align` on poses already chunked and sharded, as planes (see `stream`).

  Args:
    chunked: poses as planes (C, 3L, B), normalised, with mask (C, B).
    num_basis: J.
    subsample: optional chunked planes of a subset of the poses. If given, the
      alternation (Tomasi–Kanade start, PPCA and yaw steps) runs on it, and
      every pose of `chunked` then gets its yaw from the final model (a
      Procrustes yaw against the mean, then `yaw_steps` rounds) **(choice: the
      PPCA of a large random subset is as good as the full one, and this
      makes the alignment cost independent of N)**.
    centre: subtract the final PPCA mean from the aligned poses (the
      mixture fit streams data centred near its mean).
    skeleton, iterations_per_size, yaw_steps, tolerance, noise_floor,
      progress: as for `align`.

  Returns:
    A `ChunkedAlignment`: aligned planes (minus the PPCA mean if `centre`)
    and yaws (C, B) for `chunked`, the
    final PPCA (plane order), the cost history of the alternation and the
    basis size of each entry, and the final cost over `chunked`.
  """
  work = chunked if subsample is None else subsample
  num_joints = chunked.data.shape[-2] // 3
  yaws = tomasi_kanade_yaws(work)
  reference = stream.replicate(jnp.zeros((3 * num_joints,), jnp.float32), stream.mesh_of(work))
  costs, sizes = [], []
  bar = progress_bar(total=num_basis * iterations_per_size, desc="align", disable=not progress)
  model = None
  for size in range(1, num_basis + 1):
    previous = None
    for iteration in range(iterations_per_size):
      model = _ppca_step(work, yaws, reference, jnp.int32(size), noise_floor,
                         num_basis=num_basis)
      reference = model.mean
      yaws, (before, after) = _yaw_step(work, yaws, model, steps=yaw_steps)
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
  final_cost = costs[-1]
  if subsample is not None:
    yaws, (_, final_cost) = _yaws_from_model(chunked, model, steps=yaw_steps)
    final_cost = float(final_cost)
  logging.info("align: J=%d, cost %.6g after %d alternations", num_basis, final_cost,
               len(costs) // 2)
  # Fix the global yaw: the mean pose's left side along +x.
  phi = canonical_yaw(from_planes(model.mean, num_joints), skeleton)
  model = rotate_ppca(model, phi)
  yaws = wrap(yaws - phi)
  offset = model.mean if centre else jnp.zeros_like(model.mean)
  aligned = stream.Chunked(_derotate(chunked, yaws, offset), chunked.mask)
  return ChunkedAlignment(aligned, yaws, model, np.array(costs), np.array(sizes), final_cost)


@float32_matmuls
def align(poses, num_basis: int, *, skeleton: Skeleton = H36M17, iterations_per_size: int = 4,
          yaw_steps: int = 2, tolerance: float = 1e-4, noise_floor: float = 1e-7,
          chunk_size: int = 8192, devices=None, progress: bool = False) -> AlignResult:
  """Aligns poses in the ground plane and fits a PPCA to them (docs/method.md §2).

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
  chunked = stream.chunk(np.asarray(to_planes(jnp.asarray(poses, jnp.float32))), chunk_size, mesh)
  out = align_chunked(chunked, num_basis, skeleton=skeleton,
                      iterations_per_size=iterations_per_size, yaw_steps=yaw_steps,
                      tolerance=tolerance, noise_floor=noise_floor, progress=progress)
  aligned = np.asarray(from_planes(stream.unchunk(out.aligned.data, num), skeleton.num_joints))
  return AlignResult(aligned, stream.unchunk(out.yaws, num),
                     ppca_to_rows(out.ppca, skeleton.num_joints), out.cost_history,
                     out.basis_sizes)
