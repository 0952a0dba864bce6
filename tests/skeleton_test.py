"""Tests of lift3d.skeleton: the H36M17 tree, its subsets, mirror map and converters."""

import numpy as np
import pytest

from lift3d import skeleton as sk
from lift3d.skeleton import H36M17

NAMES = ("Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax",
         "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist")


def idx(name):
  return NAMES.index(name)


# --- The skeleton ------------------------------------------------------------


def test_h36m17_definition():
  assert H36M17.names == NAMES
  assert H36M17.parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
  assert H36M17.num_joints == 17
  assert H36M17.index("Thorax") == 8
  with pytest.raises(ValueError, match="no joint 'Nose'"):
    H36M17.index("Nose")


def test_limbs():
  limbs = H36M17.limbs
  assert len(limbs) == 16
  named = {(NAMES[p], NAMES[c]) for p, c in limbs}
  for pair in [("Hip", "RHip"), ("RHip", "RKnee"), ("RKnee", "RFoot"), ("Hip", "Spine"),
               ("Spine", "Thorax"), ("Thorax", "Neck/Nose"), ("Neck/Nose", "Head"),
               ("Thorax", "LShoulder"), ("LShoulder", "LElbow"), ("LElbow", "LWrist"),
               ("Thorax", "RShoulder"), ("RElbow", "RWrist")]:
    assert pair in named, pair
  # A tree: every non-root joint is the child of exactly one limb.
  assert sorted(c for _, c in limbs) == list(range(1, 17))


def test_mirror_permutation():
  perm = np.array(H36M17.mirror_permutation)
  assert sorted(perm) == list(range(17))
  np.testing.assert_array_equal(perm[perm], np.arange(17))  # an involution
  for i, j in enumerate(perm):
    name, twin = NAMES[i], NAMES[j]
    if name[0] == "L" and name[1].isupper():
      assert twin == "R" + name[1:]
    elif name[0] == "R" and name[1].isupper():
      assert twin == "L" + name[1:]
    else:  # centre joints stay
      assert i == j, name
  # Twins have mirrored parents, so the mirror of a skeleton is the skeleton.
  for i, p in enumerate(H36M17.parents):
    if p >= 0:
      assert H36M17.parents[perm[i]] == perm[p]


def test_eval14():
  assert len(sk.EVAL14_INDICES) == 14
  assert sk.H36M_EVAL14.num_joints == 14
  dropped = set(NAMES) - set(sk.H36M_EVAL14.names)
  assert dropped == {"Hip", "Spine", "Neck/Nose"}
  assert sk.H36M_EVAL14.names == tuple(NAMES[i] for i in sk.EVAL14_INDICES)
  assert list(sk.EVAL14_INDICES) == sorted(sk.EVAL14_INDICES)
  # Re-parented: hips and thorax lose their dropped parents (roots); Head's
  # parent Neck/Nose is dropped, so it hangs from Thorax.
  sub = sk.H36M_EVAL14
  parent = {sub.names[i]: (sub.names[p] if p >= 0 else None) for i, p in enumerate(sub.parents)}
  assert parent["RHip"] is None and parent["LHip"] is None and parent["Thorax"] is None
  assert parent["Head"] == "Thorax"
  assert parent["RKnee"] == "RHip" and parent["LWrist"] == "LElbow"
  assert len(sub.left_right) == 6
  for a, b in sub.left_right:
    assert sub.names[a][1:] == sub.names[b][1:] and sub.names[a][0] == "L"


def test_subset_reparents_to_nearest_kept_ancestor():
  chain = sk.Skeleton("chain", ("a", "b", "c", "d", "e"), (-1, 0, 1, 2, 1), ())
  sub = chain.subset([0, 3, 4], name="s")
  assert sub.name == "s" and sub.names == ("a", "d", "e")
  assert sub.parents == (-1, 0, 0)  # d: c, b dropped -> a; e: b dropped -> a
  sub = chain.subset([3, 2])  # order kept as given; d's parent c is kept
  assert sub.names == ("d", "c") and sub.parents == (1, -1)


def test_skeleton_validation():
  with pytest.raises(ValueError, match="2 names but 1 parents"):
    sk.Skeleton("x", ("a", "b"), (-1,), ())
  with pytest.raises(ValueError, match="invalid parent"):
    sk.Skeleton("x", ("a", "b"), (-1, 5), ())
  with pytest.raises(ValueError, match="invalid parent"):
    sk.Skeleton("x", ("a", "b"), (-1, 1), ())
  with pytest.raises(ValueError, match="two left/right pairs"):
    sk.Skeleton("x", ("a", "b", "c"), (-1, 0, 0), ((1, 2), (2, 1)))
  with pytest.raises(ValueError, match="two left/right pairs"):
    sk.Skeleton("x", ("a", "b", "c"), (-1, 0, 0), ((1, 1),))
  with pytest.raises(ValueError, match="unknown joints"):
    sk.Skeleton("x", ("a", "b", "c"), (-1, 0, 0), ((1, 7),))
  # a -> b -> c -> b: a cycle (before the check, subset([0]) looped forever).
  with pytest.raises(ValueError, match="joint 0 form a cycle"):
    sk.Skeleton("x", ("a", "b", "c"), (1, 2, 1), ())


# --- Converters --------------------------------------------------------------


def test_h36m32():
  # Joint s of the source at (s, 2s, -s): the output names the source joint.
  source = np.stack([np.arange(32), 2 * np.arange(32), -np.arange(32)], -1).astype(np.float32)
  out = sk.convert(source, "h36m32")
  expected = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]  # issue #3
  np.testing.assert_array_equal(out.keypoints[:, 0], expected)
  np.testing.assert_array_equal(out.keypoints[:, 1], 2 * np.array(expected))
  assert out.keypoints.dtype == np.float32
  np.testing.assert_array_equal(out.confidence, np.ones(17))
  assert not out.estimated.any()


def test_h36m17_identity_and_batching():
  rng = np.random.default_rng(0)
  poses = rng.normal(size=(2, 3, 17, 2))
  out = sk.convert(poses, "h36m17")
  np.testing.assert_array_equal(out.keypoints, poses)
  assert out.confidence.shape == (2, 3, 17)


def _coco_pose():
  """A hand-made upright COCO pose (x right, y up, metres) and its H36M17 answer."""
  c = dict(
      nose=(0.0, 1.60), left_eye=(0.03, 1.63), right_eye=(-0.03, 1.63),
      left_ear=(0.07, 1.60), right_ear=(-0.07, 1.60),
      left_shoulder=(0.20, 1.40), right_shoulder=(-0.20, 1.40),
      left_elbow=(0.25, 1.10), right_elbow=(-0.25, 1.10),
      left_wrist=(0.27, 0.85), right_wrist=(-0.27, 0.85),
      left_hip=(0.10, 0.90), right_hip=(-0.10, 0.90),
      left_knee=(0.11, 0.50), right_knee=(-0.11, 0.50),
      left_ankle=(0.12, 0.08), right_ankle=(-0.12, 0.08),
  )
  keypoints = np.array([c[n] for n in sk.COCO17_NAMES])
  expected = {
      "Hip": (0.0, 0.90),  # hip midpoint
      "Thorax": (0.0, 1.40),  # shoulder midpoint
      "Spine": (0.0, 1.15),  # midpoint of pelvis and thorax
      # Thorax + 1.5 (ear midpoint - thorax) = 1.40 + 1.5 * 0.20.
      "Head": (0.0, 1.70),
      "Neck/Nose": c["nose"],
      "RHip": c["right_hip"], "RKnee": c["right_knee"], "RFoot": c["right_ankle"],
      "LHip": c["left_hip"], "LKnee": c["left_knee"], "LFoot": c["left_ankle"],
      "LShoulder": c["left_shoulder"], "LElbow": c["left_elbow"], "LWrist": c["left_wrist"],
      "RShoulder": c["right_shoulder"], "RElbow": c["right_elbow"], "RWrist": c["right_wrist"],
  }
  return keypoints, np.array([expected[n] for n in NAMES])


def test_coco17():
  keypoints, expected = _coco_pose()
  out = sk.convert(keypoints, "coco17")
  np.testing.assert_allclose(out.keypoints, expected, atol=1e-12)
  estimated = {NAMES[i] for i in np.flatnonzero(out.estimated)}
  assert estimated == {"Hip", "Spine", "Thorax", "Head"}
  # Derived joints move with their sources: shift the ears up by 0.1, the head
  # top moves by 1.5 x 0.1 and nothing else moves.
  moved = keypoints.copy()
  moved[[sk.COCO17_NAMES.index("left_ear"), sk.COCO17_NAMES.index("right_ear")], 1] += 0.1
  delta = sk.convert(moved, "coco17").keypoints - out.keypoints
  np.testing.assert_allclose(delta[idx("Head")], (0.0, 0.15), atol=1e-12)
  delta[idx("Head")] = 0
  np.testing.assert_allclose(delta, 0.0, atol=1e-12)


def test_coco17_3d_is_affine():
  # The recipes are affine (weights sum to one): translating the input
  # translates the output, in 3D too.
  keypoints, _ = _coco_pose()
  pose3d = np.concatenate([keypoints, np.linspace(0, 1, 17)[:, None]], -1)
  shift = np.array([3.0, -2.0, 5.0])
  a = sk.convert(pose3d, "coco17").keypoints
  b = sk.convert(pose3d + shift, "coco17").keypoints
  np.testing.assert_allclose(b - a, np.broadcast_to(shift, (17, 3)), atol=1e-12)


def test_mpii16():
  # Source joint s at (s, 10 + s).
  source = np.stack([np.arange(16.0), 10.0 + np.arange(16.0)], -1)
  where = {n: source[i] for i, n in enumerate(sk.MPII16_NAMES)}
  out = sk.convert(source, "mpii16")
  direct = {
      "Hip": "pelvis", "RHip": "r_hip", "RKnee": "r_knee", "RFoot": "r_ankle",
      "LHip": "l_hip", "LKnee": "l_knee", "LFoot": "l_ankle", "Thorax": "thorax",
      "Head": "head_top", "LShoulder": "l_shoulder", "LElbow": "l_elbow", "LWrist": "l_wrist",
      "RShoulder": "r_shoulder", "RElbow": "r_elbow", "RWrist": "r_wrist",
  }
  for target, source_name in direct.items():
    np.testing.assert_array_equal(out.keypoints[idx(target)], where[source_name], err_msg=target)
  np.testing.assert_allclose(out.keypoints[idx("Spine")], (where["pelvis"] + where["thorax"]) / 2)
  np.testing.assert_allclose(
      out.keypoints[idx("Neck/Nose")], (where["upper_neck"] + where["head_top"]) / 2)
  assert {NAMES[i] for i in np.flatnonzero(out.estimated)} == {"Spine", "Neck/Nose"}


def test_confidence_propagation():
  keypoints, expected = _coco_pose()
  conf = np.linspace(0.2, 1.0, 17).astype(np.float32)
  c = dict(zip(sk.COCO17_NAMES, conf, strict=True))
  out = sk.convert(keypoints, "coco17", conf)
  assert out.confidence[idx("RWrist")] == pytest.approx(c["right_wrist"])
  assert out.confidence[idx("Hip")] == pytest.approx(min(c["left_hip"], c["right_hip"]))
  assert out.confidence[idx("Spine")] == pytest.approx(
      min(c["left_hip"], c["right_hip"], c["left_shoulder"], c["right_shoulder"]))
  assert out.confidence[idx("Head")] == pytest.approx(
      min(c["left_ear"], c["right_ear"], c["left_shoulder"], c["right_shoulder"]))
  np.testing.assert_allclose(out.keypoints, expected, atol=1e-12)  # values unchanged


def test_missing_source_joint_gives_nan_and_zero_confidence():
  keypoints, expected = _coco_pose()
  conf = np.ones(17, np.float32)
  left_ear = sk.COCO17_NAMES.index("left_ear")
  keypoints[left_ear] = np.nan
  conf[left_ear] = 0.0
  out = sk.convert(keypoints, "coco17", conf)
  assert np.all(np.isnan(out.keypoints[idx("Head")]))
  assert out.confidence[idx("Head")] == 0.0
  others = [i for i in range(17) if i != idx("Head")]
  np.testing.assert_allclose(out.keypoints[others], expected[others], atol=1e-12)
  np.testing.assert_array_equal(out.confidence[others], 1.0)
  # A NaN joint with positive confidence counts as missing too; a joint with
  # confidence 0 but a finite value is dropped as well.
  conf[left_ear] = 0.9
  assert sk.convert(keypoints, "coco17", conf).confidence[idx("Head")] == 0.0
  keypoints, _ = _coco_pose()
  conf[:] = 1.0
  conf[sk.COCO17_NAMES.index("right_wrist")] = 0.0
  out = sk.convert(keypoints, "coco17", conf)
  assert out.confidence[idx("RWrist")] == 0.0 and np.all(np.isnan(out.keypoints[idx("RWrist")]))


def test_converter_errors():
  with pytest.raises(ValueError, match="unknown layout 'openpose'"):
    sk.convert(np.zeros((25, 2)), "openpose")
  with pytest.raises(ValueError, match=r"expects keypoints \(\.\.\., 17, D\), got \(16, 2\)"):
    sk.convert(np.zeros((16, 2)), "coco17")
  with pytest.raises(ValueError, match="32"):
    sk.convert(np.zeros((4, 17, 3)), "h36m32")
  with pytest.raises(ValueError, match="expects keypoints"):
    sk.convert(np.zeros(17), "h36m17")
  with pytest.raises(ValueError, match="confidence shape"):
    sk.convert(np.zeros((16, 2)), "mpii16", np.ones(17))


def test_check_poses_shapes_batching_and_tracers():
  import jax

  from lift3d.skeleton import check_poses

  good = np.zeros((2, 17, 3))
  check_poses(good)
  check_poses(good[0])  # (..., L, 3): a single pose is fine
  with pytest.raises(ValueError, match=r"\(N, 17, 3\) with N ≥ 1"):
    check_poses(good[0], batched=True)
  with pytest.raises(ValueError, match=r"\(N, 17, 3\) with N ≥ 1"):
    check_poses(good[:0], batched=True)
  with pytest.raises(ValueError, match=r"expected targets \(\.\.\., 17, 3\)"):
    check_poses(np.zeros((2, 16, 3)), what="targets")
  bad = good.copy()
  bad[1, 3, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    check_poses(bad)
  jax.jit(lambda p: check_poses(p) or p)(bad)  # no finiteness check on tracers
