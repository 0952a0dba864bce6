"""Pose-error metrics of the Human3.6M protocols (docs/method.md §7).

Every metric takes predictions and ground truth of the same shape and returns
one error per frame, shape (...), in the inputs' units (millimetres on
Human3.6M). The inputs may be NumPy or JAX arrays: NumPy in, NumPy out; JAX in,
JAX out (jit/vmap-able, no value checks inside jit). Average the per-frame
values with `np.mean` or the tables of `lift3d.eval.tables`. Shapes are
checked (ValueError naming them); values are not: a frame holding NaN (e.g. a
lifted frame that is not `valid`) gets a NaN error, so one bad frame shows
instead of being silently dropped or raising mid-evaluation.

Conventions (named once here):
  * MPJPE: mean Euclidean joint error, optionally after subtracting a root
    joint from both poses (Protocol #1: root-aligned at the Hip, 17 joints).
  * PA-MPJPE: error after the per-frame similarity (rotation, isotropic scale,
    translation) Procrustes alignment of the prediction onto the truth, with
    the rotation restricted to det +1 (no reflections), computed on the
    evaluated joints only (Protocols #2, #3: the 14 joints of
    `lift3d.skeleton.EVAL14_INDICES`).
  * N-MPJPE: both poses root-aligned, then the prediction scaled by the
    least-squares optimal factor s = <p, t> / <p, p> (scale only, no rotation).
  * 3DPCK@τ: fraction of joints whose error is at most τ (150 mm by default).
    Its AUC is the mean PCK over `num_thresholds` evenly spaced τ in
    [0, max_threshold] (31 thresholds, 0-150 mm in 5 mm steps, as in the
    MPI-INF-3DHP convention).

Shape letters: L joints, D coordinate dimension (2 or 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _namespace(*arrays):
  """jax.numpy if any input is a JAX array (or tracer), else numpy."""
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _as_array(xp, a):
  if xp is np:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
      a = a.astype(np.float64)
    return a
  return jnp.asarray(a, dtype=jnp.result_type(a, jnp.float32))


def _check_pair(pred, true, dims: tuple[int, ...], what: str):
  """Shape checks at the public boundary (runs at trace time under jit)."""
  pred_shape, true_shape = np.shape(pred), np.shape(true)
  if pred_shape != true_shape:
    raise ValueError(
        f"{what}: pred and true must have the same shape, got {pred_shape} and {true_shape}"
    )
  if len(pred_shape) < 2 or pred_shape[-1] not in dims:
    want = " or ".join(f"(..., L, {d})" for d in dims)
    raise ValueError(f"{what}: expected poses {want}, got {pred_shape}")


def _select(xp, pred, true, joints):
  if joints is None:
    return pred, true
  idx = np.asarray(joints, dtype=np.int64)
  num = pred.shape[-2]
  if idx.ndim != 1 or idx.size == 0 or idx.min() < -num or idx.max() >= num:
    raise ValueError(f"joints {list(idx)} are not valid indices of {num} joints")
  return pred[..., idx, :], true[..., idx, :]


def _root_align(pred, true, root_index):
  if root_index is None:
    return pred, true
  return pred - pred[..., root_index : root_index + 1, :], true - true[..., root_index : root_index + 1, :]


def joint_errors(pred, true, *, root_index: int | None = None,
                 joints: Sequence[int] | None = None):
  """Euclidean error of every joint.

  Args:
    pred: (..., L, D) predicted joints, D = 2 or 3, any units.
    true: (..., L, D) true joints, same units.
    root_index: if given, subtract this joint from both poses first
      (an index into the full L joints, applied before `joints`).
    joints: optional indices of the joints to keep (e.g. EVAL14_INDICES).

  Returns:
    (..., L') per-joint distances in the inputs' units.
  """
  _check_pair(pred, true, (2, 3), "joint_errors")
  xp = _namespace(pred, true)
  pred, true = _as_array(xp, pred), _as_array(xp, true)
  pred, true = _root_align(pred, true, root_index)
  pred, true = _select(xp, pred, true, joints)
  return xp.sqrt(xp.sum((pred - true) ** 2, axis=-1))


def mpjpe(pred, true, *, root_index: int | None = None,
          joints: Sequence[int] | None = None):
  """Mean per-joint position error of every frame.

  Args:
    pred: (..., L, D) predicted joints (D = 3, or 2), any units.
    true: (..., L, D) true joints, same units.
    root_index: if given, both poses are translated so that this joint is at
      the origin first (Protocol #1 uses root_index=0, the Hip). None compares
      the coordinates as given.
    joints: optional indices of the joints averaged over.

  Returns:
    (...) mean Euclidean error per frame, in the inputs' units.
  """
  xp = _namespace(pred, true)
  return xp.mean(joint_errors(pred, true, root_index=root_index, joints=joints), axis=-1)


def procrustes_align(pred, true, *, scale: bool = True):
  """Per-frame similarity Procrustes alignment of `pred` onto `true`, no reflection.

  Finds R (det +1), s > 0 and t minimising Σ_l ||s R p_l + t - q_l||² for each
  frame (Umeyama 1991 with the reflection fix), and applies them to `pred`.

  Args:
    pred: (..., L, 3) poses to align.
    true: (..., L, 3) target poses.
    scale: fit the isotropic scale (True) or keep s = 1 (rigid alignment).

  Returns:
    (..., L, 3) the aligned prediction.
  """
  _check_pair(pred, true, (3,), "procrustes_align")
  xp = _namespace(pred, true)
  pred, true = _as_array(xp, pred), _as_array(xp, true)
  mu_p = xp.mean(pred, axis=-2, keepdims=True)
  mu_t = xp.mean(true, axis=-2, keepdims=True)
  p, q = pred - mu_p, true - mu_t
  # Cross-covariance H = pᵀ q (3×3); p R' ≈ q with R' = U diag(1, 1, d) Vᵀ.
  h = xp.einsum("...li,...lj->...ij", p, q)
  u, sv, vt = xp.linalg.svd(h)
  d = xp.sign(xp.linalg.det(xp.einsum("...ij,...jk->...ik", u, vt)))
  d = xp.where(d == 0, 1.0, d)  # degenerate (e.g. collinear) poses: no flip
  signs = xp.stack([xp.ones_like(d), xp.ones_like(d), d], axis=-1)
  rot = xp.einsum("...ij,...j,...jk->...ik", u, signs, vt)
  if scale:
    norm_p = xp.sum(p**2, axis=(-2, -1))
    trace = xp.sum(sv * signs, axis=-1)
    s = trace / xp.where(norm_p > 0, norm_p, 1.0)
  else:
    s = xp.ones(p.shape[:-2], dtype=p.dtype)
  return s[..., None, None] * xp.einsum("...li,...ij->...lj", p, rot) + mu_t


def pa_mpjpe(pred, true, *, joints: Sequence[int] | None = None):
  """MPJPE after per-frame similarity Procrustes alignment (no reflection).

  Args:
    pred: (..., L, 3) predicted joints, any units.
    true: (..., L, 3) true joints, same units.
    joints: optional indices of the joints used, both for the alignment and
      for the average (Protocols #2/#3: `lift3d.skeleton.EVAL14_INDICES`).

  Returns:
    (...) per-frame error in the inputs' units.
  """
  _check_pair(pred, true, (3,), "pa_mpjpe")
  xp = _namespace(pred, true)
  pred, true = _select(xp, _as_array(xp, pred), _as_array(xp, true), joints)
  aligned = procrustes_align(pred, true)
  return xp.mean(xp.sqrt(xp.sum((aligned - true) ** 2, axis=-1)), axis=-1)


def n_mpjpe(pred, true, *, root_index: int = 0, joints: Sequence[int] | None = None):
  """MPJPE after root alignment and the optimal isotropic scaling of `pred`.

  Args:
    pred: (..., L, 3) predicted joints, any units.
    true: (..., L, 3) true joints, same units.
    root_index: joint subtracted from both poses before scaling (Hip = 0).
    joints: optional indices of the joints used for the scale and the mean.

  Returns:
    (...) per-frame error in the inputs' units.
  """
  _check_pair(pred, true, (3,), "n_mpjpe")
  xp = _namespace(pred, true)
  pred, true = _root_align(_as_array(xp, pred), _as_array(xp, true), root_index)
  pred, true = _select(xp, pred, true, joints)
  num = xp.sum(pred * true, axis=(-2, -1))
  den = xp.sum(pred * pred, axis=(-2, -1))
  s = num / xp.where(den > 0, den, 1.0)
  return xp.mean(xp.sqrt(xp.sum((s[..., None, None] * pred - true) ** 2, axis=-1)), axis=-1)


def pixel_error(pred, true, visibility=None):
  """Mean 2D distance over the visible joints of every frame.

  Args:
    pred: (..., L, 2) predicted keypoints, pixels.
    true: (..., L, 2) true keypoints, pixels.
    visibility: optional (..., L) weights; joints with weight 0 are left out
      (and may hold NaN). Positive weights count as 1.

  Returns:
    (...) mean pixel distance per frame; NaN for a frame with no visible joint.
  """
  _check_pair(pred, true, (2,), "pixel_error")
  xp = _namespace(pred, true, visibility)
  pred, true = _as_array(xp, pred), _as_array(xp, true)
  if visibility is None:
    return xp.mean(xp.sqrt(xp.sum((pred - true) ** 2, axis=-1)), axis=-1)
  if np.shape(visibility) != np.shape(pred)[:-1]:
    raise ValueError(
        f"pixel_error: visibility must have shape {np.shape(pred)[:-1]}, got {np.shape(visibility)}"
    )
  mask = _as_array(xp, visibility) > 0
  diff = xp.where(mask[..., None], pred - true, 0.0)  # NaN-safe: never 0 * NaN
  dist = xp.sqrt(xp.sum(diff**2, axis=-1))
  count = xp.sum(mask, axis=-1)
  total = xp.sum(xp.where(mask, dist, 0.0), axis=-1)
  return xp.where(count > 0, total / xp.maximum(count, 1), xp.nan)


def pck3d(pred, true, *, threshold: float = 150.0, root_index: int | None = 0,
          joints: Sequence[int] | None = None):
  """3DPCK: fraction of joints within `threshold` of the truth, per frame.

  Args:
    pred: (..., L, 3) predicted joints, millimetres (or the units of threshold).
    true: (..., L, 3) true joints, same units.
    threshold: a joint counts as correct when its error is <= threshold.
    root_index: joint subtracted from both poses first (None: compare as given).
    joints: optional indices of the joints counted.

  Returns:
    (...) fraction in [0, 1] per frame.
  """
  xp = _namespace(pred, true)
  err = joint_errors(pred, true, root_index=root_index, joints=joints)
  return xp.mean((err <= threshold).astype(err.dtype), axis=-1)


def pck3d_auc(pred, true, *, max_threshold: float = 150.0, num_thresholds: int = 31,
              root_index: int | None = 0, joints: Sequence[int] | None = None):
  """Area under the 3DPCK curve, per frame (mean PCK over evenly spaced thresholds).

  Args:
    pred: (..., L, 3) predicted joints, millimetres.
    true: (..., L, 3) true joints, millimetres.
    max_threshold: largest threshold; thresholds are linspace(0, max, num).
    num_thresholds: number of thresholds (31 gives 5 mm steps up to 150 mm).
    root_index, joints: as in `pck3d`.

  Returns:
    (...) AUC in [0, 1] per frame.
  """
  if num_thresholds < 2:
    raise ValueError(f"num_thresholds must be >= 2, got {num_thresholds}")
  xp = _namespace(pred, true)
  err = joint_errors(pred, true, root_index=root_index, joints=joints)
  taus = xp.asarray(np.linspace(0.0, max_threshold, num_thresholds), dtype=err.dtype)
  hits = (err[..., None] <= taus).astype(err.dtype)  # (..., L, num_thresholds)
  return xp.mean(hits, axis=(-2, -1))
