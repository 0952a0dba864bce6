"""Tests of lift3d.camera: rotations, projections and the 2D normalisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lift3d import camera
from tests.float32_bounds import ULPS_PER_FUNCTION, as_float32, assert_within, bound


@pytest.mark.parametrize("angle", [0.0, 0.3, -1.2, 2.9])
def test_rotations_are_proper_and_match_closed_forms(angle):
  for rot in (camera.yaw_rotation(angle), camera.elevation_rotation(angle)):
    rot = np.asarray(rot, np.float64)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-6)
  c, s = np.cos(angle), np.sin(angle)
  np.testing.assert_allclose(camera.yaw_rotation(angle),
                             [[c, 0, s], [0, 1, 0], [-s, 0, c]], atol=1e-6)
  # The yaw keeps y; the elevation keeps x.
  np.testing.assert_allclose(np.asarray(camera.yaw_rotation(angle))[1], [0, 1, 0], atol=1e-7)
  np.testing.assert_allclose(np.asarray(camera.elevation_rotation(angle))[0], [1, 0, 0],
                             atol=1e-7)


def test_elevation_looking_down_lifts_the_horizon():
  far_ahead = np.array([0.0, 0.0, -10.0])  # the camera looks along -z
  assert (np.asarray(camera.elevation_rotation(0.2)) @ far_ahead)[1] > 0


def test_batched_rotations():
  angles = np.linspace(-3, 3, 6).reshape(2, 3)
  rot = np.asarray(camera.yaw_rotation(angles))
  assert rot.shape == (2, 3, 3, 3)
  np.testing.assert_allclose(rot[1, 2], camera.yaw_rotation(angles[1, 2]), atol=1e-6)


def test_weak_perspective_flips_y_and_scales():
  points = np.array([[[0.0, 1.0, 5.0], [2.0, 0.0, -1.0]]])
  pixels = np.asarray(camera.weak_perspective(points, np.array([10.0]),
                                              translation=np.array([[100.0, 50.0]])))
  np.testing.assert_allclose(pixels, [[[100.0, 40.0], [120.0, 50.0]]])
  rot = camera.elevation_rotation(0.5)
  rotated = np.asarray(camera.weak_perspective(points, np.array([1.0]), rotation=rot))
  expected = np.einsum("ab,nlb->nla", np.asarray(rot), points)[..., :2] * [1, -1]
  np.testing.assert_allclose(rotated, expected, atol=1e-6)


def test_pinhole_matches_similar_triangles():
  points = np.array([[1.0, 2.0, -4.0], [-1.0, 0.0, -2.0]])  # in front: z < 0
  pixels = np.asarray(camera.pinhole(points, 100.0, np.array([320.0, 240.0])))
  np.testing.assert_allclose(pixels, [[345.0, 190.0], [270.0, 240.0]], atol=1e-4)


def test_normalize_round_trip_and_invariance():
  rng = np.random.default_rng(0)
  keypoints = as_float32(rng.normal(size=(4, 17, 2)) * 40 + 300)
  weights = as_float32(rng.uniform(0.2, 1.0, size=(4, 17)))
  weights[:, :3] = 0.0
  keypoints[:, :3] = np.nan  # weight 0: ignored
  norm = camera.normalize_keypoints(keypoints, weights)
  points = np.asarray(norm.points, np.float64)
  assert np.isfinite(points).all()
  np.testing.assert_allclose(points[:, :3], 0.0)
  # float32 bounds: the centre (a 17-term weighted mean of pixels near 300) and the
  # offsets cancel terms of size max|keypoint|; the size (a 34-term weighted sum,
  # a square root) errs by that over the size; points = offset / size.
  depth = 1 + 17 + 2 + 2 * 17 + 2 + ULPS_PER_FUNCTION + 2
  peak = np.nanmax(np.abs(keypoints), (1, 2))  # (B,)
  size = np.asarray(norm.size, np.float64)
  reach = np.abs(points).max((1, 2))
  point_tol = bound(peak / size * (1 + reach) + reach, depth)[:, None, None]  # (B, 1, 1)
  # Unit weighted RMS radius, zero weighted mean.
  w = weights[..., None]
  assert_within((w * points).sum(1), 0.0, (w * point_tol).sum(1))
  assert_within((weights * (points**2).sum(-1)).sum(1) / weights.sum(1), 1.0,
                (weights * 2 * (np.abs(points) * point_tol).sum(-1)).sum(1) / weights.sum(1))
  # y is flipped (pixels y down -> y up).
  assert np.all(np.sign(points[:, 3:, 1]) == -np.sign(keypoints[:, 3:, 1] - norm.centre[:, None, 1]))
  back = np.asarray(camera.denormalize_keypoints(norm.points, norm.centre, norm.size))
  assert_within(back[:, 3:], keypoints[:, 3:],
                point_tol * size[:, None, None] + bound(peak + reach * size, 3)[:, None, None])
  moved_keypoints = as_float32(keypoints * 3.0 - 17.0)
  moved = camera.normalize_keypoints(moved_keypoints, weights)
  moved_peak = np.nanmax(np.abs(moved_keypoints), (1, 2))
  moved_tol = bound(moved_peak / (3 * size) * (1 + reach) + reach, depth + 1)[:, None, None]
  assert_within(moved.points, points, point_tol + moved_tol)
  # The size errs by the offsets' error (≤ γ·peak) plus its own rounding.
  assert_within(moved.size, 3.0 * size, bound(moved_peak + 3 * size, depth + 1)
                + 3 * bound(peak + size, depth))


def _yaw_matrix(theta):
  c, s = np.cos(theta), np.sin(theta)
  return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_rotate_yaw_matches_the_matrix_eager_jit_and_planes():
  rng = np.random.default_rng(0)
  poses = rng.normal(size=(4, 17, 3))
  yaws = rng.uniform(-np.pi, np.pi, 4)
  expected = np.einsum("nij,nlj->nli", np.stack([_yaw_matrix(t) for t in yaws]), poses)
  np.testing.assert_allclose(camera.rotate_yaw(poses, yaws[:, None]), expected, atol=1e-12)
  # float32 under jit: x' = cos·x + sin·z, each factor within a few ulp, a 2-term sum;
  # the reference sees the same float32-rounded inputs.
  poses32, yaws32 = as_float32(poses), as_float32(yaws)
  jitted = jax.jit(camera.rotate_yaw)(jnp.asarray(poses32, jnp.float32),
                                      jnp.asarray(yaws32, jnp.float32)[:, None])
  want32 = np.einsum("nij,nlj->nli", np.stack([_yaw_matrix(t) for t in yaws32]), poses32)
  assert_within(jitted, want32, bound(np.abs(poses32[..., [0, 2]]).sum(-1, keepdims=True),
                                      2 + ULPS_PER_FUNCTION))
  # Coordinates on axis 0, e.g. (3, L, B) planes with one yaw per column.
  planes = np.transpose(poses, (2, 1, 0))
  np.testing.assert_allclose(camera.rotate_yaw(planes, yaws, axis=0),
                             np.transpose(expected, (2, 1, 0)), atol=1e-12)
  np.testing.assert_allclose(camera.yaw_rotation(yaws), [_yaw_matrix(t) for t in yaws],
                             atol=1e-12)


def test_numpy_in_numpy_out_jax_in_jax_out():
  points = np.array([[1.0, 2.0, -4.0]])
  for fn, args in [(camera.yaw_rotation, (0.3,)), (camera.elevation_rotation, (0.3,)),
                   (camera.rotate_yaw, (points, 0.3)), (camera.pinhole, (points, 10.0, [1, 2])),
                   (camera.weak_perspective, (points[None], 2.0))]:
    out = fn(*args)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64, fn.__name__
    traced = jax.jit(fn)(*(jnp.asarray(a) for a in args))
    assert isinstance(traced, jax.Array), fn.__name__
    np.testing.assert_allclose(traced, out, rtol=1e-6, atol=1e-6)


def test_pinhole_per_axis_focal_and_distortion():
  # Per-axis focal lengths and the distortion model, term by term.
  points = np.array([[0.2, -0.1, -2.0], [-0.4, 0.3, -1.5]])  # y up, z to the viewer
  focal, principal = np.array([1000.0, 1010.0]), np.array([500.0, 490.0])
  radial, tangential = np.array([-0.2, 0.05, 0.01]), np.array([1e-3, -2e-3])
  x, y = points[:, 0] / -points[:, 2], -points[:, 1] / -points[:, 2]  # y down, z forward
  r2 = x**2 + y**2
  scale = 1 + radial[0] * r2 + radial[1] * r2**2 + radial[2] * r2**3
  tan = tangential[0] * y + tangential[1] * x
  want = np.stack([x * (scale + tan) + tangential[1] * r2,
                   y * (scale + tan) + tangential[0] * r2], -1)
  np.testing.assert_allclose(
      camera.pinhole(points, focal, principal, radial=radial, tangential=tangential),
      want * focal + principal, rtol=1e-12)
  np.testing.assert_allclose(camera.pinhole(points, focal, principal),
                             np.stack([x, y], -1) * focal + principal, rtol=1e-12)
  # One focal length per camera: (C,) with principal points (C, 2).
  batched = camera.pinhole(np.stack([points, 2 * points]), np.array([100.0, 200.0]),
                           np.array([[0.0, 0.0], [10.0, 10.0]]))
  np.testing.assert_allclose(batched[1], camera.pinhole(points, 200.0, [10.0, 10.0]))
