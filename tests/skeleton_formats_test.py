"""The detector layouts of lift3d.skeleton: OpenPose BODY_25, MediaPipe 33, Halpe-26.

Each fixture is built by hand from one known H36M17 pose: the detector's
joints are placed where the H36M17 pose has them (ears, eyes and toes around
the head and feet), so that mapping back must give the H36M17 pose, and
lifting the mapped pose must give what lifting the H36M17 pose gives.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from lift3d import skeleton as sk
from lift3d.lifting import lift
from lift3d.pose_model.model import PoseModel

# A standing person in pixels (x right, y down), 17 joints in H36M17 order. The
# joints that the detectors derive are placed where the derivations put them:
# Hip at the hip midpoint, Thorax at the shoulder midpoint, Spine half way.
_J = {
    "RHip": (288.0, 300.0), "RKnee": (292.0, 380.0), "RFoot": (296.0, 455.0),
    "LHip": (328.0, 302.0), "LKnee": (335.0, 378.0), "LFoot": (330.0, 458.0),
    "RShoulder": (272.0, 182.0), "RElbow": (262.0, 240.0),
    "RWrist": (266.0, 292.0), "LShoulder": (344.0, 180.0), "LElbow": (360.0, 236.0),
    "LWrist": (372.0, 286.0), "Neck/Nose": (309.0, 150.0), "Head": (310.0, 122.0),
}
_J["Hip"] = tuple((np.add(_J["RHip"], _J["LHip"]) / 2).tolist())
_J["Thorax"] = tuple((np.add(_J["RShoulder"], _J["LShoulder"]) / 2).tolist())
_J["Spine"] = tuple((np.add(_J["Hip"], _J["Thorax"]) / 2).tolist())
H36M = np.array([_J[n] for n in sk.H36M17.names])
# Where the ears must be for the head-top extrapolation to land on Head:
# Head = Thorax + 1.5 (ear midpoint - Thorax).
_EAR_MID = (H36M[sk.H36M17.index("Head")] + 0.5 * H36M[sk.H36M17.index("Thorax")]) / 1.5


def _off(dx, dy):
  return np.array([dx, dy], float)


def _h(name):
  return H36M[sk.H36M17.index(name)]


def _coco_like():
  """COCO-named joints from the H36M17 pose."""
  return {
      "nose": _h("Neck/Nose"), "left_eye": _h("Neck/Nose") + _off(6, -6),
      "right_eye": _h("Neck/Nose") + _off(-6, -6), "left_ear": _EAR_MID + _off(12, 0),
      "right_ear": _EAR_MID - _off(12, 0), "left_shoulder": _h("LShoulder"),
      "right_shoulder": _h("RShoulder"), "left_elbow": _h("LElbow"), "right_elbow": _h("RElbow"),
      "left_wrist": _h("LWrist"), "right_wrist": _h("RWrist"), "left_hip": _h("LHip"),
      "right_hip": _h("RHip"), "left_knee": _h("LKnee"), "right_knee": _h("RKnee"),
      "left_ankle": _h("LFoot"), "right_ankle": _h("RFoot"),
  }


def body25_fixture():
  j = {
      "Nose": _h("Neck/Nose"), "Neck": _h("Thorax"), "MidHip": _h("Hip"),
      "REye": _h("Neck/Nose") + _off(-6, -6), "LEye": _h("Neck/Nose") + _off(6, -6),
      "REar": _EAR_MID - _off(12, 0), "LEar": _EAR_MID + _off(12, 0),
      "LBigToe": _h("LFoot") + _off(14, 8), "LSmallToe": _h("LFoot") + _off(9, 9),
      "LHeel": _h("LFoot") + _off(-6, 4), "RBigToe": _h("RFoot") + _off(-14, 8),
      "RSmallToe": _h("RFoot") + _off(-9, 9), "RHeel": _h("RFoot") + _off(6, 4),
      "RAnkle": _h("RFoot"), "LAnkle": _h("LFoot"),
  }
  for name in ("RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip",
               "RKnee", "LHip", "LKnee"):
    j[name] = _h(name)
  return np.array([j[n] for n in sk.BODY25_NAMES])


def mediapipe_fixture(width, height):
  """(33, 4) normalised [x, y, z, visibility] landmarks."""
  j = _coco_like()
  nose = _h("Neck/Nose")
  extra = {
      "left_eye_inner": nose + _off(3, -6), "left_eye_outer": nose + _off(9, -6),
      "right_eye_inner": nose + _off(-3, -6), "right_eye_outer": nose + _off(-9, -6),
      "mouth_left": nose + _off(4, 8), "mouth_right": nose + _off(-4, 8),
  }
  for side, s in (("left", 1), ("right", -1)):
    wrist, ankle = j[f"{side}_wrist"], j[f"{side}_ankle"]
    extra |= {f"{side}_pinky": wrist + _off(4 * s, 14), f"{side}_index": wrist + _off(2 * s, 16),
              f"{side}_thumb": wrist + _off(-2 * s, 12), f"{side}_heel": ankle + _off(-6 * s, 4),
              f"{side}_foot_index": ankle + _off(14 * s, 8)}
  j |= extra
  pixels = np.array([j[n] for n in sk.MEDIAPIPE33_NAMES])
  out = np.zeros((33, 4))
  out[:, :2] = (pixels + 0.5) / (width, height)  # fractions from the top-left corner
  out[:, 2] = -0.1  # depth: ignored
  out[:, 3] = 0.9
  return out


def halpe26_fixture():
  j = _coco_like()
  j |= {"head": _h("Head"), "neck": _h("Thorax"), "hip": _h("Hip")}
  for side, s, foot in (("left", 1, "LFoot"), ("right", -1, "RFoot")):
    j |= {f"{side}_big_toe": _h(foot) + _off(14 * s, 8), f"{side}_small_toe": _h(foot) + _off(9 * s, 9),
          f"{side}_heel": _h(foot) + _off(-6 * s, 4)}
  return np.array([j[n] for n in sk.HALPE26_NAMES])


def _model(seed=0, k=2, j=3, num_joints=17):
  rng = np.random.default_rng(seed)
  mean = rng.normal(size=(k, num_joints, 3)) * 0.25
  mean -= mean.mean(axis=1, keepdims=True)
  basis = np.stack([np.linalg.qr(rng.normal(size=(3 * num_joints, j)))[0].T.reshape(
      j, num_joints, 3) for _ in range(k)])
  return PoseModel(mean=jnp.asarray(mean, jnp.float32), basis=jnp.asarray(basis, jnp.float32),
                   variances=jnp.full((k, j), 0.005, jnp.float32),
                   noise=jnp.full((k,), 1e-4, jnp.float32),
                   weights=jnp.full((k,), 0.5, jnp.float32),
                   limb_scale=jnp.asarray(0.5, jnp.float32))


def test_layout_tables():
  for name, (weights, estimated) in sk.LAYOUTS.items():
    assert weights.shape == (17, len(sk.LAYOUT_NAMES[name])), name
    # Every target is an affine combination of source joints (weights sum to 1),
    # so the mapping commutes with translation and scaling of the image.
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12, err_msg=name)
    assert estimated.shape == (17,)
  assert len(sk.BODY25_NAMES) == 25 and len(set(sk.BODY25_NAMES)) == 25
  assert len(sk.MEDIAPIPE33_NAMES) == 33 and len(set(sk.MEDIAPIPE33_NAMES)) == 33
  assert len(sk.HALPE26_NAMES) == 26 and len(set(sk.HALPE26_NAMES)) == 26
  derived = {name: {sk.H36M17.names[i] for i in np.flatnonzero(sk.LAYOUTS[name][1])}
             for name in ("body25", "mediapipe33", "halpe26")}
  assert derived["body25"] == {"Spine", "Head"}
  assert derived["mediapipe33"] == {"Hip", "Spine", "Thorax", "Head"}
  assert derived["halpe26"] == {"Spine"}


@pytest.mark.parametrize("layout", ["body25", "mediapipe33", "halpe26"])
def test_fixture_maps_back_to_the_h36m17_pose_and_lifts_the_same(layout):
  width, height = 640, 480
  if layout == "body25":
    keypoints, confidence = body25_fixture(), np.full(25, 0.8)
  elif layout == "halpe26":
    keypoints, confidence = halpe26_fixture(), np.full(26, 0.8)
  else:
    keypoints, confidence = sk.mediapipe_to_pixels(mediapipe_fixture(width, height),
                                                   (width, height))
  out = sk.convert(keypoints, layout, confidence)
  # Pixel values of a few hundred: float64 sums, exact to ~1e-12.
  np.testing.assert_allclose(out.keypoints, H36M, atol=1e-9)
  np.testing.assert_allclose(out.confidence, np.full(17, 0.8 if layout != "mediapipe33" else 0.9),
                             rtol=1e-6)
  model = _model()
  ours = lift(model, out.keypoints.astype(np.float32), out.confidence, num_yaws=24)
  truth = lift(model, H36M.astype(np.float32), out.confidence, num_yaws=24)
  # The hand model is random, not human: both lift (plausible or not) and agree.
  assert int(ours.component) >= 0 and bool(ours.valid) == bool(truth.valid)
  np.testing.assert_allclose(np.asarray(ours.pose3d), np.asarray(truth.pose3d), atol=1e-3)
  assert int(ours.component) == int(truth.component)


def test_missing_ear_hides_only_the_head():
  keypoints, confidence = body25_fixture(), np.ones(25)
  confidence[sk.BODY25_NAMES.index("LEar")] = 0.0
  keypoints[sk.BODY25_NAMES.index("LEar")] = 0.0  # OpenPose writes (0, 0, 0)
  confidence[sk.BODY25_NAMES.index("LBigToe")] = 0.0  # unused by the mapping
  out = sk.convert(keypoints, "body25", confidence)
  head = sk.H36M17.index("Head")
  assert out.confidence[head] == 0 and np.all(np.isnan(out.keypoints[head]))
  others = np.arange(17) != head
  np.testing.assert_allclose(out.keypoints[others], H36M[others], atol=1e-9)
  np.testing.assert_array_equal(out.confidence[others], 1.0)


def test_mediapipe_to_pixels():
  landmarks = np.array([[0.5, 0.25, 0.0, 0.7, 0.9]] * 33)
  pixels, visibility = sk.mediapipe_to_pixels(landmarks[None], (640, 480))
  # 0.5 of 640 px is the left edge of pixel 320, i.e. 319.5 in pixel-centre coordinates.
  np.testing.assert_allclose(pixels[0, 0], (319.5, 119.5))
  np.testing.assert_allclose(visibility, np.full((1, 33), 0.7))
  assert sk.mediapipe_to_pixels(landmarks[:, :3], (640, 480))[1] is None
  with pytest.raises(ValueError, match=r"\(\.\.\., 33, 2\.\.5\)"):
    sk.mediapipe_to_pixels(np.zeros((17, 2)), (640, 480))
  with pytest.raises(ValueError, match="positive"):
    sk.mediapipe_to_pixels(landmarks, (0, 480))
