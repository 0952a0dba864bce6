"""Lifting 2D landmarks to 3D with a mixture-of-PPCA pose model (METHOD §4, paper §5.3).

Model: `w ≈ s Π E R_θ (μ_k + a·e_k) + t`. For a fixed yaw θ and component k the
problem is linear in `c = (s, s·a_1, …, s·a_J)`; the Gaussian prior on `a`
becomes a Tikhonov term, so every (k, θ) sub-problem is a small least squares
that is solved exactly. `lift` searches all components and `num_yaws` evenly
spaced yaws exhaustively, picks the component by its negative log posterior
and optionally refines the yaw.

Choices (METHOD §4, marked **(choice)** there), in its terms:
- 2D normalisation: `lift3d.camera.normalize_keypoints`, the weighted mean of
  the joints is subtracted and the result divided by the weighted RMS distance
  of the joints from it, so a normalised pose has unit RMS radius. The
  translation `t` is eliminated exactly (weighted least squares in `t` as
  well), so the model needs no centring on the visible joints.
- Weights: `D = diag(visibility)` per joint (both coordinates), i.e. squared
  residuals are weighted by `visibility²`.
- `s̄ = 1 / ρ̄`, `ρ̄²` the mixture-weighted mean over yaws of the squared RMS
  radius of the projected component means, so `s̄` is the scale at which a
  typical model pose has unit RMS radius, like a normalised 2D pose.
- `σ_obs² = s̄²·Σ_k π_k σ_k² + obs_noise²` (projected model noise plus 2D
  noise, normalised units); the Tikhonov weights are `σ_obs² / (s̄² λ_kj)`, so
  `r/(2σ_obs²)` is the data term plus `Σ_j a_j²/(2λ_kj)` at `s = s̄`.
- Component score `r_k/(2σ_obs²) + ½ Σ_j log λ_kj − log π_k`.

Computation. `A_θ = A⁰ + cos θ A^c + sin θ A^s`, so per frame the right-hand
sides `A_θᵀ D² w = y⁰ + cos θ y¹ + sin θ y²` need three small products, and the
Gram matrices `Σ_pq M_pq(θ) H_pq` with `M(θ) = R_θᵀ EᵀΠᵀΠE R_θ` are linear
in (1, cos², sin·cos, sin²) of per-frame terms `H_pq = Σ_l D_l² B_lpᵀ B_lq`.
For a level camera `G(θ + π) = G(θ)` and only the sign of the `y¹, y²` part
flips, so one factorisation serves two yaws.
- Unweighted (`visibility=None`): `r(θ) = ||w||² − wᵀ M_θ w` with
  `M_θ = A_θ (A_θᵀA_θ + Λ)⁻¹ A_θᵀ` precomputed for every (k, θ); a chunk of
  frames is then two matrix products of those coefficients against the
  per-frame products of coordinates, and the solution at the chosen (k, θ) is
  one precomputed operator `(A_θᵀA_θ + Λ)⁻¹ A_θᵀ` applied to w.
- Weighted: per-frame Gram terms; the Gram matrices of all grid yaws are one
  matrix product of those terms with their (cos², sin·cos, sin², 1)
  coefficients; then a Cholesky factorisation per (frame, k, θ) unrolled over
  the (J+1) unknowns with frames in the trailing (SIMD) axis, and
  `r(θ) = ||D w||² − ||L_θ⁻¹ A_θᵀ D² w||²`. A level camera searches the
  pairs (θ, θ + π), which share a factorisation, for the lower cost of each
  pair and settles which of the two it was afterwards.
- All matrix products run in full float32 (`lift3d._precision`), also on
  GPUs and TPUs, whose TF32/bfloat16 default would flip near-tied yaws.

Shape letters: L joints, J basis vectors, P = J + 1 unknowns, K components,
T yaws, B frames.
"""

from __future__ import annotations

import functools
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from lift3d import camera
from lift3d._precision import float32_matmuls
from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import H36M17, Skeleton

DEFAULT_OBS_NOISE = 0.05
# Default frames per chunk, (unweighted, weighted): on CPU chosen with
# experiments/benchmarks/lift_speed.py so the working set stays in cache; on
# accelerators large enough to fill the device (see RESULTS.md).
_CPU_CHUNKS = (2048, 128)
_CPU_REFINE_CHUNK = 64
_ACCELERATOR_CHUNKS = (65536, 16384)

# (p, q) coordinate pairs of the Gram terms H_pq; a level camera (E = I) only
# needs these four, since M(θ) has no x-y or y-z entries.
_LEVEL_PAIRS = ((1, 1), (0, 0), (2, 2), (0, 2))
_ALL_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


@flax.struct.dataclass
class LiftResult:
  """The lifted poses (a pytree; every field has the input's batch shape `...`).

  Attributes:
    pose3d: (..., L, 3) millimetres, x right, y up, z towards the viewer, in the camera's frame
      (rotated by the camera rotation E if one was given), root joint at 0.
    yaw: (...) radians in [0, 2π), θ of METHOD §4.
    scale: (...) weak-perspective scale, input pixels per millimetre of
      `pose3d` (so `reprojected ≈ scale · flip(pose3d[..., :2]) + offset`).
    coeffs: (..., J) basis coefficients `a` of the chosen component, model
      (normalised) units.
    component: (...) int32 index of the chosen mixture component (-1 where
      not valid).
    cost: (...) the regularised least-squares cost `r` of METHOD §4 at the
      solution, normalised 2D units² (weighted squared residual plus the
      Tikhonov term).
    reprojected: (..., L, 2) the projected 3D pose in the input's pixel frame
      (x right, y down).
    valid: (...) bool; False where too few joints are visible, a visible
      joint is not finite, or the visible joints coincide. Those frames hold
      NaN (and component -1).
  """

  pose3d: jax.Array
  yaw: jax.Array
  scale: jax.Array
  coeffs: jax.Array
  component: jax.Array
  cost: jax.Array
  reprojected: jax.Array
  valid: jax.Array


def _upper(num: int) -> list[tuple[int, int]]:
  return [(i, j) for i in range(num) for j in range(i, num)]


# ---------------------------------------------------------------------------
# Small symmetric positive-definite systems, unrolled over the unknowns. Each
# entry is an array holding one value per batch element (frame, component,
# yaw), so every step is an elementwise, vectorised operation.


def _cholesky(gram: dict, num: int):
  """Unrolled Cholesky of {(i, j): array} (upper entries); returns (L, 1/diag)."""
  low, inv_diag = {}, []
  for j in range(num):
    d = gram[j, j]
    for k in range(j):
      d = d - low[j, k] * low[j, k]
    inv = jax.lax.rsqrt(d)
    column = [inv]
    for i in range(j + 1, num):
      v = gram[j, i]
      for k in range(j):
        v = v - low[i, k] * low[j, k]
      column.append(v * inv)
    # One barrier per column: left free, XLA fuses the whole factorisation
    # into its consumers and recomputes shared entries many times over.
    column = jax.lax.optimization_barrier(column)
    inv_diag.append(column[0])
    for i, v in zip(range(j + 1, num), column[1:], strict=True):
      low[i, j] = v
  return low, inv_diag


def _forward(low: dict, inv_diag: list, rhs: list) -> list:
  """Solves L z = rhs (unrolled)."""
  z = []
  for i in range(len(rhs)):
    v = rhs[i]
    for k in range(i):
      v = v - low[i, k] * z[k]
    # Each z_i feeds every later one: a barrier stops XLA from fusing (and so
    # recomputing) the whole chain into each consumer.
    z.append(jax.lax.optimization_barrier(v * inv_diag[i]))
  return z


def _backward(low: dict, inv_diag: list, z: list) -> list:
  """Solves Lᵀ x = z (unrolled)."""
  num = len(z)
  x = [None] * num
  for i in reversed(range(num)):
    v = z[i]
    for k in range(i + 1, num):
      v = v - low[k, i] * x[k]
    x[i] = v * inv_diag[i]
  return x


def _pair_coeffs(cos, sin, proj, pairs):
  """M_pq(θ) of each Gram pair, M(θ) = R_θᵀ S R_θ with S = EᵀΠᵀΠE.

  `proj` is S (3, 3), or None for a level camera (S = diag(1, 1, 0)).
  Returns a list (one per pair) of arrays broadcasting like cos (or 1.0).
  """
  if proj is None:
    table = {(1, 1): 1.0, (0, 0): cos * cos, (2, 2): sin * sin, (0, 2): cos * sin}
    return [table[p] for p in pairs]
  # R_θ rows as (constant, cos, sin) coefficient triples.
  rot = [[(0, 1, 0), (0, 0, 0), (0, 0, 1)],
         [(0, 0, 0), (1, 0, 0), (0, 0, 0)],
         [(0, 0, -1), (0, 0, 0), (0, 1, 0)]]

  def entry(a, p):
    const, cc, ss = rot[a][p]
    out = 0.0
    if const:
      out = out + const
    if cc:
      out = out + cc * cos
    if ss:
      out = out + ss * sin
    return out

  coeffs = []
  for p, q in pairs:
    m = 0.0
    for a in range(3):
      rap = entry(a, p)
      if isinstance(rap, float) and rap == 0.0:
        continue
      for b in range(3):
        rbq = entry(b, q)
        if isinstance(rbq, float) and rbq == 0.0:
          continue
        m = m + rap * proj[a, b] * rbq
    coeffs.append(m)
  return coeffs


# ---------------------------------------------------------------------------
# Frame-independent terms of a model.


class _Prepared(flax.struct.PyTreeNode):
  """Everything about (model, camera, yaws) that does not depend on a frame."""

  blocks: jax.Array  # (K, L, 3, P): [μ, e_1..e_J] per joint and coordinate.
  features: jax.Array  # (K, L, n, U): per-joint Gram features of each pair.
  gram_ones: jax.Array  # (n, U, K): Gram terms of all-ones weights, t eliminated.
  tikhonov: jax.Array  # (K, P): Λ diagonal (0 for the scale).
  score_offset: jax.Array  # (K,) ½Σlog λ − log π.
  inv_two_var: jax.Array  # () 1 / (2 σ_obs²).
  proj: jax.Array | None  # (3, 3) S = EᵀΠᵀΠE, or None for a level camera.
  rotation: jax.Array | None  # (3, 3) E or None.
  yaws: jax.Array  # (T,) the grid.
  quad: jax.Array | None  # (K·T_s, F) unweighted search: quadratic forms (see _prepare).
  quad_cross: jax.Array | None  # (K·T/2, L²) their x-y part of a θ/θ+π pair, or None.
  solve_ops: jax.Array | None  # (K·T, P, 2L) (AᵀA + Λ)⁻¹Aᵀ per grid point, unweighted.


def _prepare(model: PoseModel, rotation, obs_noise, num_yaws: int, unweighted: bool) -> _Prepared:
  mean = model.mean
  dtype = mean.dtype
  num_components, num_joints = mean.shape[:2]
  blocks = jnp.concatenate([mean[:, None], model.basis], axis=1)  # (K, P, L, 3)
  blocks = jnp.transpose(blocks, (0, 2, 3, 1))  # (K, L, 3, P)
  num = blocks.shape[-1]
  weights = model.weights / jnp.sum(model.weights)
  variances = jnp.maximum(model.variances, jnp.finfo(dtype).tiny)

  # s̄: scale at which the projected component means have unit RMS radius,
  # averaged over yaws (E[cos²] = E[sin²] = ½).
  centred_mean = mean - jnp.mean(mean, axis=1, keepdims=True)
  radius2 = jnp.mean(
      0.5 * (centred_mean[..., 0] ** 2 + centred_mean[..., 2] ** 2) + centred_mean[..., 1] ** 2,
      axis=1,
  )
  typical_scale2 = 1.0 / jnp.sum(weights * radius2)
  obs_var = typical_scale2 * jnp.sum(weights * model.noise) + obs_noise**2
  tikhonov = jnp.concatenate(
      [jnp.zeros((num_components, 1), dtype), obs_var / (typical_scale2 * variances)], axis=1
  )
  score_offset = 0.5 * jnp.sum(jnp.log(variances), axis=1) - jnp.log(weights)

  pairs = _LEVEL_PAIRS if rotation is None else _ALL_PAIRS
  upper = _upper(num)
  iu = np.array([u[0] for u in upper])
  ju = np.array([u[1] for u in upper])

  def pair_features(b):  # b: (..., 3, P) -> (..., n, U)
    feats = []
    for p, q in pairs:
      f = b[..., p, iu] * b[..., q, ju]
      if p != q:
        f = f + b[..., q, iu] * b[..., p, ju]
      feats.append(f)
    return jnp.stack(feats, axis=-2)

  features = pair_features(blocks)
  centred = blocks - jnp.mean(blocks, axis=1, keepdims=True)
  gram_ones = jnp.transpose(jnp.sum(pair_features(centred), axis=1), (1, 2, 0))

  proj = None
  if rotation is not None:
    rotation = rotation.astype(dtype)
    proj = rotation[:2].T @ rotation[:2]
  yaws = jnp.arange(num_yaws, dtype=dtype) * (2 * math.pi / num_yaws)

  quad = quad_cross = solve_ops = None
  if unweighted:
    symmetric = rotation is None and num_yaws % 2 == 0
    grid = yaws[: num_yaws // 2] if symmetric else yaws
    rot = camera.yaw_rotation(grid)  # (T', 3, 3)
    if rotation is not None:
      rot = jnp.einsum("ab,tbc->tac", rotation, rot)
    design = jnp.einsum("tra,klai->ktlri", rot[:, :2], centred)  # (K, T', L, 2, P)
    gram = jnp.einsum("ktlri,ktlrj->ktij", design, design)
    gram = gram + jax.vmap(jnp.diag)(tikhonov)[:, None]
    chol = jnp.linalg.cholesky(gram)
    flat = design.reshape((*design.shape[:2], 2 * num_joints, num))
    ops = jax.scipy.linalg.solve_triangular(chol, jnp.swapaxes(flat, -1, -2), lower=True)
    ops = ops.reshape((*ops.shape[:3], num_joints, 2))  # (K, T', P, L, 2)
    # Full solution operators (AᵀA + Λ)⁻¹Aᵀ = L⁻ᵀ(L⁻¹Aᵀ) on the whole grid, so
    # that the solution at the chosen grid point is one gathered mat-vec.
    solve = jax.scipy.linalg.solve_triangular(chol, ops.reshape((*ops.shape[:3], -1)),
                                              lower=True, trans=1)  # (K, T', P, 2L)
    if symmetric:
      # θ + π flips the sign of x (R_{θ+π} = R_θ with x, z negated); G is unchanged.
      flip = jnp.tile(jnp.asarray([-1.0, 1.0], dtype), num_joints)
      solve = jnp.concatenate([solve, solve * flip], axis=1)
    solve_ops = solve.reshape(-1, num, 2 * num_joints)
    # r(θ) = ||w||² − ||L⁻¹Aᵀw||² = wᵀ(I − M)w with M = A L⁻ᵀL⁻¹Aᵀ (2L x 2L):
    # one product of the (K·T, F) coefficients of I − M against F per-frame
    # products of coordinates, instead of the (P·K·T, B) intermediate L⁻¹Aᵀw.
    def upper(matrix):  # (..., n, n) -> (..., n(n+1)/2) coefficients of w_i w_j, i ≤ j
      iu, ju = np.triu_indices(matrix.shape[-1])
      return matrix[..., iu, ju] * jnp.asarray(np.where(iu == ju, 1.0, 2.0), dtype)

    if symmetric:
      # w = (x, y): wᵀ(I − M)w = xᵀ(I − M_xx)x + yᵀ(I − M_yy)y ∓ 2 yᵀM_yx x for θ / θ + π.
      m = jnp.einsum("ktpia,ktpjb->ktabij", ops, ops).reshape(-1, 2, 2, num_joints, num_joints)
      eye = jnp.eye(num_joints, dtype=dtype)
      quad = jnp.concatenate([upper(eye - m[:, 1, 1]), upper(eye - m[:, 0, 0])], axis=1)
      quad_cross = 2.0 * m[:, 1, 0].reshape(m.shape[0], -1)
    else:
      flat_ops = ops.reshape((*ops.shape[:3], 2 * num_joints))
      m = jnp.einsum("ktpi,ktpj->ktij", flat_ops, flat_ops).reshape(-1, *flat_ops.shape[-1:] * 2)
      quad = upper(jnp.eye(2 * num_joints, dtype=dtype) - m)
  return _Prepared(
      blocks=blocks, features=features, gram_ones=gram_ones, tikhonov=tikhonov,
      score_offset=score_offset, inv_two_var=0.5 / obs_var, proj=proj, rotation=rotation,
      yaws=yaws, quad=quad, quad_cross=quad_cross, solve_ops=solve_ops,
  )


# ---------------------------------------------------------------------------
# Per-frame terms and the searches.


def _frame_terms(prep: _Prepared, points, weights):
  """Per-frame terms, term-major with frames minor (the searches' layout).

  Args: points (B, L, 2) normalised; weights (B, L) D² or None.
  Returns: Gram terms H (n, U, K, B) (None if unweighted), right-hand-side
  terms y (3, P, K, B) and ||Dw||² (B,).
  """
  wx, wy = points[..., 0], points[..., 1]
  if prep.rotation is None:
    u = jnp.stack([wx, wy, jnp.zeros_like(wx)], axis=-1)
  else:
    u = wx[..., None] * prep.rotation[0] + wy[..., None] * prep.rotation[1]  # EᵀΠᵀw
  if weights is None:
    weighted_u = u
    norm2 = jnp.sum(points**2, axis=(-1, -2))
    gram = None
  else:
    weighted_u = weights[..., None] * u
    norm2 = jnp.sum(weights * jnp.sum(points**2, axis=-1), axis=-1)
    gram = jnp.einsum("klnu,bl->nukb", prep.features, weights)
    # Eliminating t: H_pq -= m_p m_qᵀ / V with m = Σ_l D_l² B_l.
    sums = jnp.einsum("klpi,bl->pikb", prep.blocks, weights)  # (3, P, K, B)
    inv_total = 1.0 / jnp.sum(weights, axis=-1)
    num = prep.blocks.shape[-1]
    upper = _upper(num)
    iu = np.array([x[0] for x in upper])
    ju = np.array([x[1] for x in upper])
    pairs = _LEVEL_PAIRS if prep.rotation is None else _ALL_PAIRS
    corr = []
    for p, q in pairs:
      c = sums[p, iu] * sums[q, ju]
      if p != q:
        c = c + sums[q, iu] * sums[p, ju]
      corr.append(c * inv_total)
    gram = gram - jnp.stack(corr)
  # With N_qp = Σ_l D_l² u_lq B_lp (u = EᵀΠᵀw), A_θᵀD²w = y⁰ + cos θ y¹ + sin θ y²
  # where y⁰ = N_11, y¹ = N_00 + N_22, y² = N_02 − N_20 (from the entries of
  # R_θ); each N_qp is one (K·P, L) x (L, B) product.

  def project(q, p):
    return jnp.einsum("klj,bl->jkb", prep.blocks[:, :, p], weighted_u[..., q])

  y0 = project(1, 1)
  y1 = project(0, 0)
  y2 = project(0, 2)
  if prep.rotation is not None:  # u_z = 0 for a level camera
    y1 = y1 + project(2, 2)
    y2 = y2 - project(2, 0)
  return gram, jnp.stack([y0, y1, y2]), norm2


def _search_unweighted(prep: _Prepared, points):
  """Costs (K, T, B) of every (component, yaw) for unit weights: matrix products.

  `r(θ) = wᵀ(I − M_θ)w`: the precomputed coefficients of every I − M_θ
  against the per-frame products of coordinates (upper triangles of y yᵀ and
  x xᵀ, and all of y xᵀ for the pairs θ / θ + π of a level camera), frames
  the minor axis of the products.
  """
  batch, num_joints = points.shape[:2]
  num_components = prep.tikhonov.shape[0]
  num_yaws = prep.yaws.shape[0]
  # The per-frame products are built frames-major, (B, F), where each frame's
  # coordinates are contiguous; the products contract F (`quad @ featuresᵀ`)
  # and come out frames-minor.
  if prep.quad_cross is not None:
    x, y = points[..., 0], points[..., 1]  # (B, L)
    half = num_yaws // 2
    # Columns i ≤ j in np.triu_indices order, from contiguous slices (no gather).
    squares = jnp.concatenate(
        [v[:, i : i + 1] * v[:, i:] for v in (y, x) for i in range(num_joints)], axis=1)
    cross = (y[:, :, None] * x[:, None, :]).reshape(batch, num_joints * num_joints)
    even = prep.quad @ squares.T  # (K·T', B)
    odd = prep.quad_cross @ cross.T
    cost = jnp.stack([even - odd, even + odd]).reshape(2, num_components, half, batch)
    return jnp.transpose(cost, (1, 0, 2, 3)).reshape(num_components, num_yaws, batch)
  flat = points.reshape(batch, 2 * num_joints)
  squares = jnp.concatenate([flat[:, i : i + 1] * flat[:, i:] for i in range(2 * num_joints)],
                            axis=1)
  return (prep.quad @ squares.T).reshape(num_components, num_yaws, batch)


def _search_weighted(prep: _Prepared, gram, rhs, norm2):
  """Costs of every (component, yaw) with per-frame Gram terms.

  The Gram matrices of all grid yaws are one matrix product, the (T_s, n)
  coefficients of the Gram terms against the (n, U·K·B) terms. The
  factorisation is then unrolled over the P unknowns on (T_s, K·B) arrays,
  frames in the trailing (SIMD) axis. For a level camera and an even T the
  search runs over the T/2 pairs (θ, θ + π), which share their Gram matrix:
  each pair yields the lower of its two costs,
  `r = ||Dw||² − |z_a|² − |z_b|² − 2|z_a·z_b|` (`z_a`, `z_b` the whitened
  y⁰ and cos θ y¹ + sin θ y² parts), and `_resolve_pair` later tells which
  of the two yaws it was.

  One output per factorisation matters on CPU: XLA fuses the whole chain
  into each consumer, and vectorises the fused loop only while it is small
  (a second output, or the Gram assembly inside the loop, turns it into
  scalar code that runs ~10x slower).

  Args: gram (n, U, K, B); rhs (3, P, K, B); norm2 (B,).
  Returns: (costs (K, T_s, B), paired) where T_s = T/2 if paired else T.
  """
  num_terms, num_upper, num_components, batch = gram.shape
  num = prep.tikhonov.shape[1]
  num_yaws = prep.yaws.shape[0]
  paired = prep.rotation is None and num_yaws % 2 == 0
  grid = prep.yaws[: num_yaws // 2] if paired else prep.yaws
  size = grid.shape[0]
  cos, sin = jnp.cos(grid), jnp.sin(grid)
  pairs = _LEVEL_PAIRS if prep.rotation is None else _ALL_PAIRS
  coeffs = jnp.stack([jnp.broadcast_to(c, (size,)).astype(gram.dtype)
                      for c in _pair_coeffs(cos, sin, prep.proj, pairs)], axis=1)  # (T_s, n)
  width = num_components * batch
  entries = (coeffs @ gram.reshape(num_terms, -1)).reshape(size, num_upper, width)
  tik = jnp.repeat(prep.tikhonov.T, batch, axis=1)  # (P, K·B)
  entries = {(i, j): entries[:, u] + tik[i] if i == j else entries[:, u]
             for u, (i, j) in enumerate(_upper(num))}
  low, inv_diag = _cholesky(entries, num)
  y = rhs.reshape(3, num, width)
  c, s = cos[:, None], sin[:, None]
  total = jnp.tile(norm2, num_components)  # (K·B,)
  if paired:
    za = _forward(low, inv_diag, [jnp.broadcast_to(y[0, i], (size, width)) for i in range(num)])
    zb = _forward(low, inv_diag, [c * y[1, i] + s * y[2, i] for i in range(num)])
    both = sum(a * a + b * b for a, b in zip(za, zb, strict=True))
    cross = 2.0 * sum(a * b for a, b in zip(za, zb, strict=True))
    cost = total - both - jnp.abs(cross)
  else:
    z = _forward(low, inv_diag, [y[0, i] + c * y[1, i] + s * y[2, i] for i in range(num)])
    cost = total - sum(v * v for v in z)
  cost = jnp.transpose(cost.reshape(size, num_components, batch), (1, 0, 2))
  return cost, paired


def _resolve_pair(prep: _Prepared, best, gram, rhs):
  """Which yaw of the chosen pairs (θ, θ + π) has the lower cost.

  The two costs are `r = ||Dw||² − |z_a|² − |z_b|² ∓ 2 z_a·z_b` (see
  `_search_weighted`), so θ + π is the lower one where `z_a·z_b < 0`: one
  factorisation at θ and the sign of one number, a single output per
  (component, frame).

  Args: best (K, B) pair indices in [0, T/2); gram (n, U, K, B); rhs
  (3, P, K, B).
  Returns: best (K, B) yaw indices in [0, T).
  """
  half = prep.yaws.shape[0] // 2
  num = rhs.shape[1]
  theta = prep.yaws[best]
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  coeffs = _pair_coeffs(cos, sin, prep.proj, _LEVEL_PAIRS)
  tikhonov = prep.tikhonov.T[:, :, None]  # (P, K, 1)
  entries = {}
  for u, (i, j) in enumerate(_upper(num)):
    g = sum(coef * gram[n, u] for n, coef in enumerate(coeffs))
    entries[i, j] = g + tikhonov[i] if i == j else g
  low, inv_diag = _cholesky(entries, num)
  za = _forward(low, inv_diag, [rhs[0, i] for i in range(num)])
  zb = _forward(low, inv_diag, [cos * rhs[1, i] + sin * rhs[2, i] for i in range(num)])
  cross = sum(a * b for a, b in zip(za, zb, strict=True))
  return jnp.where(cross < 0, best + half, best)


def _trig_terms(gram, tikhonov):
  """Level-camera Gram terms in the basis (1, cos 2θ, sin 2θ), Λ folded in.

  `G(θ) = H_yy + cos²θ H_xx + sin²θ H_zz + sinθ cosθ H_xz + Λ` is
  `N₀ + cos 2θ N₁ + sin 2θ N₂`: three terms instead of four, which keeps the
  fused factorisation loop small enough for LLVM to vectorise.

  Args: gram (4, U, ...) in `_LEVEL_PAIRS` order; tikhonov broadcasting to
  (P, ...). Returns: (3, U, ...).
  """
  num = tikhonov.shape[0]
  yy, xx, zz, xz = gram
  diagonal = [u for u, (i, j) in enumerate(_upper(num)) if i == j]
  ridge = jnp.zeros_like(yy).at[jnp.asarray(diagonal)].add(tikhonov)
  return jnp.stack([yy + 0.5 * (xx + zz) + ridge, 0.5 * (xx - zz), 0.5 * xz])


def _solve_at(prep: _Prepared, yaw, gram, rhs, norm2, tikhonov, solution: bool):
  """Exact solution at given yaws: cost (...) and optionally c (P, ...).

  Args: yaw (...); gram (n, U, ...), or (3, U, ...) from `_trig_terms` when
  tikhonov is None; rhs (3, P, ...); norm2 broadcasting to (...) and
  tikhonov to (P, ...). Frames should be the trailing axis.
  """
  num = rhs.shape[1]
  cos, sin = jnp.cos(yaw), jnp.sin(yaw)
  if tikhonov is None:
    coeffs = [1.0, jnp.cos(2 * yaw), jnp.sin(2 * yaw)]
  else:
    pairs = _LEVEL_PAIRS if prep.rotation is None else _ALL_PAIRS
    coeffs = _pair_coeffs(cos, sin, prep.proj, pairs)
  entries = {}
  for u, (i, j) in enumerate(_upper(num)):
    g = 0.0
    for n, coef in enumerate(coeffs):
      g = g + coef * gram[n, u]
    if i == j and tikhonov is not None:
      g = g + tikhonov[i]
    entries[i, j] = g
  low, inv_diag = _cholesky(entries, num)
  b = [rhs[0, i] + cos * rhs[1, i] + sin * rhs[2, i] for i in range(num)]
  z = _forward(low, inv_diag, b)
  cost = norm2 - sum(v * v for v in z)
  if not solution:
    return cost, None
  return cost, jnp.stack(_backward(low, inv_diag, z))


def _refine(prep, yaw, gram, rhs, norm2, steps: int):
  """Levenberg–Marquardt on θ per (frame, component) from the best grid yaw.

  Variable projection: (s, a) are solved exactly for every θ, so the search
  is one-dimensional. Each iteration evaluates the exact cost at a trial yaw
  and at ±h around it (one stacked evaluation, so the graph holds a single
  copy of the solver); the trial is kept only if its cost is lower than the
  best so far (so the cost never increases), and the next trial is a damped
  Newton step from the finite-difference slope and curvature, or a shrunken
  step back towards the best yaw after a rejection.

  Args: yaw (K, B) the grid optimum; gram (n, U, K, B); rhs (3, P, K, B);
  norm2 (B,).
  Returns: (yaw, cost) (K, B).
  """
  spacing = 2 * math.pi / prep.yaws.shape[0]
  h = min(0.01, spacing / 4)
  offsets = jnp.asarray([-h, 0.0, h], yaw.dtype)[:, None, None]
  tikhonov = prep.tikhonov.T[:, :, None]  # (P, K, 1)
  if prep.rotation is None:
    gram, tikhonov = _trig_terms(gram, tikhonov), None

  def evaluate(trial):  # exact costs at trial − h, trial, trial + h: (3, K, B)
    f = _solve_at(prep, trial[None] + offsets, gram[:, :, None], rhs[:, :, None], norm2,
                  None if tikhonov is None else tikhonov[:, None], False)[0]
    return jnp.where(jnp.isfinite(f), f, jnp.inf)

  def update(best, best_cost, trial, damping, f):
    better = f[1] < best_cost
    best = jnp.where(better, trial, best)
    best_cost = jnp.where(better, f[1], best_cost)
    slope = (f[2] - f[0]) / (2 * h)
    curv = (f[2] - 2 * f[1] + f[0]) / (h * h)
    step = -slope / (jnp.abs(curv) * (1.0 + damping) + 1e-12)
    step = jnp.clip(jnp.where(jnp.isfinite(step), step, 0.0), -spacing, spacing)
    trial = jnp.where(better, trial + step, best + 0.3 * (trial - best))
    damping = jnp.where(better, damping * 0.1, damping * 10.0)
    return best, best_cost, trial, damping

  def body(_, state):
    # The costs of a trial reach the next iteration through the loop state, so
    # the solver's output has one consumer: fused into several, XLA computed
    # the whole factorisation once per consumer.
    *state, f = state
    state = update(*state, f)
    return (*state, evaluate(state[2]))

  # The first evaluation is at the grid yaw itself (accepted), so every
  # comparison is between exact costs of the same function.
  state = (yaw, jnp.full_like(yaw, jnp.inf), yaw, jnp.full_like(yaw, 1e-3), evaluate(yaw))
  *state, f = jax.lax.fori_loop(0, steps, body, state)
  best, best_cost, _, _ = update(*state, f)
  return best, best_cost


# ---------------------------------------------------------------------------


def _dummy_pose(num_joints: int, dtype):
  angles = jnp.arange(num_joints, dtype=dtype) * (2 * math.pi / num_joints)
  return jnp.stack([jnp.cos(angles), jnp.sin(angles) + 0.1 * angles], axis=-1)


def _lift_chunk(prep: _Prepared, model: PoseModel, keypoints, visibility, *, refine: bool,
                refine_steps: int, min_visible: int, root: int, differentiable: bool):
  """Lifts (B, L, 2) pixel keypoints; returns the LiftResult fields for the chunk."""
  batch, num_joints = keypoints.shape[:2]
  dtype = keypoints.dtype
  if visibility is None:
    joint_w = None
    used = jnp.ones(keypoints.shape[:2], bool)
  else:
    visibility = jnp.where(jnp.isfinite(visibility), jnp.clip(visibility, 0.0, 1.0), 0.0)
    joint_w = visibility * visibility  # D² (METHOD §4, D = diag(visibility)).
    used = joint_w > 0
  finite = jnp.all(jnp.isfinite(keypoints), axis=-1)
  count = jnp.sum(used, axis=-1)
  clean = jnp.where(used[..., None] & finite[..., None], keypoints, 0.0)
  ok = jnp.all(finite | ~used, axis=-1) & (count >= min_visible)
  probe = camera.normalize_keypoints(jax.lax.stop_gradient(clean), joint_w)
  # Coincident joints: a size at the level of float rounding of the coordinates.
  extent = jnp.max(jnp.abs(jnp.where(used[..., None], jax.lax.stop_gradient(clean), 0.0)),
                   axis=(-1, -2))
  ok = ok & jnp.isfinite(probe.size) & (probe.size > 1e-5 * extent)
  # Invalid frames get a harmless stand-in so that nothing (not even a
  # gradient) turns NaN; their outputs are masked at the end.
  clean = jnp.where(ok[:, None, None], clean, _dummy_pose(num_joints, dtype))
  used = used | ~ok[:, None]
  if joint_w is not None:
    joint_w = jnp.where(ok[:, None], joint_w, 1.0)
  norm = camera.normalize_keypoints(clean, joint_w)
  points = jnp.where(used[..., None], norm.points, 0.0)

  gram, rhs, norm2 = _frame_terms(prep, points, joint_w)
  if joint_w is None:
    costs, paired = _search_unweighted(prep, points), False
  else:
    costs, paired = _search_weighted(prep, gram, rhs, norm2)
  # Frames stay the minor axis until here: reductions over T then vectorise.
  # (The barrier keeps XLA from fusing the search into these reductions,
  # which it otherwise compiles into a slow, strided loop.)
  costs = jax.lax.optimization_barrier(costs)
  costs = jnp.where(jnp.isfinite(costs), costs, jnp.inf)  # (K, T_s, B)
  lowest = jnp.min(costs, axis=1, keepdims=True)
  # argmin as two min-reductions: XLA's variadic argmin reduce is far slower here.
  index = jnp.arange(costs.shape[1], dtype=jnp.int32)[None, :, None]
  best = jnp.min(jnp.where(costs == lowest, index, costs.shape[1] - 1), axis=1)  # (K, B)
  comp_cost = lowest[:, 0]
  if paired:  # comp_cost, the lower cost of the pair, stands
    best = _resolve_pair(prep, best, gram, rhs)
  yaw = prep.yaws[best]
  if refine:
    frame_gram = (jnp.broadcast_to(prep.gram_ones[..., None], (*prep.gram_ones.shape, batch))
                  if gram is None else gram)
    yaw, comp_cost = _refine(prep, yaw, frame_gram, rhs, norm2, refine_steps)
  score = comp_cost * prep.inv_two_var + prep.score_offset[:, None]
  score = jnp.where(jnp.isfinite(score), score, jnp.inf)
  component = jnp.argmin(score, axis=0).astype(jnp.int32)  # (B,)
  take = lambda x: jnp.take_along_axis(  # noqa: E731  (..., K, B) -> (..., B)
      x, jnp.broadcast_to(component, (*x.shape[:-2], 1, batch)), axis=-2)[..., 0, :]
  yaw = jax.lax.stop_gradient(take(yaw))

  if gram is None and not refine and not differentiable:
    # On the grid and unweighted: the search's own cost, and the solution by
    # the precomputed operator of the chosen (component, yaw).
    cost = take(comp_cost)
    chosen = component * prep.yaws.shape[0] + take(best)
    operator = prep.solve_ops[chosen]  # (B, P, 2L)
    solution = jnp.sum(operator * points.reshape(batch, 1, -1), axis=-1)
  else:
    chosen_gram = prep.gram_ones[..., component] if gram is None else take(gram)
    cost, solution = _solve_at(prep, yaw, chosen_gram, take(rhs), norm2,
                               prep.tikhonov[component].T, True)
    solution = solution.T  # (B, P)
  scale = solution[:, 0]
  coeffs = solution[:, 1:] / scale[:, None]
  # μ_k + a·e_k as one plain matrix product over all K (one-hot in k), and
  # R_θ applied elementwise: both vectorise far better than per-frame dots.
  num_components = prep.tikhonov.shape[0]
  mix = jax.nn.one_hot(component, num_components, dtype=dtype)[:, :, None] * jnp.concatenate(
      [jnp.ones_like(scale)[:, None], coeffs], axis=1)[:, None, :]  # (B, K, P)
  flat_blocks = jnp.transpose(prep.blocks, (0, 3, 1, 2)).reshape(-1, num_joints * 3)
  pose = (mix.reshape(batch, -1) @ flat_blocks).reshape(batch, num_joints, 3)
  cos, sin = jnp.cos(yaw)[:, None], jnp.sin(yaw)[:, None]
  pose = jnp.stack([cos * pose[..., 0] + sin * pose[..., 2], pose[..., 1],
                    cos * pose[..., 2] - sin * pose[..., 0]], axis=-1)
  if prep.rotation is not None:
    pose = pose @ prep.rotation.T
  # Without this barrier XLA fuses the pose assembly into each consumer below
  # and recomputes it per output element (8 µs a frame instead of 0.5).
  pose = jax.lax.optimization_barrier(pose)
  # Reprojection: s Π E R_θ X, with t eliminated as in the fit (weighted mean).
  proj = scale[:, None, None] * pose[..., :2]
  w = jnp.ones(keypoints.shape[:2], dtype) if joint_w is None else joint_w
  proj = proj - jnp.sum(w[..., None] * proj, axis=1, keepdims=True) / jnp.sum(
      w, axis=1)[:, None, None]
  reprojected = camera.denormalize_keypoints(proj, norm.centre, norm.size)
  mm = model.limb_scale * 1000.0
  pose3d = (pose - pose[:, root : root + 1]) * mm
  scale_px = scale * norm.size / mm

  valid = ok & jnp.isfinite(cost) & jnp.all(jnp.isfinite(pose3d), axis=(-1, -2)) & (
      jnp.abs(scale) > 0)
  nan = jnp.asarray(jnp.nan, dtype)
  mask = lambda x: jnp.where(valid.reshape((batch,) + (1,) * (x.ndim - 1)), x, nan)  # noqa: E731
  return LiftResult(
      pose3d=mask(pose3d), yaw=mask(jnp.mod(yaw, 2 * math.pi)), scale=mask(scale_px),
      coeffs=mask(coeffs), component=jnp.where(valid, component, -1), cost=mask(cost),
      reprojected=mask(reprojected), valid=valid,
  )


@functools.partial(
    jax.jit,
    static_argnames=("num_yaws", "refine", "refine_steps", "differentiable", "min_visible",
                     "chunk_size", "root"),
)
def _lift_jit(model, keypoints, visibility, rotation, obs_noise, *, num_yaws, refine,
              refine_steps, differentiable, min_visible, chunk_size, root):
  if not differentiable:
    model, keypoints, visibility, rotation = jax.lax.stop_gradient(
        (model, keypoints, visibility, rotation))
  batch_shape = keypoints.shape[:-2]
  num_joints = keypoints.shape[-2]
  flat = keypoints.reshape((-1, num_joints, 2))
  flat_vis = None if visibility is None else visibility.reshape((-1, num_joints))
  total = flat.shape[0]
  prep = _prepare(model, rotation, obs_noise, num_yaws, visibility is None)
  run = functools.partial(_lift_chunk, prep, model, refine=refine, refine_steps=refine_steps,
                          min_visible=min_visible, root=root, differentiable=differentiable)
  if total <= chunk_size:
    out = run(flat, flat_vis)
  else:
    num_chunks = -(-total // chunk_size)
    pad = num_chunks * chunk_size - total
    flat = jnp.pad(flat, ((0, pad), (0, 0), (0, 0)))
    chunks = flat.reshape((num_chunks, chunk_size, num_joints, 2))
    if flat_vis is None:
      out = jax.lax.map(lambda kp: run(kp, None), chunks)
    else:
      vis_chunks = jnp.pad(flat_vis, ((0, pad), (0, 0))).reshape(
          (num_chunks, chunk_size, num_joints))
      out = jax.lax.map(lambda args: run(*args), (chunks, vis_chunks))
    out = jax.tree.map(lambda x: x.reshape((num_chunks * chunk_size, *x.shape[2:]))[:total], out)
  return jax.tree.map(lambda x: x.reshape(batch_shape + x.shape[1:]), out)


def _check_model(model: PoseModel) -> None:
  if not isinstance(model, PoseModel):
    raise ValueError(f"expected a lift3d PoseModel, got {type(model).__name__}")
  shapes = {name: tuple(np.shape(getattr(model, name))) for name in
            ("mean", "basis", "variances", "noise", "weights", "limb_scale")}
  if len(shapes["mean"]) != 3 or shapes["mean"][-1] != 3:
    raise ValueError(f"model.mean must be (K, L, 3), got {shapes['mean']}")
  k, num_joints, _ = shapes["mean"]
  if len(shapes["basis"]) != 4:
    raise ValueError(f"model.basis must be (K, J, L, 3), got {shapes['basis']}")
  j = shapes["basis"][1]
  expected = {"basis": (k, j, num_joints, 3), "variances": (k, j), "noise": (k,),
              "weights": (k,), "limb_scale": ()}
  for name, shape in expected.items():
    if shapes[name] != shape:
      raise ValueError(
          f"model.{name} must be {shape} for mean {shapes['mean']} (K, L, 3) and "
          f"basis (K, J, L, 3), got {shapes[name]}")


@float32_matmuls
def lift(
    model: PoseModel,
    keypoints,
    visibility=None,
    *,
    num_yaws: int = 100,
    refine: bool = False,
    differentiable: bool = False,
    camera_rotation=None,
    min_visible: int = 6,
    chunk_size: int | None = None,
    obs_noise: float = DEFAULT_OBS_NOISE,
    refine_steps: int = 6,
    skeleton: Skeleton = H36M17,
) -> LiftResult:
  """Lifts 2D landmarks to 3D poses by exhaustive search over yaws and components.

  Implements METHOD §4: for each component k and each of `num_yaws` evenly
  spaced yaws θ, the Tikhonov-regularised linear least squares in
  `c = (s, s·a)` (translation eliminated) is solved exactly; the best θ per
  component is kept, the component with the lowest negative log posterior is
  chosen. Works under `jax.jit` (pass the options as static) and `jax.vmap`,
  on any batch shape; big batches are processed in chunks of `chunk_size`
  frames so that memory stays bounded.

  Args:
    model: the pose model (K components, J basis vectors, L joints).
    keypoints: (..., L, 2) image pixels, x right, y down (any translation and
      scale, e.g. belief-map grid coordinates).
    visibility: optional (..., L) weights in [0, 1]; `D = diag(visibility)`
      weights the residuals. Joints of weight 0 may hold any value, NaN
      included, and have no effect. None (all visible) takes the fast
      unweighted path; then every joint must be finite.
    num_yaws: T, the number of yaws 2πt/T searched (static).
    refine: run `refine_steps` Levenberg–Marquardt steps on θ per component
      from its best grid yaw, (s, a) solved exactly for each θ; the cost
      never increases.
    differentiable: let gradients flow (to the keypoints, visibility, model)
      through the least-squares solution at the chosen (k, θ), which are
      held fixed. By default the result carries no gradient.
    camera_rotation: optional (3, 3) camera rotation E (METHOD §4), e.g.
      `lift3d.camera.elevation_rotation(pitch)`; None for a level camera.
    min_visible: frames with fewer joints of positive weight are not valid.
    chunk_size: frames per chunk. Default on CPU 2,048 unweighted, 128
      weighted and 64 with `refine` (chosen with
      experiments/benchmarks/lift_speed.py so the working set stays in cache);
      on GPU/TPU 65,536 unweighted and 16,384 weighted (under 1 GB of
      intermediates).
    obs_noise: 2D noise standard deviation in normalised units (fraction of
      the pose's RMS radius) used in σ_obs (see the module docstring).
    refine_steps: LM steps when `refine` (static).
    skeleton: the joints' skeleton (L joints; pose3d is centred on its root).

  Returns:
    A `LiftResult` with the batch shape `...` of `keypoints`.

  Raises:
    ValueError: on a malformed model, keypoints/visibility shapes that do not
      match the model or the skeleton, or bad options.
  """
  _check_model(model)
  num_joints = int(np.shape(model.mean)[1])
  shape = tuple(np.shape(keypoints))
  if len(shape) < 2 or shape[-1] != 2 or shape[-2] != num_joints:
    raise ValueError(
        f"expected keypoints (..., {num_joints}, 2) for a model of {num_joints} joints, "
        f"got {shape}; map joints with lift3d.skeleton.convert first")
  if skeleton.num_joints != num_joints:
    raise ValueError(
        f"skeleton {skeleton.name} has {skeleton.num_joints} joints but the model has "
        f"{num_joints} (model.mean {np.shape(model.mean)})")
  if visibility is not None and tuple(np.shape(visibility)) != shape[:-1]:
    raise ValueError(
        f"visibility shape {tuple(np.shape(visibility))} does not match keypoints {shape} "
        f"(expected {shape[:-1]})")
  if camera_rotation is not None and tuple(np.shape(camera_rotation)) != (3, 3):
    raise ValueError(f"camera_rotation must be (3, 3), got {tuple(np.shape(camera_rotation))}")
  if int(num_yaws) < 1:
    raise ValueError(f"num_yaws must be >= 1, got {num_yaws}")
  if int(min_visible) < 1:
    raise ValueError(f"min_visible must be >= 1, got {min_visible}")
  if chunk_size is None:
    if jax.default_backend() != "cpu":
      chunk_size = _ACCELERATOR_CHUNKS[visibility is not None]
    else:
      chunk_size = _CPU_REFINE_CHUNK if refine else _CPU_CHUNKS[visibility is not None]
  if int(chunk_size) < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  dtype = jnp.result_type(float)
  keypoints = jnp.asarray(keypoints, dtype)
  if visibility is not None:
    visibility = jnp.asarray(visibility, dtype)
  model = jax.tree.map(lambda x: jnp.asarray(x, dtype), model)
  if camera_rotation is not None:
    camera_rotation = jnp.asarray(camera_rotation, dtype)
  root = skeleton.parents.index(-1)
  return _lift_jit(
      model, keypoints, visibility, camera_rotation, jnp.asarray(obs_noise, dtype),
      num_yaws=int(num_yaws), refine=bool(refine), refine_steps=int(refine_steps),
      differentiable=bool(differentiable), min_visible=int(min_visible),
      chunk_size=int(chunk_size), root=root)


# ===========================================================================
# BEGIN grid_scores (issue 16: lift3d.sequence depends on this one function).
# The per-frame negative log posterior of every (component, yaw) of the grid,
# built from `_prepare`, `_frame_terms` and the two searches above, with the
# same 2D preprocessing as `_lift_chunk`. The weighted search runs unpaired
# (an explicit identity camera rotation), so that all T yaws come back.


def _grid_chunk(prep: _Prepared, keypoints, visibility, min_visible: int):
  """(K, T, B) scores of a (B, L, 2) chunk; NaN for frames that cannot be lifted."""
  num_joints = keypoints.shape[1]
  if visibility is None:
    joint_w = None
    used = jnp.ones(keypoints.shape[:2], bool)
  else:
    visibility = jnp.where(jnp.isfinite(visibility), jnp.clip(visibility, 0.0, 1.0), 0.0)
    joint_w = visibility * visibility
    used = joint_w > 0
  finite = jnp.all(jnp.isfinite(keypoints), axis=-1)
  clean = jnp.where(used[..., None] & finite[..., None], keypoints, 0.0)
  ok = jnp.all(finite | ~used, axis=-1) & (jnp.sum(used, axis=-1) >= min_visible)
  probe = camera.normalize_keypoints(clean, joint_w)
  extent = jnp.max(jnp.abs(jnp.where(used[..., None], clean, 0.0)), axis=(-1, -2))
  ok = ok & jnp.isfinite(probe.size) & (probe.size > 1e-5 * extent)
  clean = jnp.where(ok[:, None, None], clean, _dummy_pose(num_joints, keypoints.dtype))
  used = used | ~ok[:, None]
  if joint_w is not None:
    joint_w = jnp.where(ok[:, None], joint_w, 1.0)
  points = jnp.where(used[..., None], camera.normalize_keypoints(clean, joint_w).points, 0.0)
  if joint_w is None:
    costs = _search_unweighted(prep, points)
  else:
    costs, paired = _search_weighted(prep, *_frame_terms(prep, points, joint_w))
    assert not paired  # an explicit camera rotation never pairs θ with θ + π
  scores = costs * prep.inv_two_var + prep.score_offset[:, None, None]
  return jnp.where(ok & jnp.all(jnp.isfinite(scores), axis=(0, 1)), scores, jnp.nan)


@functools.partial(jax.jit, static_argnames=("num_yaws", "min_visible", "chunk_size"))
def _grid_scores_jit(model, keypoints, visibility, obs_noise, *, num_yaws, min_visible,
                     chunk_size):
  model, keypoints, visibility = jax.lax.stop_gradient((model, keypoints, visibility))
  batch_shape, num_joints = keypoints.shape[:-2], keypoints.shape[-2]
  flat = keypoints.reshape((-1, num_joints, 2))
  flat_vis = None if visibility is None else visibility.reshape((-1, num_joints))
  rotation = None if visibility is None else jnp.eye(3, dtype=keypoints.dtype)
  prep = _prepare(model, rotation, obs_noise, num_yaws, visibility is None)
  total = flat.shape[0]
  num_chunks = max(1, -(-total // chunk_size))
  size = -(-total // num_chunks)
  pad = num_chunks * size - total
  chunks = jnp.pad(flat, ((0, pad), (0, 0), (0, 0))).reshape(num_chunks, size, num_joints, 2)
  if flat_vis is None:
    out = jax.lax.map(lambda kp: _grid_chunk(prep, kp, None, min_visible), chunks)
  else:
    vis = jnp.pad(flat_vis, ((0, pad), (0, 0))).reshape(num_chunks, size, num_joints)
    out = jax.lax.map(lambda a: _grid_chunk(prep, *a, min_visible), (chunks, vis))
  out = jnp.moveaxis(out, -1, 1).reshape((num_chunks * size, *out.shape[1:3]))[:total]
  return out.reshape(batch_shape + out.shape[1:])


@float32_matmuls
def grid_scores(model: PoseModel, keypoints, visibility=None, *, num_yaws: int = 100,
                min_visible: int = 6, obs_noise: float = DEFAULT_OBS_NOISE,
                chunk_size: int | None = None):
  """Negative log posterior of every (component, yaw) of the lifting grid, per frame.

  The quantity `lift` minimises on its grid (METHOD §4): for component k and
  yaw θ_t = 2πt/T, `r_k(θ_t)/(2σ_obs²) + ½ Σ_j log λ_kj − log π_k` with `r`
  the regularised least-squares cost of the frame, in nats. Same 2D
  preprocessing, weights and prior as `lift` (see the module docstring).

  Args:
    model: the pose model (K components, L joints).
    keypoints: (..., L, 2) pixels, x right, y down.
    visibility: optional (..., L) weights in [0, 1] (D = diag(visibility));
      joints of weight 0 may be NaN. None: all joints, unweighted search.
    num_yaws: T (static).
    min_visible: frames with fewer joints of positive weight get NaN.
    obs_noise: 2D noise in normalised units, as in `lift`.
    chunk_size: frames per chunk (default 2,048 unweighted, 128 weighted).

  Returns:
    (..., K, T) float32 scores (nats); all NaN for a frame that `lift` would
    mark not valid (too few visible joints, a visible joint not finite, or
    the visible joints coincide).
  """
  _check_model(model)
  num_joints = int(np.shape(model.mean)[1])
  shape = tuple(np.shape(keypoints))
  if len(shape) < 2 or shape[-1] != 2 or shape[-2] != num_joints:
    raise ValueError(f"expected keypoints (..., {num_joints}, 2), got {shape}; map joints "
                     "with lift3d.skeleton.convert first")
  if visibility is not None and tuple(np.shape(visibility)) != shape[:-1]:
    raise ValueError(f"visibility shape {tuple(np.shape(visibility))} does not match "
                     f"keypoints {shape} (expected {shape[:-1]})")
  if int(num_yaws) < 1 or int(min_visible) < 1:
    raise ValueError(f"num_yaws and min_visible must be >= 1, got {num_yaws}, {min_visible}")
  if chunk_size is None:
    chunk_size = _CPU_CHUNKS[visibility is not None]
  dtype = jnp.result_type(float)
  model = jax.tree.map(lambda x: jnp.asarray(x, dtype), model)
  return _grid_scores_jit(
      model, jnp.asarray(keypoints, dtype),
      None if visibility is None else jnp.asarray(visibility, dtype),
      jnp.asarray(obs_noise, dtype), num_yaws=int(num_yaws), min_visible=int(min_visible),
      chunk_size=int(chunk_size))


# END grid_scores
# ===========================================================================
