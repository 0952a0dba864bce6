"""The fast grid search of the lifting and its frame-independent terms (docs/method.md §4.2).

The search solves the *linearised* problem of every (component, yaw) exactly:
with `c = (s, s·a)` and the prior on `c_{1..J}` taken at a typical scale s̄,
each (k, θ) is a Tikhonov-regularised linear least squares whose cost
`r(θ) = ||Dw||² − (A_θᵀD²w)ᵀ(A_θᵀD²A_θ + Λ)⁻¹A_θᵀD²w` is cheap to evaluate for
every grid yaw at once. The linearisation only *finds candidates*: it lets a
small or negative s free `a = c/s`, so `lift3d.lifting.api` re-ranks the best
candidates by the exact objective (`solves.exact_profile`).

Computation. `A_θ = A⁰ + cos θ A^c + sin θ A^s`, so per frame the right-hand
sides `A_θᵀ D² w = y⁰ + cos θ y¹ + sin θ y²` need three small products, and
the Gram matrices `Σ_pq M_pq(θ) H_pq` (`solves.yaw_coefficients`) are linear
in per-frame terms `H_pq = Σ_l D_l² B_lpᵀ B_lq`. For a level camera
`G(θ + π) = G(θ)` and only the sign of the `y¹, y²` part flips, so one
factorisation serves two yaws.
- Unweighted: `r(θ) = wᵀ(I − M_θ)w` with `M_θ = A_θ(A_θᵀA_θ + Λ)⁻¹A_θᵀ`
  precomputed for every (k, θ); a chunk of frames is two matrix products of
  those coefficients against per-frame products of coordinates.
- Weighted: the Gram matrices of all grid yaws are one matrix product of the
  per-frame terms with their coefficients, then one unrolled Cholesky per
  (frame, k, θ) with frames in the trailing (SIMD) axis. A level camera
  searches the pairs (θ, θ + π) for the lower cost of each pair
  (`search_weighted`), or for the costs of both (`search_weighted_grid`, the
  grid `grid_scores` returns), one factorisation per pair.

Frames are the minor (last) axis of every per-frame array here: a measured
CPU choice (LLVM vectorises the unrolled kernels over it; RESULTS.md).

Shape letters are those of `lift3d.lifting` (its package docstring).
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from lift3d import camera
from lift3d.lifting import solves
from lift3d.pose_model.model import PoseModel


class Prepared(flax.struct.PyTreeNode):
  """Everything about (model, camera, yaws) that does not depend on a frame."""

  blocks: jax.Array  # (K, L, 3, P): [μ, e_1..e_J] per joint and coordinate.
  features: jax.Array  # (n·U·K, L): per-joint Gram features of each coordinate pair.
  gram_ones: jax.Array  # (n, U, K): Gram terms of all-ones weights, t eliminated.
  tikhonov: jax.Array  # (K, P): the linearised prior Λ (0 for the scale).
  inv_variances: jax.Array  # (K, J): 1/λ_kj, the exact prior.
  score_offset: jax.Array  # (K,): ½Σ_j log λ_kj − log π_k.
  inv_var: jax.Array  # (): 1/σ_obs².
  typical_scale: jax.Array  # (): s̄, the scale of a typical projected model pose.
  projection: jax.Array | None  # (3, 3) S = EᵀΠᵀΠE, or None for a level camera.
  rotation: jax.Array | None  # (3, 3) E, or None.
  yaws: jax.Array  # (T,) the grid 2πt/T.
  cost_quadratic: jax.Array | None  # (K·T_s, F) unweighted: coefficients of I − M_θ.
  cost_cross: jax.Array | None  # (K·T/2, (L−1)²) the x-y part of a (θ, θ+π) pair, or None.
  # Unweighted: every linear term of a frame as one product with its
  # interleaved coordinates w (2L: x_0, y_0, x_1, ...): the right-hand-side
  # terms y (3·P·K rows, `frame_terms`' order), x̃ = Uᵀx and ỹ = Uᵀy
  # (L − 1 rows each, `centred_basis`), then x and y themselves (L rows each).
  frame_operator: jax.Array | None  # (3·P·K + 2(L − 1) + 2L, 2L)
  # Unweighted exact profile per grid (k, θ), in the eigenbasis V of
  # G̃ = Λ^½EᵀAᵀAEΛ^½/σ² (eigenvalues g): p = VᵀΛ^½EᵀA_θᵀw/σ²,
  # q = VᵀΛ^½EᵀAᵀAμ/σ², mean_norm = |Aμ|²/σ² (see `profile_unweighted`).
  # Tables with the grid points k·T + t minor; (J², K·T) hold a matrix's
  # entry (i, j) in row i·J + j.
  profile_q: jax.Array | None  # (J, K·T)
  profile_g: jax.Array | None  # (J, K·T)
  profile_mean_norm: jax.Array | None  # (K·T,)
  profile_basis: jax.Array | None  # (J², K·T) Λ^½V: a = Λ^½V β
  profile_rotation: jax.Array | None  # (J², K·T) VᵀΛ^½/σ²: p = rotation · EᵀA_θᵀw


def typical_scale(model: PoseModel) -> jax.Array:
  """s̄: the scale at which a typical projected model pose has unit RMS radius.

  `s̄ = 1/ρ̄`, `ρ̄²` the mixture-weighted mean over yaws (E[cos²] = E[sin²] = ½)
  of the squared RMS radius of the projected component means; a normalised
  2D pose has unit RMS radius (`lift3d.camera.normalize_keypoints`).

  Args:
    model: the pose model.

  Returns:
    () scale, normalised 2D units per model unit.
  """
  weights = model.weights / jnp.sum(model.weights)
  centred = model.mean - jnp.mean(model.mean, axis=1, keepdims=True)
  radius2 = jnp.mean(0.5 * (centred[..., 0] ** 2 + centred[..., 2] ** 2) + centred[..., 1] ** 2,
                     axis=1)
  return jax.lax.rsqrt(jnp.sum(weights * radius2))


def default_obs_noise(model: PoseModel, noise_2d: float = 0.05) -> jax.Array:
  """σ_obs of a model with none calibrated: `sqrt(s̄²·Σπσ² + noise_2d²)`.

  The projected model noise plus a 2D noise of `noise_2d` (a fraction of the
  pose's RMS radius). `lift3d.lifting.calibrate_prior` chooses σ_obs by
  held-out validation instead.

  Args:
    model: the pose model.
    noise_2d: 2D noise standard deviation, normalised units.

  Returns:
    () σ_obs, normalised 2D units.
  """
  weights = model.weights / jnp.sum(model.weights)
  return jnp.sqrt(typical_scale(model) ** 2 * jnp.sum(weights * model.noise) + noise_2d**2)


def centred_basis(num_joints: int) -> np.ndarray:
  """U (L, L − 1): an orthonormal basis of the vectors over the joints that sum to 0.

  The unweighted search's coordinates: a centred w is U Uᵀw.
  """
  ones = np.eye(num_joints)
  ones[:, 0] = 1.0
  q = np.linalg.qr(ones)[0]
  return q[:, 1:]


def _pair_features(blocks, pairs):
  """(..., 3, P) column blocks -> (..., n, U) products b_p,i b_q,j (+ the transpose)."""
  upper = solves.upper_pairs(blocks.shape[-1])
  iu = np.array([u[0] for u in upper])
  ju = np.array([u[1] for u in upper])
  features = []
  for p, q in pairs:
    f = blocks[..., p, iu] * blocks[..., q, ju]
    if p != q:
      f = f + blocks[..., q, iu] * blocks[..., p, ju]
    features.append(f)
  return jnp.stack(features, axis=-2)


def prepare(model: PoseModel, rotation, obs_noise, prior_weight, num_yaws: int,
            unweighted: bool, profile: bool | None = None) -> Prepared:
  """The frame-independent terms of a lift.

  Args:
    model: the pose model (K, J, L).
    rotation: (3, 3) camera rotation E, or None for a level camera.
    obs_noise: () σ_obs, normalised 2D units.
    prior_weight: () weight β of the component term of the score.
    num_yaws: T (static).
    unweighted: also precompute the unweighted search's coefficients.
    profile: with `unweighted`, also the exact profile's tables (static;
      default `unweighted`): they need an eigendecomposition (a LAPACK call),
      from which the search's coefficients then come too.

  Returns:
    A `Prepared`.
  """
  if profile is None:
    profile = unweighted
  mean = model.mean
  dtype = mean.dtype
  num_components, num_joints = mean.shape[:2]
  blocks = jnp.concatenate([mean[:, None], model.basis], axis=1)  # (K, P, L, 3)
  blocks = jnp.transpose(blocks, (0, 2, 3, 1))  # (K, L, 3, P)
  num_unknowns = blocks.shape[-1]
  weights = model.weights / jnp.sum(model.weights)
  variances = jnp.maximum(model.variances, jnp.finfo(dtype).tiny)

  scale_bar = typical_scale(model)
  obs_var = obs_noise**2
  # The linearised prior on c_{1..J} = s·a at s = s̄, in the units of the
  # data term: σ²/(s̄² λ) (docs/method.md §4.2).
  tikhonov = jnp.concatenate(
      [jnp.zeros((num_components, 1), dtype), obs_var / (scale_bar**2 * variances)], axis=1)
  score_offset = prior_weight * (0.5 * jnp.sum(jnp.log(variances), axis=1) - jnp.log(weights))

  pairs = solves.LEVEL_PAIRS if rotation is None else solves.ALL_PAIRS
  # (n, U, K) rows against the joints: a chunk's Gram terms are then one
  # product that comes out frames-minor (no transpose of its output).
  features = jnp.transpose(_pair_features(blocks, pairs), (2, 3, 0, 1)).reshape(-1, num_joints)
  centred = blocks - jnp.mean(blocks, axis=1, keepdims=True)
  gram_ones = jnp.transpose(jnp.sum(_pair_features(centred, pairs), axis=1), (1, 2, 0))

  projection = None
  if rotation is not None:
    rotation = rotation.astype(dtype)
    projection = rotation[:2].T @ rotation[:2]
  yaws = jnp.arange(num_yaws, dtype=dtype) * (2 * math.pi / num_yaws)

  cost_quadratic = cost_cross = frame_operator = None
  profile_q = profile_g = profile_mean_norm = profile_basis = None
  profile_rotation = None
  if unweighted:
    symmetric = rotation is None and num_yaws % 2 == 0
    rot_all = camera.yaw_rotation(yaws)
    if rotation is not None:
      rot_all = jnp.einsum("ab,tbc->tac", rotation, rot_all)
    # A level camera's θ and θ + π share AᵀA (only the sign of A's x rows
    # flips): the search's coefficients, and the eigenbasis, once per pair.
    # So do the profile's tables, each a product of two terms that both flip
    # (or neither): A_θ is needed at the first T' yaws only.
    size_t = num_yaws // 2 if symmetric else num_yaws
    full = jnp.einsum("tra,klai->ktlri", rot_all[:size_t, :2], centred).reshape(
        num_components, size_t, 2 * num_joints, num_unknowns)  # (K, T', 2L, P)
    if profile:
      # The exact profile's frame-independent parts (on the full grid, `table`).
      mean_col, basis_cols = full[..., 0], full[..., 1:]
      root_var = jnp.sqrt(variances)[:, None, None, :]  # Λ^½ (K, 1, 1, J)
      scaled = basis_cols * root_var  # AEΛ^½ (K, T', 2L, J)
      inv_var = 1.0 / obs_noise**2
      # The eigendecomposition is the largest cost of `prepare` (a one-frame
      # unweighted `lift` with K = 9, J = 14 spent 19 of its 29 ms in it on
      # the 2-core CPU). Unsorted: nothing here needs an order, and LAPACK's
      # sort cost a quarter of it.
      v_eig, g_eig = jax.lax.linalg.eigh(
          jnp.einsum("ktli,ktlj->ktij", scaled, scaled) * inv_var, sort_eigenvalues=False)
      projector = jnp.einsum("ktij,ktli->ktjl", v_eig, scaled) * inv_var  # VᵀΛ^½EᵀAᵀ/σ²
      # M = A(AᵀA + Λ)⁻¹Aᵀ of the linearised problem from this eigenbasis,
      # not a second factorisation. With S = AEΛ^½ (the basis columns) and
      # Λ^½(EᵀAᵀAE + Λ_J)Λ^½ = σ²V(diag(g) + I/s̄²)Vᵀ (Λ_J = σ²/(s̄²λ)),
      # the basis columns give QQᵀ, Qᵀ = (σ²(g + 1/s̄²))^-½ VᵀSᵀ; the mean
      # column a = Aμ (no prior on the scale) adds rrᵀ/δ by its Schur
      # complement, r = a − QQᵀa, δ = aᵀr = |r|² + (QQᵀa)ᵀr (two terms
      # ≥ 0). So M = WᵀW with the P rows W = [Qᵀ; rᵀ/√δ].
      q_t = projector * (obs_noise * jax.lax.rsqrt(
          jnp.maximum(g_eig, 0.0) + 1.0 / scale_bar**2))[..., None]
      a = mean_col  # (K, T', 2L)
      explained = jnp.einsum("ktjl,ktj->ktl", q_t, jnp.einsum("ktjl,ktl->ktj", q_t, a))
      r = a - explained
      delta = jnp.sum(r * r + explained * r, axis=-1)
      whitened = jnp.concatenate([q_t, (r * jax.lax.rsqrt(delta)[..., None])[:, :, None]],
                                 axis=2)  # (K, T', P, 2L)

      def table(x):  # (K, T', ...) -> (..., K·T), the trailing axes flattened
        if symmetric:
          x = jnp.concatenate([x, x], axis=1)
        return x.reshape(num_components * num_yaws, -1).T

      profile_q = table(jnp.einsum("ktjl,ktl->ktj", projector, mean_col))
      profile_g = table(jnp.maximum(g_eig, 0.0))
      profile_mean_norm = table(jnp.sum(mean_col**2, axis=-1) * inv_var)[0]
      profile_basis = table(jnp.sqrt(variances)[:, None, :, None] * v_eig)
      profile_rotation = table(jnp.swapaxes(v_eig, -1, -2) * jnp.sqrt(variances)[:, None, None, :]
                               * inv_var)
    else:
      # Without the profile (`grid_scores`): the rolled Cholesky of
      # `solves.whiten`, so that the program holds no LAPACK call
      # (`lift3d.lift_sequence` runs several at once in threads; see
      # `lift3d.lifting.api._in_threads`).
      gram = jnp.einsum("ktli,ktlj->ktij", full, full) + jax.vmap(jnp.diag)(tikhonov)[:, None]
      whitened = solves.whiten(gram, full)  # (K, T', P, 2L)
    whitened = whitened.reshape((*whitened.shape[:3], num_joints, 2))  # (K, T', P, L, 2)

    # r(θ) = ||w||² − ||Ww||² = wᵀ(I − M)w with M = WᵀW (2L × 2L):
    # one product of the (K·T, F) coefficients of I − M against F per-frame
    # products of coordinates, instead of a (P·K·T, B) intermediate Ww.
    def upper(matrix):  # (..., m, m) -> (..., m(m+1)/2) coefficients of w_i w_j, i ≤ j
      iu, ju = np.triu_indices(matrix.shape[-1])
      return matrix[..., iu, ju] * jnp.asarray(np.where(iu == ju, 1.0, 2.0), dtype)

    # In the coordinates w̃ = Uᵀw of `centred_basis` (w is centred, and so is
    # every column of A: M = U M̃ Uᵀ), with L − 1 coordinates per axis.
    basis = jnp.asarray(centred_basis(num_joints), dtype)  # (L, L − 1)
    whitened = jnp.einsum("ktpla,lm->ktpma", whitened, basis)
    size = num_joints - 1
    if symmetric:
      # w = (x, y): wᵀ(I − M)w = xᵀ(I − M_xx)x + yᵀ(I − M_yy)y ∓ 2 yᵀM_yx x for θ / θ + π.
      m = jnp.einsum("ktpia,ktpjb->ktabij", whitened, whitened).reshape(-1, 2, 2, size, size)
      eye = jnp.eye(size, dtype=dtype)
      cost_quadratic = jnp.concatenate([upper(eye - m[:, 1, 1]), upper(eye - m[:, 0, 0])],
                                       axis=1)
      cost_cross = 2.0 * m[:, 1, 0].reshape(m.shape[0], -1)
    else:
      flat_ops = jnp.swapaxes(whitened, -1, -2).reshape((*whitened.shape[:3], 2 * size))
      m = jnp.einsum("ktpi,ktpj->ktij", flat_ops, flat_ops).reshape(-1, *flat_ops.shape[-1:] * 2)
      cost_quadratic = upper(jnp.eye(2 * size, dtype=dtype) - m)
    frame_operator = _frame_operator(blocks, rotation, basis)
  return Prepared(
      blocks=blocks, features=features, gram_ones=gram_ones, tikhonov=tikhonov,
      inv_variances=1.0 / variances, score_offset=score_offset, inv_var=1.0 / obs_var,
      typical_scale=scale_bar, projection=projection, rotation=rotation, yaws=yaws,
      cost_quadratic=cost_quadratic, cost_cross=cost_cross, frame_operator=frame_operator,
      profile_q=profile_q,
      profile_g=profile_g, profile_mean_norm=profile_mean_norm, profile_basis=profile_basis,
      profile_rotation=profile_rotation,
  )


def _frame_operator(blocks, rotation, basis):
  """`Prepared.frame_operator` of blocks (K, L, 3, P), rotation E (3, 3) or
  None, basis U (L, L − 1)."""
  num_components, num_joints, _, num_unknowns = blocks.shape
  e = jnp.eye(3, dtype=blocks.dtype) if rotation is None else rotation
  # A_θᵀw = y⁰ + cos θ y¹ + sin θ y² with u = EᵀΠᵀw, u_q = x e_0q + y e_1q
  # (see `frame_terms`): y⁰ = Σ_l u_l1 B_l1, y¹ = Σ_l (u_l0 B_l0 + u_l2 B_l2),
  # y² = Σ_l (u_l0 B_l2 − u_l2 B_l0); each (K, L, P) against x and y.
  b0, b1, b2 = (blocks[:, :, i] for i in range(3))
  terms = []
  for q0, q2 in ((None, None), (b0, b2), (b2, -b0)):
    per_axis = []
    for a in range(2):  # the coefficients of x_l, then of y_l
      per_axis.append(e[a, 1] * b1 if q0 is None else e[a, 0] * q0 + e[a, 2] * q2)
    terms.append(jnp.stack(per_axis, axis=-1))  # (K, L, P, 2)
  rhs_rows = jnp.transpose(jnp.stack(terms), (0, 3, 1, 2, 4)).reshape(
      3 * num_unknowns * num_components, 2 * num_joints)  # (3, P, K) rows
  zero = jnp.zeros_like(basis.T)
  coordinate_rows = jnp.concatenate([jnp.stack([basis.T, zero], axis=-1),
                                     jnp.stack([zero, basis.T], axis=-1)]).reshape(
      2 * (num_joints - 1), 2 * num_joints)
  identity = jnp.eye(2 * num_joints, dtype=blocks.dtype).reshape(num_joints, 2, 2 * num_joints)
  return jnp.concatenate([rhs_rows, coordinate_rows,
                          jnp.swapaxes(identity, 0, 1).reshape(2 * num_joints, -1)])


def unweighted_terms(prep: Prepared, points):
  """The per-frame terms of unit weights, from one product (`Prepared.frame_operator`).

  Args:
    prep: the `Prepared` terms (unweighted).
    points: (B, L, 2) normalised 2D, centred.

  Returns:
    (rhs, norm2, coords, points_t): right-hand-side terms y (3, P, K, B) as
    `frame_terms` gives them, ||w||² (B,), the centred coordinates (x̃, ỹ)
    (2, L − 1, B) that `search_unweighted` takes, and the points frames
    minor (2, L, B), computed once (XLA fused the points' normalisation into
    each consumer of a transposition, and read it strided).
  """
  batch, num_joints = points.shape[:2]
  num_components, num_unknowns = prep.tikhonov.shape
  out = prep.frame_operator @ points.reshape(batch, 2 * num_joints).T
  split = 3 * num_unknowns * num_components
  rhs = out[:split].reshape(3, num_unknowns, num_components, batch)
  coords = out[split : split + 2 * (num_joints - 1)].reshape(2, num_joints - 1, batch)
  points_t = out[split + 2 * (num_joints - 1) :].reshape(2, num_joints, batch)
  return rhs, jnp.sum(points**2, axis=(-1, -2)), coords, points_t


def frame_terms(prep: Prepared, points, weights):
  """Per-frame terms, term-major with frames minor (the searches' layout).

  Args:
    prep: the `Prepared` terms.
    points: (B, L, 2) normalised 2D, y up (0 at unused joints).
    weights: (B, L) D², or None for all ones.

  Returns:
    (gram, rhs, norm2): Gram terms H (n, U, K, B) with the translation
    eliminated (None if `weights` is None: use `prep.gram_ones`), right-hand
    side terms y (3, P, K, B) and ||Dw||² (B,).
  """
  batch, num_joints = points.shape[:2]
  num_components, num_unknowns = prep.tikhonov.shape
  # (3, P, K, L): the blocks against the joints, so that each product below is
  # (rows, L) × (L, B) and comes out frames-minor, without a transpose.
  blocks = jnp.transpose(prep.blocks, (2, 3, 0, 1))
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
    weights_t = weights.T  # (L, B)
    gram = (prep.features @ weights_t).reshape(-1, num_unknowns * (num_unknowns + 1) // 2,
                                               num_components, batch)
    # Eliminating t: H_pq -= m_p m_qᵀ / V with m = Σ_l D_l² B_l.
    sums = (blocks.reshape(-1, num_joints) @ weights_t).reshape(
        3, num_unknowns, num_components, batch)
    sums = sums * jax.lax.rsqrt(jnp.sum(weights, axis=-1))  # m/√V
    pairs = solves.LEVEL_PAIRS if prep.rotation is None else solves.ALL_PAIRS

    def products(p, q):  # (U, K, B): m_p,i m_q,j for i ≤ j in `upper_pairs` order
      # From contiguous slices: index gathers made this a slow, unvectorised loop.
      return jnp.concatenate(
          [sums[p, i : i + 1] * sums[q, i:] for i in range(num_unknowns)], axis=0)

    correction = []
    for p, q in pairs:
      c = products(p, q)
      if p != q:
        c = c + products(q, p)
      correction.append(c)
    gram = gram - jnp.stack(correction)
  # With N_qp = Σ_l D_l² u_lq B_lp (u = EᵀΠᵀw), A_θᵀD²w = y⁰ + cos θ y¹ + sin θ y²
  # where y⁰ = N_11, y¹ = N_00 + N_22, y² = N_02 − N_20 (from the entries of
  # R_θ); each N_qp is one (K·P, L) × (L, B) product.

  def project(q, p):
    return (blocks[p].reshape(-1, num_joints) @ weighted_u[..., q].T).reshape(
        num_unknowns, num_components, batch)

  y0 = project(1, 1)
  y1 = project(0, 0)
  y2 = project(0, 2)
  if prep.rotation is not None:  # u_z = 0 for a level camera
    y1 = y1 + project(2, 2)
    y2 = y2 - project(2, 0)
  return gram, jnp.stack([y0, y1, y2]), norm2


def search_unweighted(prep: Prepared, points, frames_major: bool = False, coords=None):
  """Linearised costs (K, T, B) of every (component, yaw) for unit weights.

  `r(θ) = wᵀ(I − M_θ)w`: the precomputed coefficients of every I − M_θ
  against the per-frame products of coordinates (upper triangles of y yᵀ and
  x xᵀ, and all of y xᵀ for the pairs θ / θ + π of a level camera).

  Args:
    prep: the `Prepared` terms (with the unweighted coefficients).
    points: (B, L, 2) normalised 2D.
    frames_major: return (B, K, T) (the products computed frames-major, for
      callers that want each frame's grid contiguous, e.g. `grid_scores`)
      instead of (K, T, B) (static).
    coords: (2, L − 1, B) the centred coordinates of `unweighted_terms`, or
      None to compute them here (without `frames_major`).

  Returns:
    (K, T, B) costs, frames minor; (B, K, T) with `frames_major`.
  """
  batch, num_joints = points.shape[:2]
  num_components = prep.tikhonov.shape[0]
  num_yaws = prep.yaws.shape[0]
  # w̃ = Uᵀw (x̃, ỹ: L − 1 each): one product, which also keeps XLA from
  # fusing the normalisation of the points into each product below.
  basis = jnp.asarray(centred_basis(num_joints), points.dtype)  # (L, L − 1)
  size = num_joints - 1
  if frames_major:
    # Products frames-major, (B, F), each frame's coordinates contiguous.
    x, y = points[..., 0] @ basis, points[..., 1] @ basis  # (B, L − 1)
    if prep.cost_cross is not None:
      half = num_yaws // 2
      squares = jnp.concatenate(
          [v[:, i : i + 1] * v[:, i:] for v in (y, x) for i in range(size)], axis=1)
      cross = (y[:, :, None] * x[:, None, :]).reshape(batch, size * size)
      # yaw t = a·T/2 + j for a ∈ {0, 1} (θ, θ + π)
      even = (squares @ prep.cost_quadratic.T).reshape(batch, num_components, 1, half)
      odd = (cross @ prep.cost_cross.T).reshape(batch, num_components, 1, half)
      cost = jnp.concatenate([even - odd, even + odd], axis=2)
      return cost.reshape(batch, num_components, num_yaws)
    flat = jnp.concatenate([x, y], axis=1)
    squares = jnp.concatenate([flat[:, i : i + 1] * flat[:, i:] for i in range(2 * size)],
                              axis=1)
    return (squares @ prep.cost_quadratic.T).reshape(batch, num_components, num_yaws)
  # Frames-minor products, (F, B): each row one contiguous elementwise loop
  # over the frames.
  if coords is None:
    coords = unweighted_terms(prep, points)[2]
  x, y = coords[0], coords[1]  # (L − 1, B)
  if prep.cost_cross is not None:
    half = num_yaws // 2
    squares = jnp.concatenate([v[i : i + 1] * v[i:] for v in (y, x) for i in range(size)],
                              axis=0)
    cross = (y[:, None] * x[None]).reshape(size * size, batch)
    even = (prep.cost_quadratic @ squares).reshape(num_components, 1, half, batch)
    odd = (prep.cost_cross @ cross).reshape(num_components, 1, half, batch)
    cost = jnp.concatenate([even - odd, even + odd], axis=1)  # (K, 2, T/2, B)
    return cost.reshape(num_components, num_yaws, batch)
  flat = jnp.concatenate([x, y], axis=0)
  squares = jnp.concatenate([flat[i : i + 1] * flat[i:] for i in range(2 * size)], axis=0)
  return (prep.cost_quadratic @ squares).reshape(num_components, num_yaws, batch)


def _weighted_factors(prep: Prepared, gram, grid):
  """Cholesky factors of the Gram matrices (with the linearised prior) at the
  yaws `grid` (T_s,), for the per-frame Gram terms `gram` (n, U, K, B).

  Returns (lower, inv_diag) as `solves.cholesky` gives them, on (T_s, K·B)
  arrays.
  """
  num_terms, num_upper, num_components, batch = gram.shape
  num_unknowns = prep.tikhonov.shape[1]
  size = grid.shape[0]
  pairs = solves.LEVEL_PAIRS if prep.rotation is None else solves.ALL_PAIRS
  coefficients = jnp.stack(
      [jnp.broadcast_to(c, (size,)).astype(gram.dtype)
       for c in solves.yaw_coefficients(jnp.cos(grid), jnp.sin(grid), prep.projection, pairs)],
      axis=1)  # (T_s, n)
  width = num_components * batch
  entries = (coefficients @ gram.reshape(num_terms, -1)).reshape(size, num_upper, width)
  ridge = jnp.repeat(prep.tikhonov.T, batch, axis=1)  # (P, K·B)
  entries = {(i, j): entries[:, u] + ridge[i] if i == j else entries[:, u]
             for u, (i, j) in enumerate(solves.upper_pairs(num_unknowns))}
  return solves.cholesky(entries, num_unknowns)


def _level_pairs(prep: Prepared) -> bool:
  """Whether the grid's yaws come in pairs (θ, θ + π) of one Gram matrix."""
  return prep.rotation is None and prep.yaws.shape[0] % 2 == 0


def _pair_parts(prep: Prepared, gram, rhs, norm2):
  """The whitened parts of the pairs (θ_t, θ_t + π), t < T/2, of a level camera.

  Returns (total (K·B,) ||Dw||² per component, z_a, z_b): P arrays (T/2, K·B)
  each, `L⁻¹y⁰` and `L⁻¹(cos θ y¹ + sin θ y²)` for the shared factor L, so
  that the costs of θ and θ + π are `total − |z_a ± z_b|²`.
  """
  num_components, batch = gram.shape[2:]
  num_unknowns = prep.tikhonov.shape[1]
  grid = prep.yaws[: prep.yaws.shape[0] // 2]
  size, width = grid.shape[0], num_components * batch
  lower, inv_diag = _weighted_factors(prep, gram, grid)
  y = rhs.reshape(3, num_unknowns, width)
  c, s = jnp.cos(grid)[:, None], jnp.sin(grid)[:, None]
  za = solves.forward(lower, inv_diag,
                      [jnp.broadcast_to(y[0, i], (size, width)) for i in range(num_unknowns)])
  zb = solves.forward(lower, inv_diag, [c * y[1, i] + s * y[2, i] for i in range(num_unknowns)])
  return jnp.tile(norm2, num_components), za, zb


def _frames_minor(cost, num_components: int, batch: int):
  """(T_s, K·B) -> (K, T_s, B)."""
  return jnp.transpose(cost.reshape(-1, num_components, batch), (1, 0, 2))


def _bits(x):
  """The bits of a float array as the signed integers of its width."""
  return jax.lax.bitcast_convert_type(x, jnp.dtype(f"int{8 * x.dtype.itemsize}"))


def with_opposite_flag(cost, opposite):
  """`cost` with its lowest mantissa bit set to `opposite` (bool, same shape).

  The paired search's one output carries which member of each pair (θ or
  θ + π) is the lower: the bit moves a cost by at most one unit in the last
  place. A second output would be a second consumer of the factorisation,
  which XLA's CPU compiler fuses into each consumer (computing it twice).
  Non-finite costs may turn into NaN (which the callers treat as +inf).
  """
  bits = _bits(cost)
  bits = (bits & ~1) | opposite.astype(bits.dtype)
  return jax.lax.bitcast_convert_type(bits, cost.dtype)


def opposite_flag(cost):
  """The flag of `with_opposite_flag`: True where θ + π is the lower of a pair."""
  return (_bits(cost) & 1) == 1


def search_weighted(prep: Prepared, gram, rhs, norm2, pair: bool = True):
  """Linearised costs of every (component, yaw) with per-frame Gram terms.

  The Gram matrices of all grid yaws are one matrix product, the (T_s, n)
  coefficients against the (n, U·K·B) terms; the factorisation is then
  unrolled over the P unknowns on (T_s, K·B) arrays, frames in the trailing
  axis. For a level camera and an even T the search runs over the T/2 pairs
  (θ, θ + π), which share their Gram matrix, and yields the lower cost of
  each pair: `r = ||Dw||² − |z_a|² − |z_b|² − 2|z_a·z_b|` (`z_a`, `z_b` the
  whitened y⁰ and cos θ y¹ + sin θ y² parts). The exact re-ranking then
  considers the yaw of lower cost in a chosen pair, which the cost's lowest
  bit says (`opposite_flag`: z_a·z_b < 0 for θ + π).

  One output per factorisation matters on CPU: XLA fuses the whole chain
  into each consumer and vectorises the fused loop only while it is small.

  Args:
    prep: the `Prepared` terms.
    gram: (n, U, K, B) per-frame Gram terms.
    rhs: (3, P, K, B) right-hand-side terms.
    norm2: (B,) ||Dw||².
    pair: pair (θ, θ + π) where the camera and T allow it (static); False:
      every yaw's own cost, one factorisation per yaw (`search_weighted_grid`
      gives every yaw's cost with one factorisation per pair).

  Returns:
    (costs, paired): costs (K, T_s, B) with T_s = T/2 if paired else T;
    paired, each cost's lowest bit says which yaw of its pair is the lower
    (`opposite_flag`).
  """
  num_components, batch = gram.shape[2:]
  paired = pair and _level_pairs(prep)
  if paired:
    total, za, zb = _pair_parts(prep, gram, rhs, norm2)
    both = sum(a * a + b * b for a, b in zip(za, zb, strict=True))
    cross = 2.0 * sum(a * b for a, b in zip(za, zb, strict=True))
    cost = with_opposite_flag(total - both - jnp.abs(cross), cross < 0)
  else:
    num_unknowns = prep.tikhonov.shape[1]
    lower, inv_diag = _weighted_factors(prep, gram, prep.yaws)
    y = rhs.reshape(3, num_unknowns, num_components * batch)
    c, s = jnp.cos(prep.yaws)[:, None], jnp.sin(prep.yaws)[:, None]
    z = solves.forward(lower, inv_diag,
                       [y[0, i] + c * y[1, i] + s * y[2, i] for i in range(num_unknowns)])
    cost = jnp.tile(norm2, num_components) - sum(v * v for v in z)
  return _frames_minor(cost, num_components, batch), paired


def search_weighted_grid(prep: Prepared, gram, rhs, norm2):
  """Linearised cost of every grid (component, yaw), one factorisation per pair.

  As `search_weighted(..., pair=False)` (the same costs, up to rounding), but
  for a level camera and an even T each factorisation serves both yaws of its
  pair (θ, θ + π): their costs are `||Dw||² − |z_a ± z_b|²`, so the search
  factorises T/2 Gram matrices instead of T (the weighted `grid_scores`
  1.4-1.8x faster on the 2-core CPU; RESULTS.md).

  The two halves come back as two arrays. A caller that writes them into one
  array must do it outside the loop fusion that computes them: XLA's CPU
  compiler fuses the whole factorisation into each consumer of a half, and a
  concatenation, a stack or two outputs of the chunk made the grid 1.7-3.9x
  slower than one factorisation per yaw (`lift3d.lifting.api._grid_chunk`
  returns them as the real and imaginary parts of one complex array, one
  output).

  Args:
    prep, gram, rhs, norm2: as `search_weighted`.

  Returns:
    (costs, opposite): costs (K, T_s, B) at the yaws θ_0 … θ_{T_s − 1}, and
    for pairs (T_s = T/2) the costs (K, T_s, B) at θ_t + π = θ_{t + T/2};
    without pairs (a camera rotation or an odd T) T_s = T and opposite is None.
  """
  if not _level_pairs(prep):
    return search_weighted(prep, gram, rhs, norm2, pair=False)[0], None
  num_components, batch = gram.shape[2:]
  total, za, zb = _pair_parts(prep, gram, rhs, norm2)
  first, opposite = (
      _frames_minor(total - sum((a + sign * b) * (a + sign * b)
                                for a, b in zip(za, zb, strict=True)), num_components, batch)
      for sign in (1.0, -1.0))
  return first, opposite


def grid_trig(prep: Prepared, index):
  """(cos θ_t, sin θ_t) of grid yaws by their index t (...), from (T,) tables.

  Callers pass these (`trig`) where cos θ would feed many consumers: XLA
  fuses an elementwise cos θ into each consumer's loop and computes it once
  per consumer and element (the U Gram entries of `gram_at`, the J terms of
  the profile, the pose's L joints).
  """
  return jnp.cos(prep.yaws)[index], jnp.sin(prep.yaws)[index]


def gram_at(prep: Prepared, gram, yaw, trig=None) -> dict:
  """The Gram matrix `A_θᵀD²A_θ` (no prior) at given yaws, as {(i, j): array}.

  Args:
    prep: the `Prepared` terms.
    gram: (n, U, ...) Gram terms broadcasting against `yaw`.
    yaw: (...) yaws, radians.
    trig: (cos θ, sin θ), or None to compute them here (`grid_trig` for
      grid yaws).

  Returns:
    {(i, j): (...) array} for i ≤ j < P.
  """
  pairs = solves.LEVEL_PAIRS if prep.rotation is None else solves.ALL_PAIRS
  cos, sin = (jnp.cos(yaw), jnp.sin(yaw)) if trig is None else trig
  coefficients = solves.yaw_coefficients(cos, sin, prep.projection, pairs)
  entries = {}
  for u, key in enumerate(solves.upper_pairs(prep.blocks.shape[-1])):
    entries[key] = sum(c * gram[n, u] for n, c in enumerate(coefficients))
  return entries


def coeffs_at(prep: Prepared, gram, rhs, yaw, scale, inv_variances, trig=None):
  """a at a given (θ, s): the ridge regression of the exact objective, per frame.

  `a = (s² EᵀAᵀD²AE/σ² + Λ⁻¹)⁻¹ s (EᵀAᵀD²w − s EᵀAᵀD²Aμ)/σ²` (docs/method.md
  §4.3): the a of `solves.profile`'s evaluation, as one dense rolled solve per
  frame (`solves.solve_dense`) for the paths that need only a, since the
  unrolled profile costs seconds of compiling for a step paid once per frame.

  Args:
    prep: the `Prepared` terms.
    gram: (n, U, B) Gram terms; rhs (3, P, B) right-hand-side terms.
    yaw, scale: (B,) the yaw (radians) and scale s > 0.
    inv_variances: (B, J) 1/λ_j of each frame's component.
    trig: (cos θ, sin θ) as `gram_at` takes them, or None.

  Returns:
    (B, J) coefficients.
  """
  entries = gram_at(prep, gram, yaw, trig)  # {(i, j): (B,)}, frames minor throughout
  size = prep.blocks.shape[-1]
  dense = jnp.stack([jnp.stack([entries[min(i, j), max(i, j)] for j in range(1, size)])
                     for i in range(1, size)]) * prep.inv_var  # (J, J, B) EᵀAᵀD²AE/σ²
  mean_cross = jnp.stack([entries[0, j] for j in range(1, size)]) * prep.inv_var  # (J, B)
  right = jnp.stack(rhs_at(rhs, yaw, trig)[1:]) * prep.inv_var  # (J, B) EᵀAᵀD²w/σ²
  hessian = scale**2 * dense + inv_variances.T[:, None] * jnp.eye(size - 1, dtype=dense.dtype)[
      ..., None]
  return solves.solve_dense(hessian, scale * (right - scale * mean_cross)).T


def rhs_at(rhs, yaw, trig=None) -> list:
  """`A_θᵀD²w = y⁰ + cos θ y¹ + sin θ y²` at given yaws: P arrays (...).

  Args:
    rhs: (3, P, ...) right-hand-side terms broadcasting against `yaw`.
    yaw: (...) yaws, radians.
    trig: (cos θ, sin θ) as `gram_at` takes them, or None.
  """
  cos, sin = (jnp.cos(yaw), jnp.sin(yaw)) if trig is None else trig
  return [rhs[0, i] + cos * rhs[1, i] + sin * rhs[2, i] for i in range(rhs.shape[1])]


def linearised_solve(prep: Prepared, gram, rhs, norm2, tikhonov, yaw):
  """The linearised problem at given yaws: cost (...) and c = (s, s·a) (P, ...).

  Used by the tests (against NumPy least squares) and by nothing that
  returns an answer: the answer comes from the exact objective.

  Args:
    prep: the `Prepared` terms.
    gram: (n, U, ...) Gram terms; rhs (3, P, ...); norm2 and tikhonov (P, ...)
      broadcasting against `yaw` (...).
  """
  entries = gram_at(prep, gram, yaw)
  num_unknowns = rhs.shape[1]
  for i in range(num_unknowns):
    entries[i, i] = entries[i, i] + tikhonov[i]
  lower, inv_diag = solves.cholesky(entries, num_unknowns)
  z = solves.forward(lower, inv_diag, rhs_at(rhs, yaw))
  cost = norm2 - sum(v * v for v in z)
  return cost, jnp.stack(solves.backward(lower, inv_diag, z))


def profile_unweighted(prep: Prepared, rhs, norm2, index, iterations: int):
  """The exact objective at grid points (k, θ) for unit weights, O(J) per evaluation.

  Without weights, `H(s) = s²G + Λ⁻¹` (G = EᵀA_θᵀA_θE/σ²) diagonalises in the
  precomputed eigenbasis of `Λ^½GΛ^½ = V diag(g) Vᵀ`: with `u = μᵀA_θᵀw/σ²` and
  `p = VᵀΛ^½EᵀA_θᵀw/σ²` (from the right-hand-side terms of `frame_terms`),
  `F(s) = ||w||²/σ² − 2su + s²|A_θμ|²/σ² − Σ_i s²(p_i − s q_i)²/(1 + s² g_i)`.
  Newton steps on t = log s as in `solves.exact_profile`, with the
  derivatives of this closed form (`solves.explained_terms`). Candidates and frames
  are the trailing axes (frames minor), which LLVM vectorises.

  Measured CPU choices (RESULTS.md, sessions 16 and 20): cos θ and sin θ come
  from tables by the grid index (XLA recomputed the transcendental functions
  in each of the J fused consumers of `A_θᵀw`), and every table entry is its
  own elementwise gather from a row of the `Prepared` tables, frames minor,
  with p as unrolled sums (a batched XLA product of gathered (J, J) blocks
  ran unvectorised). The index must come materialised (`lift` takes it from
  reductions): XLA fuses the index's producer into each of these gathers.

  Args:
    prep: the `Prepared` terms (unweighted).
    rhs: (3, P, K, B) right-hand-side terms of `frame_terms`.
    norm2: (B,) ||w||².
    index: (K, C, B) int flat grid indices k·T + t.
    iterations: Newton iterations (static).

  Returns:
    (cost, scale, beta): F (K, C, B), s (K, C, B) and the eigen-coordinates of
    the coefficients, β (J, K, C, B) (a = Λ^½V β, see `profile_coeffs`).
  """
  num_basis = prep.profile_q.shape[0]
  yaw_index = index % prep.yaws.shape[0]
  cos, sin = grid_trig(prep, yaw_index)
  rhs = rhs[:, :, :, None]
  right = [rhs[0, i] + cos * rhs[1, i] + sin * rhs[2, i] for i in range(rhs.shape[1])]
  # Lists of (K, C, B) arrays, one per eigen-direction: every sum over them
  # below is unrolled, so each evaluation is one elementwise loop over the
  # candidates and frames (an axis reduction became a separate, slow kernel).
  projections = [sum(prep.profile_rotation[i * num_basis + j][index] * right[1 + j]
                     for j in range(num_basis)) for i in range(num_basis)]
  mean_data = right[0] * prep.inv_var
  q = [row[index] for row in prep.profile_q]
  g = [row[index] for row in prep.profile_g]
  mean_norm = prep.profile_mean_norm[index]
  data_norm = norm2 * prep.inv_var

  def evaluate(t):
    """F, dF/dt, d²F/dt² at s = exp(t), derivatives in closed form."""
    s = jnp.exp(t)
    explained, d_explained, d2_explained = solves.explained_terms(s, projections, q, g)
    value = data_norm - 2 * s * mean_data + s * s * mean_norm - explained
    slope = -2 * mean_data + 2 * s * mean_norm - d_explained  # dF/ds
    curvature = 2 * mean_norm - d2_explained  # d²F/ds²
    # In t = log s: F_t = s F_s, F_tt = s² F_ss + s F_s.
    return (jnp.where(jnp.isfinite(value), value, jnp.inf), s * slope,
            s * s * curvature + s * slope)

  start = 0.5 * jnp.log(jnp.maximum(data_norm, 1e-30) / jnp.maximum(mean_norm, 1e-30))
  best, best_value = solves.safeguarded_newton(evaluate, start, iterations)
  s = jnp.exp(best)
  beta = jnp.stack([s * (pi - s * qi) / (1.0 + s * s * gi)
                    for pi, qi, gi in zip(projections, q, g, strict=True)])
  return best_value, s, beta


def profile_coeffs(prep: Prepared, index, beta):
  """a = Λ^½ V β at grid points: index (B,), beta (B, J) -> (B, J) coefficients."""
  num_basis = beta.shape[1]
  return jnp.stack([sum(prep.profile_basis[i * num_basis + j][index] * beta[:, j]
                        for j in range(num_basis)) for i in range(num_basis)], axis=1)
