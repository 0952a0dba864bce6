"""Tests of lift3d.eval.metrics against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lift3d import eval as lift_eval
from lift3d.skeleton import EVAL14_INDICES
from tests.float32_bounds import ULPS_PER_FUNCTION, assert_within, bound


def _rotation(rng):
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  if np.linalg.det(q) < 0:
    q[:, 0] = -q[:, 0]
  return q


def _poses(rng, batch=(5,), joints=17):
  return rng.normal(scale=300.0, size=(*batch, joints, 3))


def _joint_error_bound(pred, true, root):
  """(..., L) float32 bound of each joint's error ||(p − p_root) − (t − t_root)||.

  Each coordinate is a difference of up to four inputs (magnitude Σ|inputs|), then
  3 squares, a sum and a square root.
  """
  magnitude = np.abs(pred) + np.abs(true)
  if root is not None:
    magnitude = magnitude + magnitude[..., root:root + 1, :]
  return bound(np.sqrt(3) * magnitude.max(-1), 3 + 3 + ULPS_PER_FUNCTION)


def _flips(error, tolerance, thresholds):
  """(...,) number of (joint, threshold) pairs whose hit could flip under rounding."""
  near = np.abs(error[..., None] - np.asarray(thresholds)) <= tolerance[..., None]
  return near.sum((-2, -1))


def _float32_metric_bounds(pred, true):
  """{metric: (...) tolerance} for float32 mpjpe, n_mpjpe, pck3d and pck3d_auc."""
  num_joints = pred.shape[-2]
  err = np.linalg.norm(pred - true, axis=-1)  # no root alignment (mpjpe's default)
  tol = _joint_error_bound(pred, true, None)
  bounds = {"mpjpe": tol.mean(-1) + bound(err.mean(-1), num_joints + 1)}
  # n_mpjpe: root-aligned p, t (coordinates off by δ ≤ γ₂(|p| + |p_root|)), the scale
  # s = Σ p·t / Σ p·p (3L-term sums), then mean_j ||s p_j − t_j||.
  p, t = pred - pred[..., :1, :], true - true[..., :1, :]
  dp = bound(np.abs(pred) + np.abs(pred[..., :1, :]), 2)
  dt = bound(np.abs(true) + np.abs(true[..., :1, :]), 2)
  dot, sq = np.sum(p * t, (-2, -1)), np.sum(p * p, (-2, -1))
  d_dot = np.sum(dp * np.abs(t) + np.abs(p) * dt, (-2, -1)) + bound(
      np.sum(np.abs(p * t), (-2, -1)), 3 * num_joints)
  d_sq = np.sum(2 * dp * np.abs(p), (-2, -1)) + bound(sq, 3 * num_joints)
  scale = dot / sq
  d_scale = np.abs(scale) * (d_dot / np.abs(dot) + d_sq / sq) + bound(scale, 1)
  d_joint = (d_scale[..., None] * np.linalg.norm(p, axis=-1)
             + np.abs(scale)[..., None] * np.linalg.norm(dp, axis=-1)
             + np.linalg.norm(dt, axis=-1)
             + bound(np.sqrt(3) * (np.abs(scale[..., None, None] * p) + np.abs(t)).max(-1),
                     3 + 3 + ULPS_PER_FUNCTION))
  n_err = np.linalg.norm(scale[..., None, None] * p - t, axis=-1)
  bounds["n_mpjpe"] = d_joint.mean(-1) + bound(n_err.mean(-1), num_joints + 1)
  # PCK and its AUC are step functions: only a joint within rounding of a threshold
  # can count differently.
  rooted_err = np.linalg.norm(p - t, axis=-1)
  rooted_tol = _joint_error_bound(pred, true, 0)
  bounds["pck3d"] = _flips(rooted_err, rooted_tol, [150.0]) / num_joints
  taus = np.linspace(0.0, 150.0, 31)
  bounds["pck3d_auc"] = _flips(rooted_err, rooted_tol, taus) / (num_joints * taus.size)
  return bounds


def test_known_offset():
  rng = np.random.default_rng(0)
  true = _poses(rng, (4,))
  offsets = np.array([1.0, 2.0, 3.0, 10.0])
  # Move each joint by a random unit direction times the frame's offset.
  d = rng.normal(size=true.shape)
  d /= np.linalg.norm(d, axis=-1, keepdims=True)
  pred = true + offsets[:, None, None] * d
  np.testing.assert_allclose(lift_eval.mpjpe(pred, true), offsets, rtol=1e-12)


def test_root_alignment_removes_translation():
  rng = np.random.default_rng(1)
  true = _poses(rng, (3,))
  pred = true + np.array([100.0, -50.0, 7.0])
  assert lift_eval.mpjpe(pred, true).min() > 100.0
  np.testing.assert_allclose(lift_eval.mpjpe(pred, true, root_index=0), 0.0, atol=1e-9)


def test_joint_subset():
  true = np.zeros((1, 17, 3))
  pred = true.copy()
  pred[0, 0] = [14.0, 0.0, 0.0]  # the Hip, which EVAL14 leaves out
  pred[0, 1] = [0.0, 14.0, 0.0]  # RHip, which it keeps
  np.testing.assert_allclose(lift_eval.mpjpe(pred, true), [28.0 / 17])
  np.testing.assert_allclose(lift_eval.mpjpe(pred, true, joints=EVAL14_INDICES), [1.0])


def test_shape_errors():
  with pytest.raises(ValueError, match="same shape"):
    lift_eval.mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))
  with pytest.raises(ValueError, match=r"\(\.\.\., L, 3\)"):
    lift_eval.pa_mpjpe(np.zeros((2, 17, 2)), np.zeros((2, 17, 2)))
  with pytest.raises(ValueError, match="not valid indices"):
    lift_eval.mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 17, 3)), joints=[0, 17])


def test_similarity_copy_has_zero_error():
  rng = np.random.default_rng(2)
  true = _poses(rng, (6,))
  pred = np.stack([
      0.37 * (p @ _rotation(rng).T) + rng.normal(size=3) * 1000 for p in true
  ])
  np.testing.assert_allclose(lift_eval.pa_mpjpe(pred, true), 0.0, atol=1e-8)
  np.testing.assert_allclose(lift_eval.procrustes_align(pred, true), true, atol=1e-8)
  assert lift_eval.mpjpe(pred, true).min() > 10.0


def test_reflected_copy_is_not_aligned():
  rng = np.random.default_rng(3)
  true = _poses(rng, (6,))
  pred = true * np.array([-1.0, 1.0, 1.0])  # a mirror image
  err = lift_eval.pa_mpjpe(pred, true)
  assert np.all(err > 10.0), err
  # Allowing reflections would give 0: brute-force the reflected alignment.
  unflipped = lift_eval.pa_mpjpe(pred * np.array([-1.0, 1.0, 1.0]), true)
  np.testing.assert_allclose(unflipped, 0.0, atol=1e-8)


def test_matches_brute_force_planar():
  # Poses in the z = 0 plane, rotation restricted to the z axis: a 1D search
  # over angle (scale and translation in closed form) gives the optimum.
  rng = np.random.default_rng(4)
  true = np.concatenate([rng.normal(size=(7, 2)), np.zeros((7, 1))], axis=1)
  pred = np.concatenate([rng.normal(size=(7, 2)), np.zeros((7, 1))], axis=1)
  p = pred - pred.mean(0)
  q = true - true.mean(0)
  angles = np.linspace(-np.pi, np.pi, 400001)
  c, s = np.cos(angles)[:, None], np.sin(angles)[:, None]
  rx = c * p[:, 0] - s * p[:, 1]  # (angles, 7) rotated x
  ry = s * p[:, 0] + c * p[:, 1]
  num = rx @ q[:, 0] + ry @ q[:, 1]
  scale = np.maximum(num / np.sum(p**2), 0.0)
  best_sq = np.min(np.sum((scale[:, None] * rx - q[:, 0]) ** 2 + (scale[:, None] * ry - q[:, 1]) ** 2, axis=1))
  aligned = lift_eval.procrustes_align(pred, true)
  sq = np.sum((aligned - true) ** 2)
  np.testing.assert_allclose(sq, best_sq, rtol=1e-6)


def test_rigid_keeps_scale():
  rng = np.random.default_rng(5)
  true = _poses(rng, (2,))
  pred = 2.0 * true
  aligned = lift_eval.procrustes_align(pred, true, scale=False)
  np.testing.assert_allclose(
      np.linalg.norm(aligned - aligned.mean(-2, keepdims=True), axis=(-2, -1)),
      2.0 * np.linalg.norm(true - true.mean(-2, keepdims=True), axis=(-2, -1)), rtol=1e-10)


def test_jax_jit_matches_numpy():
  rng = np.random.default_rng(6)
  true = _poses(rng, (2, 3)).astype(np.float32)
  pred = true + rng.normal(scale=20.0, size=true.shape).astype(np.float32)
  want = lift_eval.pa_mpjpe(pred, true, joints=EVAL14_INDICES)
  fn = jax.jit(lambda p, t: lift_eval.pa_mpjpe(p, t, joints=EVAL14_INDICES))
  got = fn(jnp.asarray(pred), jnp.asarray(true))
  assert isinstance(got, jax.Array)
  assert got.shape == (2, 3)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-3)  # (float32 SVD; not derived)
  # The rest against float64 NumPy, within float32 bounds derived from the computation.
  p64, t64 = pred.astype(np.float64), true.astype(np.float64)
  for name, tolerance in _float32_metric_bounds(p64, t64).items():
    f = getattr(lift_eval, name)
    got = np.asarray(jax.jit(f)(jnp.asarray(pred), jnp.asarray(true)))
    assert_within(got, f(p64, t64), tolerance, err_msg=name)


def test_scaled_copy_is_zero_and_rotation_is_not():
  rng = np.random.default_rng(7)
  true = _poses(rng, (3,))
  pred = 1.7 * (true - true[:, :1]) + 55.0
  np.testing.assert_allclose(lift_eval.n_mpjpe(pred, true), 0.0, atol=1e-9)
  rotated = true @ _rotation(rng).T
  assert np.all(lift_eval.n_mpjpe(rotated, true) > 1.0)


def test_closed_form_scale():
  # true = root + unit offsets; pred = 2 x along x for one joint only.
  true = np.zeros((1, 3, 3))
  true[0, 1] = [1.0, 0, 0]
  true[0, 2] = [0, 1.0, 0]
  pred = np.zeros((1, 3, 3))
  pred[0, 1] = [2.0, 0, 0]
  # s = <p,t>/<p,p> = 2/4 = 0.5: joint 1 exact, joint 2 off by 1.
  np.testing.assert_allclose(lift_eval.n_mpjpe(pred, true), [1.0 / 3])


def test_known_distances_and_visibility():
  true = np.zeros((2, 4, 2))
  pred = np.zeros((2, 4, 2))
  pred[:, :, 0] = [3.0, 6.0, 9.0, 12.0]
  vis = np.array([[1, 1, 1, 1], [1, 0, 0.5, 0]], np.float32)
  pred[1, 1] = np.nan  # hidden joints may hold NaN
  np.testing.assert_allclose(lift_eval.pixel_error(pred[:1], true[:1]), [7.5])
  np.testing.assert_allclose(lift_eval.pixel_error(pred, true, vis), [7.5, 6.0])
  none = lift_eval.pixel_error(pred, true, np.zeros((2, 4)))
  assert np.all(np.isnan(none))
  with pytest.raises(ValueError, match="visibility"):
    lift_eval.pixel_error(pred, true, np.ones((2, 3)))


def test_hand_made_errors():
  true = np.zeros((1, 4, 3))
  pred = np.zeros((1, 4, 3))
  pred[0, :, 2] = [0.0, 100.0, 150.0, 151.0]  # root (joint 0) stays put
  np.testing.assert_allclose(lift_eval.pck3d(pred, true), [0.75])
  np.testing.assert_allclose(lift_eval.pck3d(pred, true, threshold=120.0), [0.5])


def test_auc_of_uniform_errors_is_one_half():
  # Errors spread evenly on (0, 150]: PCK(τ) = τ/150, and the mean over the
  # 31 thresholds 0, 5, ..., 150 is exactly 1/2 in the limit of many joints;
  # with errors at the midpoints of 5 mm bins it is exact.
  errors = np.arange(2.5, 150.0, 5.0)  # 30 joints, one per 5 mm bin
  true = np.zeros((1, errors.size + 1, 3))
  pred = true.copy()
  pred[0, 1:, 0] = errors
  # Root joint (error 0) counts at every threshold: 1/31 of the joints.
  # PCK(5k) = (1 + k)/31 -> AUC = mean_k (1 + k)/31 over k = 0..30 = 16/31.
  np.testing.assert_allclose(lift_eval.pck3d_auc(pred, true), [16.0 / 31.0], rtol=1e-12)
  # The 30 joints alone (no root alignment): PCK(5k) = k/30, AUC = 1/2.
  pred2 = true[:, 1:].copy()
  pred2[0, :, 0] = errors
  auc = lift_eval.pck3d_auc(pred2, true[:, 1:], root_index=None)
  np.testing.assert_allclose(auc, [0.5], rtol=1e-12)


def test_auc_of_exponential_errors():
  # Errors drawn from Exp(λ = 1/50 mm): E[PCK(τ)] = 1 - exp(-τ/50).
  rng = np.random.default_rng(8)
  errors = rng.exponential(50.0, size=200_000)
  pred = np.zeros((1, errors.size, 3))
  pred[0, :, 1] = errors
  auc = lift_eval.pck3d_auc(pred, np.zeros_like(pred), root_index=None)
  taus = np.linspace(0, 150, 31)
  np.testing.assert_allclose(auc, [np.mean(1 - np.exp(-taus / 50.0))], atol=3e-3)


