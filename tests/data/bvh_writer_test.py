"""Tests of lift3d.data.bvh_writer: BVH written from H36M17 poses reads back (lift3d.data.bvh)
to the same positions."""

import numpy as np
import pytest

from lift3d.data import bvh, bvh_writer
from lift3d.skeleton import H36M17


def _walk(num_frames=30, seed=0):
  """A random smooth motion with fixed bone lengths: (F, 17, 3) mm, root at the origin."""
  rng = np.random.default_rng(seed)
  lengths = rng.uniform(80, 450, size=17)
  lengths[0] = 0.0
  directions = rng.normal(size=(17, 3)) + np.cumsum(rng.normal(scale=0.15, size=(num_frames, 17,
                                                                                 3)), axis=0)
  directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
  poses = np.zeros((num_frames, 17, 3))
  for j, p in enumerate(H36M17.parents):
    if p >= 0:
      poses[:, j] = poses[:, p] + lengths[j] * directions[:, j]
  return poses, lengths


def _read_back(text, units_per_mm):
  parsed = bvh.parse_bvh(text)
  positions = bvh.forward_kinematics(parsed)
  return bvh.to_h36m17(parsed.names, positions, bvh_writer.H36M17_FROM_BVH) / units_per_mm, parsed


@pytest.mark.parametrize("units", ["cm", "m", "mm"])
def test_fixed_length_motion_reads_back_exactly(units):
  poses, lengths = _walk()
  path = np.cumsum(np.full((poses.shape[0], 3), 7.0), axis=0)  # a root trajectory, mm
  moved = poses + path[:, None]
  motion = bvh_writer.poses_to_bvh(moved, lengths, frame_time=0.04, units=units)
  back, parsed = _read_back(bvh_writer.format_bvh(motion), bvh_writer.UNITS_PER_MM[units])
  # Text with 6 decimals: metres keep 1e-6 m = 1e-3 mm; well inside the 1 mm asked for.
  np.testing.assert_allclose(back, moved, atol=5e-3)
  assert parsed.frame_time == pytest.approx(0.04)
  assert all(c in ((), bvh_writer.ROTATION_CHANNELS) or c[3:] == bvh_writer.ROTATION_CHANNELS
             for c in parsed.channels)
  # The branch joints of the two joints with several children.
  assert {n for n in parsed.names if n.startswith(("Hip_", "Thorax_"))} == {
      "Hip_RHip", "Hip_LHip", "Hip_Spine", "Thorax_NeckNose", "Thorax_LShoulder",
      "Thorax_RShoulder"}


def test_varying_lengths_keep_every_bone_direction():
  poses, _ = _walk(seed=1)
  rng = np.random.default_rng(2)
  stretched = poses * rng.uniform(0.9, 1.1, size=(poses.shape[0], 1, 1))  # lengths vary
  stretched += rng.normal(scale=5.0, size=stretched.shape)
  stretched -= stretched[:, :1]
  lengths = bvh_writer.bone_lengths(stretched)
  expected = bvh_writer.fix_bone_lengths(stretched, lengths)
  text = bvh_writer.format_bvh(bvh_writer.poses_to_bvh(stretched, lengths, frame_time=0.02))
  back, _ = _read_back(text, 0.1)
  np.testing.assert_allclose(back, expected, atol=1e-3)
  # The fixed-length pose has the input's bone directions and the median lengths.
  parents = np.maximum(np.asarray(H36M17.parents), 0)
  bones_in = stretched - stretched[:, parents]
  bones_out = expected - expected[:, parents]
  cos = np.sum(bones_in * bones_out, -1)[:, 1:] / (
      np.linalg.norm(bones_in, axis=-1) * np.linalg.norm(bones_out, axis=-1))[:, 1:]
  np.testing.assert_allclose(cos, 1.0, atol=1e-9)
  np.testing.assert_allclose(np.linalg.norm(bones_out, axis=-1)[:, 1:],
                             np.broadcast_to(lengths[1:], (poses.shape[0], 16)), rtol=1e-9)


def test_rotation_helpers():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(50, 3))
  a /= np.linalg.norm(a, axis=-1, keepdims=True)
  b = rng.normal(size=(50, 3))
  b /= np.linalg.norm(b, axis=-1, keepdims=True)
  b[0], b[1] = -a[0], a[1]  # opposite and equal
  rot = bvh_writer._rotation_between(a, b)
  np.testing.assert_allclose(np.einsum("fij,fj->fi", rot, a), b, atol=1e-12)
  np.testing.assert_allclose(rot @ np.swapaxes(rot, 1, 2), np.broadcast_to(np.eye(3), rot.shape),
                             atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
  angles = np.stack([rng.uniform(-180, 180, 50), rng.uniform(-85, 85, 50),
                     rng.uniform(-180, 180, 50)], -1)
  matrices = bvh.euler_matrix(angles, "ZXY")
  np.testing.assert_allclose(bvh.euler_matrix(bvh_writer._euler_zxy(matrices), "ZXY"), matrices,
                             atol=1e-10)


def test_model_bone_lengths():
  from lift3d.pose_model.model import PoseModel

  poses, lengths = _walk(2)
  # Two components whose weighted mean (weights 1:3) is poses[0] / 0.4 m.
  second = poses[1] / 400.0
  first = (4 * poses[0] / 400.0 - 3 * second)
  model = PoseModel(mean=np.stack([first, second]), basis=np.zeros((2, 1, 17, 3)),
                    variances=np.ones((2, 1)), noise=np.ones(2), weights=np.array([0.25, 0.75]),
                    limb_scale=np.asarray(0.4))
  np.testing.assert_allclose(bvh_writer.model_bone_lengths(model), lengths, rtol=1e-9)


def test_bad_input():
  poses, lengths = _walk(3)
  with pytest.raises(ValueError, match="non-finite"):
    bvh_writer.poses_to_bvh(np.where(np.arange(17)[None, :, None] == 3, np.nan, poses), lengths,
                            frame_time=0.1)
  with pytest.raises(ValueError, match=r"\(F, 17, 3\)"):
    bvh_writer.poses_to_bvh(poses[:, :16], lengths, frame_time=0.1)
  with pytest.raises(ValueError, match="units"):
    bvh_writer.poses_to_bvh(poses, lengths, frame_time=0.1, units="inch")
