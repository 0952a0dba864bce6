"""`lift`: the public entry point of the lifting, its checks, chunking and answer.

Per chunk of frames (`_lift_chunk`): normalise the 2D; run the fast grid
search of the linearised problem (`search`) for every (component, yaw);
take the best few local minima over yaw per component as candidates, for the
`components` components of lowest linearised score; solve the exact
objective over s > 0 and a at each (`solves.exact_profile`);
optionally refine the yaw of each component's best candidate on the exact
objective; choose the (component, yaw) of lowest negative log posterior;
build the pose (by default blended towards the observed 2D in the image
plane), its size in millimetres and its plausibility.

Shape letters are those of `lift3d.lifting` (its package docstring).
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from lift3d import _compile, camera
from lift3d._precision import float32_matmuls
from lift3d.lifting import search, solves
from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import H36M17, Skeleton

# Default frames per chunk, (unweighted, weighted): on CPU chosen with
# experiments/benchmarks/lift_speed.py so the working set stays in cache; on
# accelerators large enough to fill the device (see RESULTS.md). Weighted, at
# most this many, fewer for bigger models (`_cpu_weighted_chunk`).
_CPU_CHUNKS = (2048, 512)
# Unweighted, in one thread per core (`_lift_in_groups`): smaller chunks
# (against 2,048, K = 3, J = 10, T = 100, 2-core CPU, interleaved medians,
# RESULTS.md session 20): 1.03-1.09x for 16,384 frames (K = 9, J = 14:
# 1.09-1.10x), 1.10x for 4,096, but 0.85x for 1,024 in two groups (so groups
# still hold at least 2,048 frames, `_GROUP_CHUNKS`); in one program 512 was
# 0.90x of 2,048. At most this many, fewer where the search's products and
# costs would overflow the core's L2 cache (`_cpu_unweighted_threaded_chunk`).
_CPU_UNWEIGHTED_THREADED_CHUNK = 512
# L2 bytes a core is assumed to have where the OS does not say (Linux sysfs).
_DEFAULT_L2_BYTES = 1 << 20
# The weighted search writes the Gram entries of every (pair of) grid yaws,
# (⌈T/2⌉, U, K, B) floats with U = P(P + 1)/2 (T instead of ⌈T/2⌉ with a
# camera rotation), before factorising them: a chunk keeps that under a
# budget of floats, or is 64 frames. The best budget depends on whether the
# chunks run in one program or in one thread per core (`_lift_in_groups`).
# Measured on the 2-core CPU (RESULTS.md, session 19), K = 3, J = 10, T = 100:
# one program fastest at 512 frames (5.1M floats; 128 0.86x), one thread per
# core at 128-256 (1.10x against 512); K = 9, J = 14 at 64 frames either way
# (3.5M; against 128, 1.09x in one program and 1.36x in threads); K = 1
# stays at 512 (1.7M).
_CPU_WEIGHTED_ENTRIES = 3 << 21  # one program (6.3M floats, 25 MB)
_CPU_WEIGHTED_ENTRIES_THREADED = 1 << 21  # one thread per core (2.1M, 8 MB)
# The weighted grid search alone (`grid_scores`) is fastest in chunks of 128.
_CPU_GRID_CHUNKS = (2048, 128)
_CPU_REFINE_CHUNK = 64
_ACCELERATOR_CHUNKS = (65536, 16384)

# Candidates per component re-ranked by the exact objective: the best local
# minima over yaw of the linearised cost; for a level camera and an even T
# each is a pair (θ, θ + π), of which the yaw of lower linearised cost is
# solved exactly (both with `opposite_yaws`). Chosen by measurement
# (RESULTS.md, "exact re-ranking").
DEFAULT_CANDIDATES = 1
# M of `components`: the components of lowest linearised score whose candidates
# are re-ranked exactly. On held-out real clips (K = 9) the full re-ranking chose
# a component outside the linearised best 4 in 0.11% / 0% of frames (weighted,
# validation / test) and 0% unweighted; `lift` 1.69x / 1.25x faster (RESULTS.md).
DEFAULT_COMPONENTS = 4
# Whether both yaws θ and θ + π of a level camera's candidate pair are re-ranked
# exactly (they share a Gram matrix, so the search ranks pairs). False: only the
# one of lower linearised cost. On held-out real clips (K = 9) that changed 0 of
# 1,414 unweighted answers and 0.09% / 0.24% of weighted ones (validation /
# test videos; test MPJPE 84.5 mm either way, `sequence_eval`) and halves the
# exact work (RESULTS.md, session 16).
DEFAULT_OPPOSITE_YAWS = False
# α of reconstruction="blend", the default reconstruction: chosen on held-out
# validation clips of real people against "model" and α in 0, 0.1, ..., 1
# (experiments/benchmarks/lift_quality.py section 3; RESULTS.md, issue 11).
DEFAULT_BLEND_WEIGHT = 0.8
# Newton iterations on log s of the exact profile (from s of the projected mean).
_PROFILE_ITERATIONS = 8

# Plausibility (docs/method.md §4.5). A pose's size is the limb-length norm of
# μ_k + E_k a in model units, where every training pose has norm 1.
MAX_SIZE_ERROR = 0.25
# Reprojection residual: weighted RMS over the visible joints, as a fraction of
# the 2D pose's RMS radius.
MAX_RESIDUAL = 0.35
# Mahalanobis norm sqrt(Σ a²/λ) of the coefficients: the 99.99% quantile of a
# χ distribution with J degrees of freedom (Wilson–Hilferty), see
# `max_mahalanobis`.
_MAHALANOBIS_Z = 3.72


def max_mahalanobis(num_basis: int) -> float:
  """The default largest plausible `sqrt(Σ_j a_j²/λ_j)` for J basis vectors.

  The 99.99% quantile of the χ distribution with J degrees of freedom (the
  norm of a standard normal J-vector), by the Wilson–Hilferty approximation.

  Args:
    num_basis: J.

  Returns:
    The threshold (dimensionless).
  """
  j = float(num_basis)
  cube = 1.0 - 2.0 / (9.0 * j) + _MAHALANOBIS_Z * math.sqrt(2.0 / (9.0 * j))
  return math.sqrt(j * cube**3)


@flax.struct.dataclass
class LiftResult:
  """The lifted poses (a pytree; every field has the input's batch shape `...`).

  `valid` is the one flag to filter on: the frame was lifted *and* its answer
  is plausible. Frames that could not be lifted at all (too few visible
  joints, non-finite or coincident joints) hold NaN and component -1;
  frames that were lifted but are implausible keep their numbers (so they
  can be inspected) with `valid` False.

  Attributes:
    pose3d: (..., L, 3) millimetres, x right, y up, z towards the viewer, in the
      camera's frame (rotated by the camera rotation E if one was given), root
      joint at 0. Its size is the model's: the pose is scaled so that its
      limb-length norm `sqrt(Σ_limbs ||X_i − X_j||²)` equals the training
      poses' mean (`model.limb_scale`), since one view cannot tell a big
      person far away from a small one nearby. With `reconstruction="blend"`
      (the default) the visible joints are then moved in the image plane and
      the pose is scaled back to that limb norm. `lift3d.lift_sequence` then
      puts each video's poses on one skeleton (`fixed_bones`: every bone at
      its mean length over the video, so each frame's limb norm is close to,
      not exactly, the training mean: 0.991–0.999 of it on the held-out test
      videos).
    yaw: (...) radians in [0, 2π), θ of docs/method.md §4.
    scale: (...) weak-perspective scale s > 0, input pixels per millimetre of
      the model pose (so `reprojected ≈ scale · flip(pose3d[..., :2]) + offset`
      with `reconstruction="model"`).
    coeffs: (..., J) basis coefficients `a` of the chosen component, model
      (normalised) units.
    component: (...) int32 index of the chosen mixture component (-1 where the
      frame could not be lifted).
    cost: (...) the exact objective `||D(w − s A_θ(μ + E a))||²/σ_obs² + Σ a²/λ`
      at the answer (normalised 2D units, dimensionless).
    reprojected: (..., L, 2) the projected model pose in the input's pixel
      frame (x right, y down).
    size: (...) limb-length norm of `μ_k + E_k a` in model units; training
      poses have 1. Far from 1 means the shape is not a human's.
    mahalanobis: (...) `sqrt(Σ_j a_j²/λ_kj)`, how far the coefficients lie in
      the chosen component's distribution (dimensionless).
    residual: (...) weighted RMS reprojection error over the visible joints, as
      a fraction of the 2D pose's RMS radius.
    plausible: (...) bool, `|size − 1| ≤ max_size_error`, `mahalanobis` and
      `residual` within their limits.
    valid: (...) bool, lifted and plausible.
  """

  pose3d: jax.Array
  yaw: jax.Array
  scale: jax.Array
  coeffs: jax.Array
  component: jax.Array
  cost: jax.Array
  reprojected: jax.Array
  size: jax.Array
  mahalanobis: jax.Array
  residual: jax.Array
  plausible: jax.Array
  valid: jax.Array


class _Options(flax.struct.PyTreeNode):
  """Static options of one lift (hashable: they key the jit cache)."""

  num_yaws: int = flax.struct.field(pytree_node=False)
  candidates: int = flax.struct.field(pytree_node=False)
  opposite_yaws: bool = flax.struct.field(pytree_node=False)
  components: int = flax.struct.field(pytree_node=False)
  refine: bool = flax.struct.field(pytree_node=False)
  refine_steps: int = flax.struct.field(pytree_node=False)
  differentiable: bool = flax.struct.field(pytree_node=False)
  min_visible: int = flax.struct.field(pytree_node=False)
  chunk_size: int = flax.struct.field(pytree_node=False)
  root: int = flax.struct.field(pytree_node=False)
  limbs: tuple = flax.struct.field(pytree_node=False)
  blend: bool = flax.struct.field(pytree_node=False)


class _Limits(flax.struct.PyTreeNode):
  """Traced numbers of one lift."""

  obs_noise: jax.Array  # () σ_obs
  prior_weight: jax.Array  # () β
  blend_weight: jax.Array  # () α
  max_size_error: jax.Array
  max_mahalanobis: jax.Array
  max_residual: jax.Array


def _cpu_weighted_chunk(num_components: int, num_unknowns: int, num_yaws: int,
                        level: bool, threaded: bool) -> int:
  """Default CPU chunk of a weighted lift: the largest power of two ≤ 512 whose
  grid entries stay within `_CPU_WEIGHTED_ENTRIES` (one program) or
  `_CPU_WEIGHTED_ENTRIES_THREADED` (`threaded`: one program per core at
  once), at least 64. A level camera factorises one Gram matrix per pair
  (θ, θ + π), a tilted one per yaw."""
  factorised = -(-num_yaws // 2) if level else num_yaws
  entries = factorised * num_unknowns * (num_unknowns + 1) // 2 * num_components
  budget = _CPU_WEIGHTED_ENTRIES_THREADED if threaded else _CPU_WEIGHTED_ENTRIES
  size = _CPU_CHUNKS[1]
  while size > 64 and size * entries > budget:
    size //= 2
  return size


@functools.cache
def _l2_cache_bytes(root: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
  """Bytes of the first CPU's level-2 cache (Linux sysfs `root`), else `_DEFAULT_L2_BYTES`."""
  units = {"K": 1 << 10, "M": 1 << 20}
  try:
    entries = sorted(os.listdir(root))
  except OSError:
    return _DEFAULT_L2_BYTES
  for entry in entries:  # index0, index1, ...; other entries (e.g. a uevent file) are skipped
    try:
      with open(os.path.join(root, entry, "level")) as f:
        if f.read().strip() != "2":
          continue
      with open(os.path.join(root, entry, "size")) as f:
        text = f.read().strip().upper()
      return int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)
    except (OSError, ValueError):
      continue
  return _DEFAULT_L2_BYTES


def _cpu_unweighted_threaded_chunk(num_components: int, num_joints: int, num_yaws: int) -> int:
  """Default CPU chunk of an unweighted lift in one thread per core: the
  largest power of two ≤ `_CPU_UNWEIGHTED_THREADED_CHUNK` whose search
  products ((L − 1)(2L − 1) a frame) and costs (K·T) fit the core's L2 cache
  (`_l2_cache_bytes`), at least 64.

  Measured on the 2-core AMD EPYC (1 MiB L2; RESULTS.md, session 21): K = 3,
  T = 100 fastest at 256 (1.02-1.03x of 512), K = 9 at 128 (1.12x of 512,
  1.06x of 256); session 20's Intel Xeon ran K = 3 fastest at 512.
  """
  per_frame = 4 * ((num_joints - 1) * (2 * num_joints - 1) + num_components * num_yaws)
  size = _CPU_UNWEIGHTED_THREADED_CHUNK
  while size > 64 and size * per_frame > _l2_cache_bytes():
    size //= 2
  return size


def _dummy_pose(num_joints: int, dtype):
  angles = jnp.arange(num_joints, dtype=dtype) * (2 * math.pi / num_joints)
  return jnp.stack([jnp.cos(angles), jnp.sin(angles) + 0.1 * angles], axis=-1)


def _limb_norm(pose, limbs):
  """(B,) limb-length norms sqrt(Σ |X_parent − X_child|²) of poses (B, L, 3)."""
  num_joints = pose.shape[1]
  incidence = np.zeros((num_joints, 3, len(limbs), 3), np.float32)
  for m, (parent, child) in enumerate(limbs):
    incidence[parent, :, m] += np.eye(3, dtype=np.float32)
    incidence[child, :, m] -= np.eye(3, dtype=np.float32)
  vectors = pose.reshape(pose.shape[0], -1) @ jnp.asarray(
      incidence.reshape(num_joints * 3, -1), pose.dtype)
  return jnp.sqrt(jnp.sum(vectors * vectors, axis=-1))


def _row_sum(x):
  """Σ_i x[i] over the leading axis, unrolled: one elementwise loop over the
  trailing (frames) axis (XLA's CPU reduction over a leading axis ran
  unvectorised, one output element at a time)."""
  return functools.reduce(jnp.add, [x[i] for i in range(x.shape[0])])


def _limb_rows(rows, limbs):
  """(limbs·3, ...) limb vectors X_parent − X_child of (3, L, ...) (axis, joint) rows.

  The rows of each axis in turn, limbs in order: contiguous row differences,
  each an elementwise loop over the trailing (frames) axis.
  """
  return jnp.stack([rows[a, parent] - rows[a, child] for a in range(3)
                    for parent, child in limbs])


def _argmin_yaw(costs):
  """(min, first argmin) over axis 1 of (K, T_s, B) costs (no NaN).

  Two plain reductions over T_s, the minimum, then the first index that
  attains it: XLA's CPU argmin (a variadic reduction) took ten times as long,
  and an elementwise chain of selects over T_s (before session 20) was
  fused into, and recomputed by, every gather that takes the index (a
  reduction's output is computed once).
  """
  lowest = jnp.min(costs, axis=1)
  iota = jnp.arange(costs.shape[1], dtype=jnp.int32)[None, :, None]
  index = jnp.min(jnp.where(costs == lowest[:, None], iota, costs.shape[1] - 1), axis=1)
  return lowest, index


def _candidate_yaws(costs, count: int, paired: bool, num_yaws: int):
  """Yaw indices (K, C, B) of the best local minima over yaw of the costs (K, T_s, B).

  The first candidate is the global minimum; the others are the next-best
  strict local minima on the circle of yaws. A pair index of the paired
  search gives both of its yaws (t and t + T/2).
  """
  size = costs.shape[1]
  index = jnp.arange(size, dtype=jnp.int32)[None, :, None]
  if size >= 3:
    local = (costs <= jnp.roll(costs, 1, axis=1)) & (costs < jnp.roll(costs, -1, axis=1))
    masked = jnp.where(local, costs, jnp.inf)
  else:
    masked = costs
  chosen = [_argmin_yaw(costs)[1]]
  for _ in range(1, min(count, size)):
    masked = jnp.where(index == chosen[-1][:, None], jnp.inf, masked)
    lowest, nxt = _argmin_yaw(masked)
    # Where no local minimum is left, repeat the best (a harmless duplicate).
    chosen.append(jnp.where(jnp.isfinite(lowest), nxt, chosen[0]))
  chosen = jnp.stack(chosen, axis=1)  # (K, C, B)
  if paired:
    chosen = jnp.concatenate([chosen, chosen + num_yaws // 2], axis=1)
  return chosen


def _search_candidates(prep, points, gram, rhs, norm2, unweighted: bool, options,
                       coords=None):
  """Step 1 of `_lift_chunk`: the linearised search and its candidate yaws.

  Returns (costs (K, T_s, B), +inf where not finite; for a level camera and
  an even T the pairs' lower costs, T_s = T/2; unweighted with one candidate
  only the lowest, T_s = 1) and candidates (K, C, B) int
  yaw indices (of a pair's member of lower cost, or of both members with
  `options.opposite_yaws`).
  """
  level = prep.rotation is None and options.num_yaws % 2 == 0
  if unweighted and options.candidates == 1 and not (level and options.opposite_yaws):
    # One candidate per component: the yaw of lowest cost (for a level camera,
    # the pair (θ, θ + π) of lowest cost and its member of lower cost), as
    # reductions, whose outputs XLA computes once (`_argmin_yaw`): the pair
    # logic below went into every gather that takes the candidates.
    costs = search.search_unweighted(prep, points, coords=coords)
    lowest, index = _argmin_yaw(jnp.where(jnp.isfinite(costs), costs, jnp.inf))
    return lowest[:, None], jax.lax.stop_gradient(index[:, None])
  if unweighted:
    costs, paired = search.search_unweighted(prep, points, coords=coords), False
  else:
    costs, paired = search.search_weighted(prep, gram, rhs, norm2)
  # Frames stay the minor axis until here: reductions over T then vectorise.
  costs = jax.lax.optimization_barrier(costs)
  costs = jnp.where(jnp.isfinite(costs), costs, jnp.inf)  # (K, T_s, B)
  full = None
  if not paired and prep.rotation is None and options.num_yaws % 2 == 0:
    # Level camera: rank pairs (θ, θ + π) as the weighted search does (θ + π is
    # the view from behind, which the linearised problem may only reach with
    # s < 0).
    half = options.num_yaws // 2
    full, costs, paired = costs, jnp.minimum(costs[:, :half], costs[:, half:]), True
  both = paired and options.opposite_yaws
  candidates = _candidate_yaws(costs, options.candidates, both, options.num_yaws)
  if paired and not both:
    # The pair's member of lower linearised cost (θ on a tie).
    if full is not None:
      opposite = (jnp.take_along_axis(full[:, half:], candidates, axis=1)
                  < jnp.take_along_axis(full[:, :half], candidates, axis=1))
    else:  # the weighted search's flag bit
      # (read after the select above, which computes the search: its one consumer)
      opposite = search.opposite_flag(jnp.take_along_axis(costs, candidates, axis=1))
    candidates = candidates + jnp.where(opposite, options.num_yaws // 2, 0)
  return costs, jax.lax.stop_gradient(candidates)  # (K, C, B)


def _shortlist(scores, count: int):
  """(count, B) int32: the components of the `count` lowest scores (K, B), lowest first.

  Unrolled over the K components and the count (a running minimum of the
  components not yet taken, then the first of them attaining it), each an
  elementwise loop over the frames, as `_argmin_yaw`. NaN counts as +inf;
  ties go to the lower index, so the `count` components are distinct.
  """
  num_components = scores.shape[0]
  scores = jnp.where(jnp.isnan(scores), jnp.inf, scores)
  taken = [jnp.zeros(scores.shape[1:], bool) for _ in range(num_components)]
  chosen = []
  for _ in range(count):
    lowest = jnp.full(scores.shape[1:], jnp.inf, scores.dtype)
    for k in range(num_components):
      lowest = jnp.where(taken[k], lowest, jnp.minimum(lowest, scores[k]))
    best = jnp.full(scores.shape[1:], -1, jnp.int32)
    for k in reversed(range(num_components)):
      best = jnp.where(~taken[k] & (scores[k] == lowest), k, best)
    chosen.append(best)
    taken = [t | (best == k) for k, t in enumerate(taken)]
  return jnp.stack(chosen)


def _exact_at(prep, gram, rhs, norm2, yaw, inv_variances, start_scale, iterations,
              coeffs=False, trig=None):
  """Exact objective (cost, s, a list or None) at yaws broadcasting like `gram` entries
  (`trig`: their (cos, sin), see `search.gram_at`)."""
  entries = search.gram_at(prep, gram, yaw, trig)
  rhs_list = search.rhs_at(rhs, yaw, trig)
  if start_scale is None:
    # s at which the projected mean matches the 2D pose's size: sqrt(||Dw||²/||DAμ||²).
    start_scale = jnp.sqrt(norm2 / jnp.maximum(entries[0, 0], 1e-30))
    start_scale = jnp.where(jnp.isfinite(start_scale) & (start_scale > 0), start_scale,
                            prep.typical_scale)
  return solves.exact_profile(entries, rhs_list, norm2, prep.inv_var, inv_variances,
                              start_scale, iterations=iterations, coeffs=coeffs)


def _refine(prep, yaw, scale, gram, rhs, norm2, inv_variances, steps: int):
  """Levenberg–Marquardt on θ of the exact objective, per (component, frame).

  The exact profile over (s, a) is solved for every trial θ (warm-started
  from the best s so far), so the search is one-dimensional. Each step
  evaluates the trial yaw and ±h around it in one stacked evaluation; a
  trial is kept only if its cost is lower than the best so far (so the cost
  never increases), and the next trial is a damped Newton step from the
  finite-difference slope and curvature, or a step back towards the best.

  Args: yaw, scale (K, B) the starting point; gram (n, U, K, B) or (n, U, K, 1);
  rhs (3, P, K, B); norm2 (B,); inv_variances J × (K, 1).
  Returns: (yaw, cost) (K, B).
  """
  spacing = 2 * math.pi / prep.yaws.shape[0]
  h = min(0.01, spacing / 4)
  offsets = jnp.asarray([-h, 0.0, h], yaw.dtype)[:, None, None]

  def evaluate(trial, start):  # exact costs at trial − h, trial, trial + h: (3, K, B)
    cost, _, _ = _exact_at(prep, gram[:, :, None], rhs[:, :, None], norm2,
                           trial[None] + offsets, [v[None] for v in inv_variances],
                           start[None], 4)
    return jnp.where(jnp.isfinite(cost), cost, jnp.inf)

  def update(best, best_cost, trial, damping, f):
    better = f[1] < best_cost
    best = jnp.where(better, trial, best)
    best_cost = jnp.where(better, f[1], best_cost)
    slope = (f[2] - f[0]) / (2 * h)
    curvature = (f[2] - 2 * f[1] + f[0]) / (h * h)
    step = -slope / (jnp.abs(curvature) * (1.0 + damping) + 1e-12)
    step = jnp.clip(jnp.where(jnp.isfinite(step), step, 0.0), -spacing, spacing)
    trial = jnp.where(better, trial + step, best + 0.3 * (trial - best))
    damping = jnp.where(better, damping * 0.1, damping * 10.0)
    return best, best_cost, trial, damping

  def body(_, state):
    # The costs of a trial reach the next iteration through the loop state, so
    # the solver's output has one consumer (fused into several, XLA computed
    # the whole factorisation once per consumer).
    *state, f = state
    state = update(*state, f)
    return (*state, evaluate(state[2], scale))

  state = (yaw, jnp.full_like(yaw, jnp.inf), yaw, jnp.full_like(yaw, 1e-3), evaluate(yaw, scale))
  *state, f = jax.lax.fori_loop(0, steps, body, state)
  best, best_cost, _, _ = update(*state, f)
  return best, best_cost


def _clean_points(keypoints, visibility, min_visible: int, differentiable: bool = True):
  """The 2D preprocessing of a chunk (B, L, 2): weights, liftable frames, normalised points.

  Returns (joint_weights (B, L) D² or None, used (B, L), liftable (B,), norm
  (the `camera.Normalized2D` of the cleaned keypoints), points (B, L, 2)).
  Without `differentiable` (no gradient is taken) the keypoints are
  normalised once.
  """
  num_joints = keypoints.shape[1]
  dtype = keypoints.dtype
  if visibility is None:
    joint_weights = None
    used = jnp.ones(keypoints.shape[:2], bool)
  else:
    visibility = jnp.where(jnp.isfinite(visibility), jnp.clip(visibility, 0.0, 1.0), 0.0)
    joint_weights = visibility * visibility  # D² (docs/method.md §4, D = diag(visibility)).
    used = joint_weights > 0
  finite = jnp.all(jnp.isfinite(keypoints), axis=-1)
  count = jnp.sum(used, axis=-1)
  clean = jnp.where(used[..., None] & finite[..., None], keypoints, 0.0)
  liftable = jnp.all(finite | ~used, axis=-1) & (count >= min_visible)
  size_probe = camera.normalize_keypoints(jax.lax.stop_gradient(clean), joint_weights)
  # Coincident joints: a size at the level of float rounding of the coordinates.
  extent = jnp.max(jnp.abs(jnp.where(used[..., None], jax.lax.stop_gradient(clean), 0.0)),
                   axis=(-1, -2))
  liftable = liftable & jnp.isfinite(size_probe.size) & (size_probe.size > 1e-5 * extent)
  # Frames that cannot be lifted get a harmless stand-in (all joints, unit
  # weights); their outputs are masked at the end.
  used = used | ~liftable[:, None]
  if joint_weights is not None:
    joint_weights = jnp.where(liftable[:, None], joint_weights, 1.0)
  if differentiable:
    # Normalised again after the stand-in replaced those frames' keypoints, so
    # that nothing (not even a gradient) turns NaN.
    clean = jnp.where(liftable[:, None, None], clean, _dummy_pose(num_joints, dtype))
    norm = camera.normalize_keypoints(clean, joint_weights)
  else:
    # The probe's normalisation is the answer where liftable, and the
    # stand-in's a constant: a select, not a second pass.
    dummy = camera.normalize_keypoints(_dummy_pose(num_joints, dtype))
    norm = camera.Normalized2D(
        jnp.where(liftable[:, None, None], size_probe.points, dummy.points),
        jnp.where(liftable[:, None], size_probe.centre, dummy.centre),
        jnp.where(liftable, size_probe.size, dummy.size))
  points = jnp.where(used[..., None], norm.points, 0.0)
  return joint_weights, used, liftable, norm, points


def _lift_chunk(prep: search.Prepared, model: PoseModel, keypoints, visibility,
                limits: _Limits, options: _Options):
  """Lifts (B, L, 2) pixel keypoints; returns the LiftResult for the chunk."""
  batch, num_joints = keypoints.shape[:2]
  dtype = keypoints.dtype
  joint_weights, used, liftable, norm, points = _clean_points(
      keypoints, visibility, options.min_visible, options.differentiable)

  # 1. The fast search of the linearised problem: candidates.
  coords = points_t = None
  if joint_weights is None:
    gram = None
    rhs, norm2, coords, points_t = search.unweighted_terms(prep, points)
  else:
    gram, rhs, norm2 = search.frame_terms(prep, points, joint_weights)
  costs, candidates = _search_candidates(prep, points, gram, rhs, norm2, joint_weights is None,
                                         options, coords)

  # 2. The exact objective at every candidate of the shortlisted components.
  frame_gram = prep.gram_ones[..., None] if gram is None else gram  # (n, U, K, B or 1)
  num_components = prep.tikhonov.shape[0]
  if options.components < num_components:
    # Only the M components of lowest linearised score are re-ranked exactly:
    # (M, B) indices, and every per-component term gathered to them.
    shortlist = _shortlist(0.5 * jnp.min(costs, axis=1) * prep.inv_var
                           + prep.score_offset[:, None], options.components)
    candidates = jnp.take_along_axis(candidates, shortlist[:, None, :], axis=0)  # (M, C, B)
    frame_gram = jnp.take_along_axis(
        jnp.broadcast_to(frame_gram, (*frame_gram.shape[:3], batch)), shortlist[None, None],
        axis=2)  # (n, U, M, B)
    rhs = jnp.take_along_axis(rhs, shortlist[None, None], axis=2)  # (3, P, M, B)
    chosen_variances = prep.inv_variances[shortlist]  # (M, B, J)
    inv_variances = [chosen_variances[..., j] for j in range(chosen_variances.shape[-1])]
    score_offset = prep.score_offset[shortlist]  # (M, B)
    component_index = shortlist[:, None, :]  # (M, 1, B)
  else:
    shortlist = None
    inv_variances = [prep.inv_variances[:, j, None] for j in range(prep.inv_variances.shape[1])]
    score_offset = prep.score_offset[:, None]  # (K, 1)
    component_index = jnp.arange(num_components, dtype=jnp.int32)[:, None, None]  # (K, 1, 1)
  yaw = prep.yaws[candidates]
  closed_form = gram is None and not options.refine and not options.differentiable
  if closed_form:
    # Unit weights: the precomputed eigenbasis per grid point makes each
    # evaluation O(J) (search.profile_unweighted).
    grid_index = component_index * options.num_yaws + candidates  # (M, C, B)
    cost, scale, coeffs = search.profile_unweighted(prep, rhs, norm2, grid_index,
                                                    _PROFILE_ITERATIONS)  # coeffs (J, M, C, B)
  else:
    # a only at the chosen (k, θ), below: one solve per frame, not per candidate.
    cost, scale, coeffs = _exact_at(
        prep, frame_gram[:, :, :, None], rhs[:, :, :, None], norm2, yaw,
        [v[:, None] for v in inv_variances], None, _PROFILE_ITERATIONS,
        trig=search.grid_trig(prep, candidates))
  best = jnp.argmin(cost, axis=1)[:, None]  # (M, 1, B); M = K without a shortlist
  yaw = jnp.take_along_axis(yaw, best, axis=1)[:, 0]  # (M, B)
  yaw_index = jnp.take_along_axis(candidates, best, axis=1)[:, 0]  # (M, B) grid indices
  scale = jnp.take_along_axis(scale, best, axis=1)[:, 0]
  cost = jnp.take_along_axis(cost, best, axis=1)[:, 0]
  if closed_form:
    coeffs = jnp.take_along_axis(coeffs, best[None], axis=2)[:, :, 0]  # (J, M, B)
    chosen_index = jnp.take_along_axis(grid_index, best, axis=1)[:, 0]  # (M, B)
  if options.refine:
    yaw, cost = _refine(prep, yaw, scale, frame_gram, rhs, norm2, inv_variances,
                        options.refine_steps)

  # 3. The component of lowest negative log posterior, and its exact answer.
  score = 0.5 * cost + score_offset
  score = jnp.where(jnp.isfinite(score), score, jnp.inf)
  slot = jnp.argmin(score, axis=0).astype(jnp.int32)  # (B,) among the M (or K)

  def pick(x):  # (..., M, B) -> (..., B), the chosen component's entry
    return jnp.take_along_axis(
        x, jnp.broadcast_to(slot, (*x.shape[:-2], 1, batch)), axis=-2)[..., 0, :]

  def pick_terms(x):  # `pick` for the per-frame Gram and right-hand-side terms
    # Selects unrolled over the M slots, each an elementwise loop over the
    # frames: the gather along M was a slow, unvectorised loop over these
    # (already computed) terms. For values computed here, `pick`'s gather is
    # faster: XLA fuses their producers into it and computes only the chosen.
    out = x[..., 0, :]
    for m in range(1, x.shape[-2]):
      out = jnp.where(slot == m, x[..., m, :], out)
    return out

  component = slot if shortlist is None else pick(shortlist)  # (B,) in 0..K−1

  yaw = jax.lax.stop_gradient(pick(yaw))
  if options.refine:  # a refined yaw, off the grid
    cos, sin = jnp.cos(yaw), jnp.sin(yaw)
  else:
    cos, sin = search.grid_trig(prep, pick(yaw_index))
  chosen_inv_variances = prep.inv_variances[component].T  # (J, B)
  cost, scale = pick(cost), pick(scale)
  if closed_form:  # eigen-coordinates β -> a
    coeffs = list(search.profile_coeffs(prep, pick(chosen_index), pick(coeffs).T).T)
  else:
    chosen_gram = pick_terms(jnp.broadcast_to(frame_gram, (*frame_gram.shape[:3], batch)))
    if not options.refine and not options.differentiable:  # a at the chosen optimum
      coeffs = list(search.coeffs_at(prep, chosen_gram, pick_terms(rhs), yaw, scale,
                                     chosen_inv_variances.T, (cos, sin)).T)
    else:
      entries = search.gram_at(prep, chosen_gram, yaw, (cos, sin))
      rhs_list = search.rhs_at(pick_terms(rhs), yaw, (cos, sin))
      inv_list = list(chosen_inv_variances)
  if options.refine:  # the exact answer at the refined yaw
    cost, scale, coeffs = solves.exact_profile(
        entries, rhs_list, norm2, prep.inv_var, inv_list, jax.lax.stop_gradient(scale),
        iterations=_PROFILE_ITERATIONS)
  if options.differentiable:
    # One Newton step from the optimum, with gradients: its derivative is the
    # implicit-function derivative of the optimum (the search is held fixed).
    evaluate = solves.profile(entries, rhs_list, norm2, prep.inv_var, inv_list)
    log_scale = jax.lax.stop_gradient(jnp.log(scale))
    _, slope, curvature, _ = evaluate(log_scale)
    log_scale = log_scale - slope / jnp.where(curvature > 0, curvature, 1.0)
    cost, _, _, coeffs = evaluate(log_scale)
    scale = jnp.exp(log_scale)
  coeffs = jnp.stack(coeffs)  # (J, B)

  # 4. The pose, frames minor: (3, L, B) arrays of (axis, joint) rows, on
  # which every step below is an elementwise loop over the frames (the
  # frames-major pose went through small products and strided reductions).
  # μ_k + E_k a and its limb vectors as one plain product over all K (one-hot
  # in k) of the blocks and their (limbs·3) limb differences.
  num_unknowns = prep.blocks.shape[-1]
  pose_blocks = jnp.transpose(prep.blocks, (2, 1, 0, 3)).reshape(
      3 * num_joints, num_components * num_unknowns)  # (3L, K·P)
  limb_blocks = _limb_rows(pose_blocks.reshape(3, num_joints, -1), options.limbs)
  onehot = (component == jnp.arange(num_components, dtype=component.dtype)[:, None]).astype(dtype)
  mix = (onehot[:, None] * jnp.concatenate([jnp.ones_like(scale)[None], coeffs])[None]).reshape(
      num_components * num_unknowns, batch)  # (K·P, B)
  rows = jnp.concatenate([pose_blocks, limb_blocks]) @ mix
  model_pose = rows[: 3 * num_joints].reshape(3, num_joints, batch)
  size = jnp.sqrt(_row_sum(rows[3 * num_joints :] ** 2))  # (B,) limb-length norm
  pose = [cos * model_pose[0] + sin * model_pose[2], model_pose[1],
          cos * model_pose[2] - sin * model_pose[0]]
  if prep.rotation is not None:
    pose = [sum(prep.rotation[a, b] * pose[b] for b in range(3)) for a in range(3)]
  # Reprojection: s Π E R_θ X, with t eliminated as in the fit (weighted mean).
  weights = jnp.ones((num_joints, batch), dtype) if joint_weights is None else joint_weights.T
  total_weight = _row_sum(weights)
  projected = [scale * pose[a] for a in range(2)]
  projected = [x - _row_sum(weights * x) / total_weight for x in projected]
  if points_t is None:
    points_t = jnp.transpose(points, (2, 1, 0))  # (2, L, B)
  error = [jnp.where(used.T, points_t[a] - projected[a], 0.0) for a in range(2)]
  residual = jnp.sqrt(_row_sum(weights * (error[0] ** 2 + error[1] ** 2)) / total_weight)
  reprojected = camera.denormalize_keypoints(jnp.stack(projected, axis=-1).transpose(1, 0, 2),
                                             norm.centre, norm.size)
  mahalanobis = jnp.sqrt(_row_sum(coeffs**2 * chosen_inv_variances))
  if options.blend:
    # Move each visible joint's image-plane coordinates part of the way to the
    # observation, back-projected with the solved scale; keep the model's depth.
    share = limits.blend_weight * jnp.sqrt(weights) / scale
    pose = [pose[0] + share * error[0], pose[1] + share * error[1], pose[2]]
    # The moved joints change the limb norm: back to the model pose's, so the
    # output keeps the training size.
    moved = jnp.sqrt(_row_sum(_limb_rows(jnp.stack(pose), options.limbs) ** 2))
    pose = [x * (size / moved) for x in pose]
  mm_per_unit = model.limb_scale * 1000.0 / size
  pose3d = jnp.stack([(x - x[options.root]) * mm_per_unit for x in pose])  # (3, L, B)
  finite_pose = jnp.all(jnp.isfinite(pose3d), axis=(0, 1))  # a reduction: computed once
  pose3d = jnp.transpose(pose3d, (2, 1, 0))
  coeffs = coeffs.T  # (B, J)
  scale_px = scale * norm.size / mm_per_unit

  plausible = ((jnp.abs(size - 1.0) <= limits.max_size_error)
               & (mahalanobis <= limits.max_mahalanobis) & (residual <= limits.max_residual))
  lifted = liftable & jnp.isfinite(cost) & finite_pose & (scale > 0)
  plausible = plausible & lifted
  nan = jnp.asarray(jnp.nan, dtype)

  def mask(x):
    return jnp.where(lifted.reshape((batch,) + (1,) * (x.ndim - 1)), x, nan)

  return LiftResult(
      pose3d=mask(pose3d), yaw=mask(jnp.mod(yaw, 2 * math.pi)), scale=mask(scale_px),
      coeffs=mask(coeffs), component=jnp.where(lifted, component, -1), cost=mask(cost),
      reprojected=mask(reprojected), size=mask(size), mahalanobis=mask(mahalanobis),
      residual=mask(residual), plausible=plausible, valid=plausible,
  )


@_compile.cpu_tuned_jit(static_argnames=("options",))
def _lift_jit(model, keypoints, visibility, rotation, limits, *, options: _Options):
  if not options.differentiable:
    model, keypoints, visibility, rotation = jax.lax.stop_gradient(
        (model, keypoints, visibility, rotation))
  batch_shape = keypoints.shape[:-2]
  num_joints = keypoints.shape[-2]
  flat = keypoints.reshape((-1, num_joints, 2))
  flat_vis = None if visibility is None else visibility.reshape((-1, num_joints))
  prep = search.prepare(model, rotation, limits.obs_noise, limits.prior_weight,
                        options.num_yaws, visibility is None)
  out = _lift_frames(prep, model, flat, flat_vis, limits, options)
  return jax.tree.map(lambda x: x.reshape(batch_shape + x.shape[1:]), out)


@_compile.cpu_tuned_jit(static_argnames=("num_yaws", "unweighted"))
def _prepare_jit(model, rotation, obs_noise, prior_weight, *, num_yaws: int, unweighted: bool):
  """`search.prepare` as a program of its own (`_lift_in_groups`)."""
  return search.prepare(*jax.lax.stop_gradient((model, rotation, obs_noise, prior_weight)),
                        num_yaws, unweighted)


@_compile.cpu_tuned_jit(static_argnames=("options",))
def _lift_prepared_jit(prep, model, keypoints, visibility, limits, *, options: _Options):
  """`_lift_frames` of (B, L, 2) keypoints with `prep` given: no LAPACK call
  (the eigendecomposition is `prepare`'s), so that threads may run it at once."""
  prep, model, keypoints, visibility = jax.lax.stop_gradient((prep, model, keypoints, visibility))
  return _lift_frames(prep, model, keypoints, visibility, limits, options)


def _lift_frames(prep, model, flat, flat_vis, limits, options: _Options):
  """(B, L, 2) keypoints, (B, L) visibility or None -> `LiftResult` (B,), in
  chunks of `options.chunk_size` frames (`lax.map`)."""
  num_joints = flat.shape[1]
  total = flat.shape[0]
  run = functools.partial(_lift_chunk, prep, model, limits=limits, options=options)
  chunk_size = options.chunk_size
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
  return out


# Default CPU groups of frames that `lift` runs in threads at once
# (`_lift_in_groups`) hold at least this many chunks each, of the size one
# program would take (2,048 frames unweighted; weighted, `_cpu_weighted_chunk`
# without `threaded`), whatever chunk the threads then run. Two threads against
# one call on the 2-core CPU (K = 3, J = 10, T = 100; median of 11 interleaved
# rounds; RESULTS.md, session 17): unweighted (chunks of 2,048) 0.96x for 2,048
# frames, 1.05x for 4,096, 1.12x for 8,192, 1.14x for 16,384; weighted (512)
# 0.99x for 512, 1.12x for 1,024, 1.19x for 2,048, 1.24x for 4,096.
_GROUP_CHUNKS = 1


def _default_threads() -> int:
  """The CPU cores this process may run on: the default `threads` of `lift` and
  `lift3d.lift_sequence` on the CPU backend."""
  if hasattr(os, "sched_getaffinity"):
    return max(1, len(os.sched_getaffinity(0)))
  return max(1, os.cpu_count() or 1)


def _in_threads(fn, parts) -> list:
  """`[fn(*part) for part in parts]`, each call in its own thread and computed
  before this returns (`lift` and `lift_sequence` groups on the CPU).

  XLA's CPU runtime runs the programs of several threads at once, while one
  thread's calls run one after another: work that a program runs on one core
  (`lift3d.sequence`'s scans over the frames, much of `lift`'s exact step)
  then takes every core. `fn` must run programs without LAPACK calls:
  jaxlib's LAPACK kernels block an XLA CPU worker while their tasks wait on
  the same pool, and two programs with such calls at once can wedge a small
  pool (two unweighted `lift` programs, each with `prepare`'s eigh, hung on
  the 2-core CPU; tests/lapack_order_test.py checks the programs run here).
  JAX's settings are per thread: each thread runs under the caller's x64 and
  matmul-precision settings.
  """
  x64, precision = jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision

  def work(part):
    with jax.enable_x64(x64), jax.default_matmul_precision(precision):
      return jax.block_until_ready(fn(*part))

  with concurrent.futures.ThreadPoolExecutor(max_workers=len(parts)) as pool:
    return list(pool.map(work, parts))


def _group_layout(count: int, groups: int, chunk_size: int | None = None) -> tuple[int, int]:
  """(groups, size) for `count` items in at most `groups` equal groups of
  `size` items (a `_bucket` of whole chunks with `chunk_size`): as few groups
  as that size needs, so that no group is padding alone."""
  size = -(-count // groups)
  if chunk_size is not None:
    size = _bucket(size, chunk_size)
  return -(-count // size), size


@functools.partial(jax.jit, static_argnames=("batch_ndim", "groups", "size"))
def _split_groups(tree, *, batch_ndim: int, groups: int, size: int):
  """Arrays (..., rest) with `batch_ndim` batch axes (N items in all) -> `groups`
  trees of (size, rest) arrays, the items in order, padded at the end with
  copies of the last item (`groups · size ≥ N`, `_group_layout`)."""

  def grouped(x):
    x = pad_frames(x.reshape((-1, *x.shape[batch_ndim:])), size=groups * size, axis=0)
    return x.reshape((groups, size, *x.shape[1:]))

  split = jax.tree.map(grouped, tree)
  return [jax.tree.map(lambda x, g=g: x[g], split) for g in range(groups)]


@functools.partial(jax.jit, static_argnames=("batch_shape",))
def _join_groups(outs, *, batch_shape: tuple):
  """The groups' results, (size, ...) arrays each -> one result of `batch_shape`
  (the first prod(batch_shape) items, in order)."""
  count = math.prod(batch_shape)
  return jax.tree.map(
      lambda *x: jnp.concatenate(x)[:count].reshape(batch_shape + x[0].shape[1:]), *outs)


def _lift_in_groups(model, keypoints, visibility, rotation, limits, options: _Options,
                    groups: int, size: int):
  """`lift` of (B, L, 2) keypoints in `groups` groups of `size` frames (whole
  chunks, `_group_layout`), one thread each (`_in_threads`): `prepare` once,
  then `_lift_prepared_jit` per group, one compiled program for all groups.
  Returns the `LiftResult` (B,)."""
  total = keypoints.shape[0]
  # Computed before the groups start, so that its LAPACK call never runs beside them.
  prep = jax.block_until_ready(_prepare_jit(
      model, rotation, limits.obs_noise, limits.prior_weight, num_yaws=options.num_yaws,
      unweighted=visibility is None))
  parts = _split_groups((keypoints, visibility), batch_ndim=1, groups=groups, size=size)
  outs = _in_threads(
      lambda kp, vis: _lift_prepared_jit(prep, model, kp, vis, limits, options=options), parts)
  return _join_groups(outs, batch_shape=(total,))


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


def _empty_result(batch_shape, num_joints: int, num_basis: int, dtype) -> LiftResult:
  def full(shape, value, kind=dtype):
    return jnp.full(batch_shape + shape, value, kind)

  return LiftResult(
      pose3d=full((num_joints, 3), jnp.nan), yaw=full((), jnp.nan), scale=full((), jnp.nan),
      coeffs=full((num_basis,), jnp.nan), component=full((), -1, jnp.int32),
      cost=full((), jnp.nan), reprojected=full((num_joints, 2), jnp.nan),
      size=full((), jnp.nan), mahalanobis=full((), jnp.nan), residual=full((), jnp.nan),
      plausible=full((), False, bool), valid=full((), False, bool))


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
    obs_noise: float | None = None,
    prior_weight: float | None = None,
    reconstruction: str = "blend",
    blend_weight: float = DEFAULT_BLEND_WEIGHT,
    candidates: int = DEFAULT_CANDIDATES,
    components: int | None = DEFAULT_COMPONENTS,
    opposite_yaws: bool = DEFAULT_OPPOSITE_YAWS,
    max_size_error: float = MAX_SIZE_ERROR,
    max_mahalanobis_norm: float | None = None,
    max_residual: float = MAX_RESIDUAL,
    refine_steps: int = 6,
    skeleton: Skeleton = H36M17,
    threads: int | None = None,
) -> LiftResult:
  """Lifts 2D landmarks to 3D poses: exhaustive search, exact answer, plausibility check.

  The result carries **no gradient** unless `differentiable=True` (then
  gradients flow through the exact solution at the chosen component and yaw,
  which are held fixed): `jax.grad` of a default lift is zero.

  Implements docs/method.md §4: for each component k and each of `num_yaws`
  evenly spaced yaws θ the linearised least squares in `c = (s, s·a)` is
  solved exactly (translation eliminated); the best `candidates` local minima
  over θ of each of the `components` components of lowest linearised score
  are re-ranked by the exact objective
  `||D(w − s·A_θ(μ_k + E_k a))||²/σ_obs² + Σ_j a_j²/λ_kj` over s > 0 and a,
  and the (k, θ) with the lowest negative log posterior
  `½·objective + β(½Σ_j log λ_kj − log π_k)` is the answer. Its plausibility
  (size, Mahalanobis norm, reprojection residual) decides `valid`. Works
  under `jax.jit` (pass the options as static) and `jax.vmap`, on any batch
  shape; big batches run in chunks of `chunk_size` frames. Called with
  concrete arrays, the frames are padded to a bucket (the next power of two
  up to a chunk, then whole chunks) so that a new batch size reuses a
  compiled program instead of compiling for seconds. On the CPU these
  programs compile with the XLA options of `lift3d._compile` (1.06-1.16x);
  under an outer `jax.jit` the outer program's options apply.

  Args:
    model: the pose model (K components, J basis vectors, L joints), poses in
      normalised units (limb-length norm 1).
    keypoints: (..., L, 2) image pixels, x right, y down (any translation and
      scale, e.g. belief-map grid coordinates).
    visibility: optional (..., L) weights in [0, 1]; `D = diag(visibility)`
      weights the residuals. Joints of weight 0 may hold any value, NaN
      included, and have no effect. None (all visible) takes the fast
      unweighted search; then every joint must be finite.
    num_yaws: T, the number of yaws 2πt/T searched (static).
    refine: refine each component's yaw off the grid by `refine_steps`
      Levenberg–Marquardt steps on the exact objective; the cost never
      increases.
    differentiable: let gradients flow (to the keypoints, visibility, model)
      through the exact solution at the chosen (k, θ). By default the result
      carries no gradient.
    camera_rotation: optional (3, 3) camera rotation E, e.g.
      `lift3d.camera.elevation_rotation(pitch)`; None for a level camera.
    min_visible: frames with fewer joints of positive weight are not lifted.
    chunk_size: frames per chunk. Default on CPU 2,048 unweighted (when
      the frames run in one thread per core, at most 512, as many as keep
      the search in the core's L2 cache: 256 for K = 3, 128 for K = 9 at
      T = 100 with 1 MiB; `_cpu_unweighted_threaded_chunk`), 512 weighted
      (fewer for big models and grids, and when the frames run in one thread
      per core: 128 in threads for K = 3, J = 10, and 64 for K = 9, J = 14
      at T = 100; `_cpu_weighted_chunk`) and 64 with `refine`; on GPU/TPU
      65,536 unweighted and 16,384 weighted.
    obs_noise: σ_obs, the 2D noise standard deviation in normalised units (a
      fraction of the 2D pose's RMS radius). None takes `model.obs_noise`
      (chosen by held-out validation when the model was calibrated), or for a
      model without one `lift3d.lifting.default_obs_noise(model)`.
    prior_weight: β, the weight of the component term `½Σ log λ − log π` in
      the score; None takes `model.prior_weight` (1 if unset).
    reconstruction: "blend" (default) moves each visible joint's image-plane
      coordinates by `blend_weight` (times its visibility) of the way to the
      observed 2D, back-projected with the solved scale, keeps the model's
      depth and scales the pose back to the training size; "model" returns the model pose `E R_θ(μ_k + E_k a)` itself. The
      default was chosen on held-out validation clips of real people (0, 3 and
      5 px noise, up to 30% hidden): blend at α = 0.8 lowered MPJPE by about
      8 mm and PA-MPJPE by about 5 mm against "model" (RESULTS.md, issue 11).
      Only `pose3d` changes; the search, `valid`, `reprojected` and the other
      fields are those of the model pose.
    blend_weight: α of "blend", in [0, 1] (default `DEFAULT_BLEND_WEIGHT`).
    candidates: local minima over yaw per component re-ranked exactly (static).
      For a level camera and an even T the yaws come in pairs (θ, θ + π) of
      one Gram matrix and the minima are those of each pair's lower cost.
    opposite_yaws: re-rank both yaws of each such pair exactly (static); by
      default only the one of lower linearised cost
      (`DEFAULT_OPPOSITE_YAWS`, chosen by measurement: on held-out real clips
      at most 0.3% of the answers differ, at half the exact work).
    components: M, how many components (those of lowest linearised score,
      `grid_scores`' minimum over yaw) have their candidates re-ranked
      exactly (static; None: all K). The default 4 was chosen by measurement
      (`DEFAULT_COMPONENTS`); models of K ≤ M are unaffected.
    max_size_error: largest plausible |size − 1| (size: limb-length norm of
      the model pose, 1 for training poses).
    max_mahalanobis_norm: largest plausible `sqrt(Σ a²/λ)`; None takes
      `max_mahalanobis(J)` (99.99% of a standard normal J-vector's norms).
    max_residual: largest plausible RMS reprojection residual, a fraction of
      the 2D pose's RMS radius.
    refine_steps: LM steps when `refine` (static).
    skeleton: the joints' skeleton (L joints; pose3d is centred on its root,
      and its limbs define the size).
    threads: with concrete arrays, lift the frames in this many groups of
      whole chunks at once, one thread each (`prepare` computed once; the
      same answers, to float32 rounding). None (default): one per CPU core on
      the CPU backend for batches of at least a chunk per core, 1 elsewhere.
      On the CPU much of a chunk's work runs on one core, so big batches run
      faster in groups (16,384 frames 1.1-1.5x in two threads, by run, on
      the 2-core CPU; RESULTS.md); pass 1 where the caller runs its own threads.
      Grouped, the call returns once the answers are computed.

  Returns:
    A `LiftResult` with the batch shape `...` of `keypoints`.

  Raises:
    ValueError: on a malformed model, keypoints/visibility shapes that do not
      match the model or the skeleton, or bad options.
  """
  _check_model(model)
  num_joints = int(np.shape(model.mean)[1])
  num_basis = int(np.shape(model.basis)[1])
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
  if int(candidates) < 1:
    raise ValueError(f"candidates must be >= 1, got {candidates}")
  num_components = int(np.shape(model.mean)[0])
  components = num_components if components is None else int(components)
  if components < 1:
    raise ValueError(f"components must be >= 1, got {components}")
  if reconstruction not in ("model", "blend"):
    raise ValueError(f"reconstruction must be 'model' or 'blend', got {reconstruction!r}")
  if not 0.0 <= float(blend_weight) <= 1.0:
    raise ValueError(f"blend_weight must lie in [0, 1], got {blend_weight}")
  single_chunk = None  # a default chunk for one program that differs from `chunk_size`
  if chunk_size is None:
    if jax.default_backend() != "cpu":
      chunk_size = _ACCELERATOR_CHUNKS[visibility is not None]
    else:
      if refine:
        chunk_size = _CPU_REFINE_CHUNK
      elif visibility is None:
        chunk_size = _cpu_unweighted_threaded_chunk(num_components, num_joints, int(num_yaws))
        single_chunk = _CPU_CHUNKS[0]
      else:
        # The chunk of one thread per core; `single_chunk` that of one program.
        sizes = (num_components, num_basis + 1, int(num_yaws))
        level = camera_rotation is None
        chunk_size = _cpu_weighted_chunk(*sizes, level=level, threaded=True)
        single_chunk = _cpu_weighted_chunk(*sizes, level=level, threaded=False)
  if int(chunk_size) < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  if threads is not None and int(threads) < 1:
    raise ValueError(f"threads must be >= 1 or None, got {threads}")
  dtype = jnp.result_type(float)
  if math.prod(shape[:-2]) == 0:
    return _empty_result(shape[:-2], num_joints, num_basis, dtype)
  keypoints = jnp.asarray(keypoints, dtype)
  if visibility is not None:
    visibility = jnp.asarray(visibility, dtype)
  model = jax.tree.map(lambda x: jnp.asarray(x, dtype), model)
  if camera_rotation is not None:
    camera_rotation = jnp.asarray(camera_rotation, dtype)
  obs_noise, prior_weight = _prior(model, obs_noise, prior_weight)
  if max_mahalanobis_norm is None:
    max_mahalanobis_norm = max_mahalanobis(num_basis)
  limits = _Limits(
      obs_noise=jnp.asarray(obs_noise, dtype), prior_weight=jnp.asarray(prior_weight, dtype),
      blend_weight=jnp.asarray(blend_weight, dtype),
      max_size_error=jnp.asarray(max_size_error, dtype),
      max_mahalanobis=jnp.asarray(max_mahalanobis_norm, dtype),
      max_residual=jnp.asarray(max_residual, dtype))
  options = _Options(
      num_yaws=int(num_yaws), candidates=int(candidates), opposite_yaws=bool(opposite_yaws),
      components=min(components, num_components), refine=bool(refine),
      refine_steps=int(refine_steps), differentiable=bool(differentiable),
      min_visible=int(min_visible), chunk_size=int(chunk_size),
      root=skeleton.parents.index(-1), limbs=tuple(skeleton.limbs),
      blend=reconstruction == "blend")
  if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(
      (model, keypoints, visibility, camera_rotation))):
    # Under an outer transformation the shapes are fixed by the caller.
    if single_chunk is not None:
      options = options.replace(chunk_size=single_chunk)
    return _lift_jit(model, keypoints, visibility, camera_rotation, limits, options=options)
  # Concrete inputs: pad the frames to a bucket so that a new batch size does not
  # recompile (a compile costs seconds, the padded frames microseconds).
  total = math.prod(shape[:-2])
  flat = keypoints.reshape((total, num_joints, 2))
  flat_vis = None if visibility is None else visibility.reshape((total, num_joints))
  if threads is not None:
    groups = min(int(threads), total)
  elif jax.default_backend() == "cpu":
    # Groups of at least `_GROUP_CHUNKS` chunks of one program's size.
    group_frames = _GROUP_CHUNKS * int(chunk_size if single_chunk is None else single_chunk)
    groups = max(1, min(_default_threads(), total // group_frames))
  else:
    groups = 1
  groups, size = _group_layout(total, groups, int(chunk_size))
  if groups > 1:
    out = _lift_in_groups(model, flat, flat_vis, camera_rotation, limits, options, groups, size)
  else:
    if single_chunk is not None:
      options = options.replace(chunk_size=single_chunk)
    padded = _bucket(total, options.chunk_size)
    if padded > total:
      flat, flat_vis = pad_frames((flat, flat_vis), size=padded, axis=0)
    out = _lift_jit(model, flat, flat_vis, camera_rotation, limits, options=options)
    if padded > total:
      out = first_frames(out, size=total, axis=0)
  return jax.tree.map(lambda x: x.reshape(shape[:-2] + x.shape[1:]), out)


def _bucket(total: int, chunk_size: int | None = None) -> int:
  """The size a batch of `total` items is padded to so that compiled programs are
  reused across sizes: the next power of two (at least 1), at most `chunk_size`,
  and beyond it whole chunks. Used by `lift` (frames), `lift_sequence` (frames,
  no chunk) and `lift3d.predict` (people)."""
  if chunk_size is not None and total >= chunk_size:
    return -(-total // chunk_size) * chunk_size
  size = 1 << max(total - 1, 0).bit_length()
  return size if chunk_size is None else min(chunk_size, size)


@functools.partial(jax.jit, static_argnames=("size", "axis"))
def pad_frames(tree, *, size: int, axis: int):
  """Every array of `tree` (N frames along `axis`) to `size` frames, repeating the
  last frame (one small program per shape, not one eager op per array)."""
  def pad(x):
    last = jax.lax.slice_in_dim(x, x.shape[axis] - 1, x.shape[axis], axis=axis)
    return jnp.concatenate([x, jnp.repeat(last, size - x.shape[axis], axis=axis)], axis=axis)
  return jax.tree.map(pad, tree)


@functools.partial(jax.jit, static_argnames=("size", "axis"))
def first_frames(tree, *, size: int, axis: int):
  """The first `size` frames (along `axis`) of every array of `tree`."""
  return jax.tree.map(lambda x: jax.lax.slice_in_dim(x, 0, size, axis=axis), tree)


def _grid_chunk(prep: search.Prepared, keypoints, visibility, min_visible: int):
  """Linearised scores of a (B, L, 2) chunk; NaN for frames that cannot be lifted.

  Unweighted (B, K, T), frames major (each frame's grid contiguous, as
  `grid_scores` returns it): the search's products come out that way (no
  transposition of the grid; measured on the 2-core CPU, the transposition
  took more time than the products). Weighted (K, T, B), frames minor, as the
  search computes them: XLA fuses the unrolled factorisation into whatever
  writes this chunk's output, and only a frames-minor output keeps its loop
  vectorised over the frames (frames major, the weighted `grid_scores` ran
  about 9x slower on the 2-core CPU); `_grid_scores_jit` transposes the whole
  result once. With pairs (θ, θ + π) of one factorisation (a level camera, an
  even T), weighted is complex (K, T/2, B): the scores at θ_t in the real
  part and at θ_t + π in the imaginary part (`search.search_weighted_grid`).
  """
  joint_weights, _, liftable, _, points = _clean_points(keypoints, visibility, min_visible)

  def finish(costs, offset, liftable):
    # One elementwise consumer of the search (a check over each frame's grid
    # beside it made XLA compile the unrolled factorisation into both: 4 s more
    # of compiling at K = 9, J = 14). A (k, θ) whose linearised problem failed
    # numerically is +inf, as `lift` ranks it.
    scores = 0.5 * costs * prep.inv_var + offset
    return jnp.where(liftable, jnp.where(jnp.isfinite(scores), scores, jnp.inf), jnp.nan)

  if joint_weights is None:
    costs = search.search_unweighted(prep, points, frames_major=True)  # (B, K, T)
    return finish(costs, prep.score_offset[:, None], liftable[:, None, None])
  costs, opposite = search.search_weighted_grid(
      prep, *search.frame_terms(prep, points, joint_weights))  # (K, T or T/2, B)
  offset = prep.score_offset[:, None, None]
  if opposite is None:
    return finish(costs, offset, liftable)
  # The yaws θ and θ + π of each pair share a factorisation: both halves as
  # one output (real and imaginary parts), so that XLA computes it once.
  return jax.lax.complex(finish(costs, offset, liftable), finish(opposite, offset, liftable))


@_compile.cpu_tuned_jit(static_argnames=("num_yaws", "min_visible", "chunk_size"))
def _grid_scores_jit(model, keypoints, visibility, obs_noise, prior_weight, camera_rotation, *,
                     num_yaws, min_visible, chunk_size):
  model, keypoints, visibility, camera_rotation = jax.lax.stop_gradient(
      (model, keypoints, visibility, camera_rotation))
  batch_shape, num_joints = keypoints.shape[:-2], keypoints.shape[-2]
  flat = keypoints.reshape((-1, num_joints, 2))
  flat_vis = None if visibility is None else visibility.reshape((-1, num_joints))
  prep = search.prepare(model, camera_rotation, obs_noise, prior_weight, num_yaws,
                        visibility is None, profile=False)
  total = flat.shape[0]
  # At least two chunks weighted: XLA removes a loop of one step and then
  # fuses the unrolled factorisation into its surroundings, which doubled the
  # compile time of a weighted `lift_sequence` (K = 9, J = 14, one video of 64
  # frames: 17.9 s, against 8.5-8.8 s for two or more chunks; 2-core CPU).
  num_chunks = max(1 if flat_vis is None else 2, -(-total // chunk_size))
  size = -(-total // num_chunks)
  pad = num_chunks * size - total
  chunks = jnp.pad(flat, ((0, pad), (0, 0), (0, 0))).reshape(num_chunks, size, num_joints, 2)
  if flat_vis is None:
    out = jax.lax.map(lambda kp: _grid_chunk(prep, kp, None, min_visible), chunks)
  else:
    vis = jnp.pad(flat_vis, ((0, pad), (0, 0))).reshape(num_chunks, size, num_joints)
    out = jax.lax.map(lambda a: _grid_chunk(prep, *a, min_visible), (chunks, vis))
    if jnp.iscomplexobj(out):  # the yaws θ_t (real) and θ_t + π (imaginary) of the pairs
      out = jnp.concatenate([out.real, out.imag], axis=2)
    out = jnp.moveaxis(out, -1, 1)  # (chunks, K, T, B) -> (chunks, B, K, T)
  out = out.reshape((num_chunks * size, *out.shape[2:]))[:total]
  return out.reshape(batch_shape + out.shape[1:])


@float32_matmuls
def grid_scores(model: PoseModel, keypoints, visibility=None, *, num_yaws: int = 100,
                min_visible: int = 6, obs_noise: float | None = None,
                prior_weight: float | None = None, chunk_size: int | None = None,
                camera_rotation=None):
  """Linearised negative log posterior of every (component, yaw) of the grid, per frame.

  The grid search of `lift` (docs/method.md §4.2): for component k and yaw
  θ_t = 2πt/T, `r_k(θ_t)/(2σ_obs²) + β(½ Σ_j log λ_kj − log π_k)` with `r` the
  linearised regularised least-squares cost of the frame, in nats. These are
  the costs a temporal model (`lift3d.sequence`) chains over frames; `lift`
  itself re-ranks the best of them by the exact objective.

  Args:
    model: the pose model (K components, L joints).
    keypoints: (..., L, 2) pixels, x right, y down.
    visibility: optional (..., L) weights in [0, 1] (D = diag(visibility));
      joints of weight 0 may be NaN. None: all joints, unweighted search.
    num_yaws: T (static).
    min_visible: frames with fewer joints of positive weight get NaN.
    obs_noise: σ_obs as in `lift` (None: the model's, or the default).
    prior_weight: β as in `lift` (None: the model's, or 1).
    chunk_size: frames per chunk (default 2,048 unweighted, 128 weighted;
      a weighted batch runs in at least two chunks, which compiles faster).
    camera_rotation: optional (3, 3) camera rotation E as in `lift`; None for
      a level camera. Yaw θ_t is then the subject's yaw before E.

  Returns:
    (..., K, T) float32 scores (nats); all NaN for a frame that cannot be
    lifted (too few visible joints, a visible joint not finite, or the
    visible joints coincide); +inf for a (k, θ) whose linearised problem
    failed numerically (never chosen).
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
  if camera_rotation is not None and tuple(np.shape(camera_rotation)) != (3, 3):
    raise ValueError(f"camera_rotation must be (3, 3), got {tuple(np.shape(camera_rotation))}")
  if chunk_size is None:
    chunk_size = _CPU_GRID_CHUNKS[visibility is not None]
  dtype = jnp.result_type(float)
  model = jax.tree.map(lambda x: jnp.asarray(x, dtype), model)
  obs_noise, prior_weight = _prior(model, obs_noise, prior_weight)
  return _grid_scores_jit(
      model, jnp.asarray(keypoints, dtype),
      None if visibility is None else jnp.asarray(visibility, dtype),
      jnp.asarray(obs_noise, dtype), jnp.asarray(prior_weight, dtype),
      None if camera_rotation is None else jnp.asarray(camera_rotation, dtype),
      num_yaws=int(num_yaws),
      min_visible=int(min_visible), chunk_size=int(chunk_size))


_default_obs_noise = jax.jit(search.default_obs_noise)


def _prior(model: PoseModel, obs_noise, prior_weight):
  """(σ_obs, β): the given values, else the model's, else the defaults."""
  if obs_noise is None:
    # One compiled call: eagerly, its dozen small operations cost about 0.7 ms
    # a `lift` (2-core CPU).
    obs_noise = (model.obs_noise if model.obs_noise is not None
                 else _default_obs_noise(model))
  if prior_weight is None:
    prior_weight = model.prior_weight if model.prior_weight is not None else 1.0
  return obs_noise, prior_weight
