"""Tests of lift3d.data.h36m: cameras, readers, splits and the TFDS builder.

The builder tests write tiny fake copies of both input layouts (tests/data/
h36m_fake.py), prepare array_record files without TensorFlow, and read them
back through tfds.data_source and grain.
"""

import os
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lift3d.data import h36m
from lift3d.data.h36m import cameras as cams
from lift3d.data.h36m import sources
from lift3d.skeleton import H36M32_TO_17
from tests.data import h36m_fake as fake


def test_every_subject_has_four_calibrated_cameras():
  table = cams.load_cameras()
  assert sorted(table) == sorted(sources.ALL_SUBJECTS)
  for per_camera in table.values():
    assert tuple(per_camera) == cams.CAMERA_IDS
    for c in per_camera.values():
      np.testing.assert_allclose(c.rotation @ c.rotation.T, np.eye(3), atol=1e-6)
      assert np.linalg.det(c.rotation) == pytest.approx(1.0, abs=5e-07)
      # Cameras stand 1.4-1.7 m above the floor, 3-6 m from the room centre.
      assert 1400 <= c.centre[2] <= 1700
      assert 3000 <= np.linalg.norm(c.centre[:2]) <= 6000
      # ... and look at it: the room centre at 1 m is in front, in the image.
      p = cams.world_to_camera(np.array([0.0, 0.0, 1000.0]), c)
      assert p[2] > 3000
      px = cams.project(p, c)
      assert np.all((px > 0) & (px < c.image_size)), px


def test_quaternion_known_rotation():
  # 90° about z: (w, x, y, z) = (cos 45°, 0, 0, sin 45°) maps x to y.
  r = cams.quaternion_to_matrix([np.sqrt(0.5), 0, 0, np.sqrt(0.5)])
  np.testing.assert_allclose(r @ [1.0, 0, 0], [0, 1.0, 0], atol=1e-12)


def test_round_trip_and_known_points():
  c = cams.get_camera("S9", "55011271")
  rng = np.random.default_rng(0)
  x = rng.normal(scale=1000.0, size=(5, 17, 3))
  np.testing.assert_allclose(cams.camera_to_world(cams.world_to_camera(x, c), c), x, atol=1e-9)
  # The camera centre maps to the origin, and a point on the optical axis
  # projects to the principal point, with or without distortion.
  np.testing.assert_allclose(cams.world_to_camera(c.centre, c), 0.0, atol=1e-9)
  on_axis = cams.camera_to_world(np.array([0.0, 0.0, 4000.0]), c)
  np.testing.assert_allclose(cams.project_world(on_axis, c), c.principal_point, atol=1e-9)


def test_projection_formulas():
  c = cams.get_camera("S1", "54138969")
  p = np.array([300.0, -200.0, 4000.0])
  x, y = p[0] / p[2], p[1] / p[2]
  np.testing.assert_allclose(cams.project(p, c, distortion=False),
                             c.focal_length * [x, y] + c.principal_point)
  # The dataset's distortion model, term by term.
  k1, k2, k3 = c.radial
  p1, p2 = c.tangential
  r2 = x * x + y * y
  radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
  tan = p1 * y + p2 * x
  want = np.array([x * (radial + tan) + p2 * r2, y * (radial + tan) + p1 * r2])
  np.testing.assert_allclose(cams.project(p, c), c.focal_length * want + c.principal_point)
  zero = c._replace(radial=np.zeros(3), tangential=np.zeros(2))
  np.testing.assert_allclose(cams.project(p, zero), cams.project(p, c, distortion=False))


def test_frames():
  # Camera "up" (y = -1) is lift-frame up; depth points to the viewer.
  np.testing.assert_allclose(cams.camera_to_lift([0.0, -1.0, 5.0]), [0.0, 1.0, -5.0])
  np.testing.assert_allclose(cams.world_to_model([1.0, 2.0, 3.0]), [1.0, 3.0, -2.0])
  # A level camera looking along world +y: E is the identity.
  level = cams.Camera("x", np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]), np.zeros(3),
                      np.ones(2), np.zeros(2), np.zeros(3), np.zeros(2), np.ones(2))
  np.testing.assert_allclose(cams.lift_rotation(level), np.eye(3), atol=1e-12)
  # In general E maps model-frame poses to the lift frame of that camera.
  c = cams.get_camera("S11", cams.FRONTAL_CAMERA)
  e = cams.lift_rotation(c)
  assert np.linalg.det(e) == pytest.approx(1.0, abs=5e-07)
  w = np.random.default_rng(1).normal(size=(17, 3)) * 500
  lifted = cams.camera_to_lift(cams.world_to_camera(w, c))
  model = cams.world_to_model(w)
  np.testing.assert_allclose(lifted - lifted.mean(0), (model - model.mean(0)) @ e.T, atol=1e-9)


def test_same_up_axis_as_mocap_reader():
  mocap = pytest.importorskip("lift3d.data.mocap")
  if hasattr(mocap, "Z_UP_TO_Y_UP"):
    np.testing.assert_allclose(cams.WORLD_TO_MODEL, mocap.Z_UP_TO_Y_UP)


def test_bad_shapes_and_names():
  c = cams.get_camera("S1", "54138969")
  with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
    cams.world_to_camera(np.zeros((17, 2)), c)
  with pytest.raises(ValueError, match="subject 'S2'"):
    cams.get_camera("S2", "54138969")
  with pytest.raises(ValueError, match="unknown camera"):
    cams.get_camera("S1", "123")


def test_action_names_and_trials():
  assert sources.parse_action("TakingPhoto 1") == ("Photo", 1)
  assert sources.parse_action("WalkDog") == ("WalkDog", 0)
  assert sources.parse_action("WalkingDog 2") == ("WalkDog", 2)
  trials = sources.trial_numbers(["Directions 1", "Directions", "Discussion 1",
                                  "Discussion 2", "Photo"])
  assert trials == {"Directions": 1, "Directions 1": 2, "Discussion 1": 1,
                            "Discussion 2": 2, "Photo": 1}


def test_missing_or_incomplete_manual_dir():
  with tempfile.TemporaryDirectory() as d:
    with pytest.raises(sources.ManualDirError) as e:
      sources.detect_layout(os.path.join(d, "nothing"))
    msg = str(e.value)
    for expected in ("data_3d_h36m.npz", "data_2d_h36m_gt.npz", "D3_Positions_mono",
                     "D2_Positions", "S11", "--manual_dir"):
      assert expected in msg
    fake.write_cdf(d, subjects=("S1", "S5"), with_2d=False)
    with pytest.raises(sources.ManualDirError, match=r"not for \['S6'"):
      sources.detect_layout(d)
    # The builder raises the same single error.
    with tempfile.TemporaryDirectory() as data_dir:
      with pytest.raises(sources.ManualDirError, match="D3_Positions_mono"):
        h36m.prepare(data_dir, os.path.join(d, "missing"))


def _expected(subject, raw, camera_index, frames):
  """Planted values of some frames: world mm, camera mm, pixels (17 joints)."""
  world = fake.world_poses(subject, raw).astype(np.float64)[:, list(H36M32_TO_17)] * 1000
  pc, px = fake.projections(subject, raw, joints32=False)[camera_index]
  return world[frames], pc[frames], px[frames]


@pytest.fixture(scope="module")
def prepared():
  """Both layouts prepared for protocol #1 (and the npz one for #2, #3)."""
  with tempfile.TemporaryDirectory() as root:
    npz_dir = fake.write_npz(os.path.join(root, "manual_npz"))
    cdf_dir = fake.write_cdf(os.path.join(root, "manual_cdf"))
    out = {}
    for layout, manual in (("npz", npz_dir), ("cdf", cdf_dir)):
      data_dir = os.path.join(root, f"tfds_{layout}")
      protocols = ("protocol1", "protocol2", "protocol3") if layout == "npz" else ("protocol1",)
      for p in protocols:
        h36m.prepare(data_dir, manual, p)
        src = h36m.data_source(data_dir, p, "test")
        out[(layout, p, "test")] = (src, h36m.read_arrays(src, batch_size=64))
      train = h36m.data_source(data_dir, "protocol1", "train")
      out[(layout, "protocol1", "train")] = (train, h36m.read_arrays(train, batch_size=64))
    # A non-default training stride makes a config of its own; once prepared,
    # the records are reused without the manual directory.
    data_dir = os.path.join(root, "tfds_npz")
    builder = h36m.prepare(data_dir, npz_dir, "protocol2", train_frame_step=10)
    again = h36m.prepare(data_dir, os.path.join(root, "gone"), "protocol2", train_frame_step=10)
    assert again.info.full_name == builder.info.full_name == "lift3d_h36m/protocol2_train10/1.0.0"
    train10 = builder.as_data_source()["train"]
    out[("npz", "protocol2_train10", "train")] = (train10, h36m.read_arrays(train10))
    yield out


def _num_expected(subjects, cameras, trials, step):
  n = 0
  for _ in subjects:
    for raw in fake.RAW_ACTIONS:
      trial = 2 if raw == "Directions 1" else 1
      if trial in trials:
        n += len(cameras) * len(range(0, fake.num_frames("S1", raw), step))
  return n


def test_protocol_sizes(prepared):
  cam4 = cams.CAMERA_IDS
  _, p1 = prepared[("npz", "protocol1", "test")]
  assert len(p1["frame"]) == _num_expected(("S9", "S11"), cam4, (1, 2), 5)
  assert set(p1["subject"]) == {"S9", "S11"}
  assert np.all(p1["frame"] % 5 == 0)
  _, p2 = prepared[("npz", "protocol2", "test")]
  assert len(p2["frame"]) == _num_expected(("S11",), cam4, (1, 2), 64)
  assert set(p2["frame"]) == {0, 64}
  _, p3 = prepared[("npz", "protocol3", "test")]
  assert len(p3["frame"]) == _num_expected(("S9", "S11"), (cams.FRONTAL_CAMERA,), (1,), 1)
  assert set(p3["camera"]) == {cams.FRONTAL_CAMERA}
  assert set(p3["subaction"]) == {1}
  _, train = prepared[("npz", "protocol1", "train")]
  assert set(train["subject"]) == set(h36m.TRAIN_SUBJECTS)
  assert len(train["frame"]) == _num_expected(h36m.TRAIN_SUBJECTS, cam4[:1], (1, 2), 5)
  assert set(train["camera"]) == {h36m.builder.TRAIN_CAMERA}
  _, train10 = prepared[("npz", "protocol2_train10", "train")]
  assert len(train10["frame"]) == _num_expected(h36m.TRAIN_SUBJECTS, cam4[:1], (1, 2), 10)
  assert np.all(train10["frame"] % 10 == 0)


@pytest.mark.parametrize("layout", ["npz", "cdf"])
def test_values_end_to_end(prepared, layout):
  src, arrays = prepared[(layout, "protocol1", "test")]
  # Random access through tfds.data_source gives the same record as grain.
  i = len(src) // 3
  rec = src[i]
  np.testing.assert_array_equal(rec["pose3d_camera"], arrays["pose3d_camera"][i])
  assert rec["subject"].decode() == arrays["subject"][i]
  for subject in ("S9", "S11"):
    for raw in fake.RAW_ACTIONS:
      for c, cid in enumerate(cams.CAMERA_IDS):
        raw_name = raw if layout == "cdf" else raw.replace("TakingPhoto", "Photo")
        sel = ((arrays["subject"] == subject) & (arrays["raw_action"] == raw_name)
               & (arrays["camera"] == cid))
        frames = arrays["frame"][sel]
        np.testing.assert_array_equal(frames, np.arange(0, fake.num_frames(subject, raw), 5))
        world, pc, px = _expected(subject, raw, c, frames)
        np.testing.assert_allclose(arrays["pose3d_world"][sel], world, atol=0.05)
        np.testing.assert_allclose(arrays["pose3d_camera"][sel], pc, atol=0.05)
        np.testing.assert_allclose(arrays["pose2d_gt"][sel], px, atol=1e-3)
        action = set(arrays["action"][sel])
        assert action == {"Photo" if "Photo" in raw else "Directions"}
        assert set(arrays["subaction"][sel]) == {2 if raw == "Directions 1" else 1}
        if layout == "npz":
          assert arrays["has_detection"][sel].all()
          np.testing.assert_allclose(arrays["pose2d_det"][sel], px + fake.DETECTION_OFFSET,
                                     atol=1e-3)
        else:
          assert not arrays["has_detection"][sel].any()
          assert np.isnan(arrays["pose2d_det"][sel]).all()


def test_layouts_agree_and_grain_pipeline(prepared):
  import grain

  npz_src, npz = prepared[("npz", "protocol1", "train")]
  _, cdf = prepared[("cdf", "protocol1", "train")]
  order = np.lexsort((npz["frame"], npz["camera"], npz["subaction"], npz["subject"]))
  order_c = np.lexsort((cdf["frame"], cdf["camera"], cdf["subaction"], cdf["subject"]))
  for key in ("pose3d_world", "pose3d_camera", "pose2d_gt"):
    np.testing.assert_allclose(npz[key][order], cdf[key][order_c], atol=0.05)
  # A shuffled, batched grain pipeline over the data source.
  ds = (grain.MapDataset.source(npz_src).shuffle(seed=0)
        .map(lambda ex: ex["pose3d_world"] / 1000.0).batch(16))
  batch = ds[0]
  assert batch.shape == (16, 17, 3)
  assert np.all(np.abs(batch) < 5.0)  # metres, inside the room
  assert isinstance(tfds.core.DatasetInfo, type)


