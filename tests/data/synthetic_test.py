"""Tests of lift3d.data.synthetic: the rendered-people data source."""

import dataclasses
import math
import pickle

import grain
import grain.python as grain_python
import numpy as np
import pytest

from lift3d.data import synthetic
from lift3d.skeleton import H36M17

J = {name: i for i, name in enumerate(H36M17.names)}

# A standing person, metres, y up, facing +z (so its right side is at -x).
REST = np.array([
    [0.0, 0.95, 0.0],  # Hip
    [-0.12, 0.93, 0.0], [-0.13, 0.5, 0.02], [-0.14, 0.08, 0.0],  # right leg
    [0.12, 0.93, 0.0], [0.13, 0.5, 0.02], [0.14, 0.08, 0.0],  # left leg
    [0.0, 1.18, 0.0], [0.0, 1.45, 0.0], [0.0, 1.58, 0.08], [0.0, 1.72, 0.0],
    [0.18, 1.42, 0.0], [0.2, 1.15, 0.0], [0.22, 0.9, 0.05],  # left arm
    [-0.18, 1.42, 0.0], [-0.2, 1.15, 0.0], [-0.22, 0.9, 0.05],  # right arm
])


def procedural_poses(num: int, seed: int = 0) -> np.ndarray:
  """(num, 17, 3) jittered standing poses anywhere on the floor, any heading."""
  rng = np.random.default_rng(seed)
  poses = REST + rng.normal(0.0, 0.05, (num, 17, 3))
  heading = rng.uniform(-math.pi, math.pi, num)
  c, s = np.cos(heading), np.sin(heading)
  rot = np.zeros((num, 3, 3))
  rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1, -s, c
  offset = rng.uniform(-3, 3, (num, 1, 3)) * (1, 0, 1)
  return (np.einsum("nij,nlj->nli", rot, poses) + offset).astype(np.float32)


POSES = procedural_poses(12)
SIZE = (64, 80)  # (H, W): not square, so that H/W mix-ups show.


def my_yaw(theta):
  """R_θ of docs/method.md §0, written out independently of the module."""
  return np.array([[math.cos(theta), 0, math.sin(theta)], [0, 1, 0],
                   [-math.sin(theta), 0, math.cos(theta)]])


def my_projection(points, focal, size, depth=None):
  """Pinhole (depth None) or weak-perspective projection, camera looking along -z."""
  height, width = size
  d = -points[:, 2] if depth is None else depth
  return np.stack([(width - 1) / 2 + focal * points[:, 0] / d,
                   (height - 1) / 2 - focal * points[:, 1] / d], axis=-1)


def test_shapes_and_dtypes():
  source = synthetic.SyntheticPoseSource(POSES, image_size=SIZE, seed=0, length=5)
  assert len(source) == 5
  item = source[3]
  expected = {
      "image": ((64, 80, 3), np.uint8), "keypoints2d": ((17, 2), np.float32),
      "visibility": ((17,), np.float32), "in_frame": ((17,), np.bool_),
      "occluded": ((17,), np.bool_), "self_occluded": ((17,), np.bool_),
      "pose3d": ((17, 3), np.float32),
      "translation": ((3,), np.float32), "camera_rotation": ((3, 3), np.float32),
      "yaw": ((), np.float32), "camera_height": ((), np.float32), "focal": ((), np.float32), "has_person": ((), np.bool_),
      "pose_index": ((), np.int32),
  }
  assert set(item) == set(expected)
  for key, (shape, dtype) in expected.items():
    value = np.asarray(item[key])
    assert value.shape == shape, (key, value.shape)
    assert value.dtype == dtype, (key, value.dtype)
  np.testing.assert_array_equal(
      item["visibility"], (item["in_frame"] & ~item["occluded"]).astype(np.float32))


def test_deterministic_per_seed_and_index_whatever_the_order():
  a = synthetic.SyntheticPoseSource(POSES, image_size=48, seed=7, length=6)
  b = synthetic.SyntheticPoseSource(POSES, image_size=48, seed=7, length=6)
  forward = [a[i] for i in range(6)]
  backward = [b[i] for i in reversed(range(6))][::-1]
  again = [a[i] for i in (4, 1, 5, 0, 3, 2)]
  for i in range(6):
    for key in forward[i]:
      np.testing.assert_array_equal(forward[i][key], backward[i][key], err_msg=key)
      np.testing.assert_array_equal(forward[i][key], again[(4, 1, 5, 0, 3, 2).index(i)][key])
  # Worker processes get a pickled copy: it must give the same items.
  copy = pickle.loads(pickle.dumps(a))
  for key, value in copy[2].items():
    np.testing.assert_array_equal(value, forward[2][key], err_msg=key)
  other_seed = synthetic.SyntheticPoseSource(POSES, image_size=48, seed=8, length=6)
  assert not np.array_equal(other_seed[0]["image"], forward[0]["image"])
  assert not np.array_equal(forward[0]["image"], forward[1]["image"])


@pytest.mark.parametrize("camera", ["perspective", "weak"])
def test_labels_follow_the_camera_model(camera):
  source = synthetic.SyntheticPoseSource(
      POSES, image_size=SIZE, seed=1, length=10, camera=camera, body_scale=(1.0, 1.0))
  for i in range(10):
    item = source[i]
    rotation = item["camera_rotation"].astype(np.float64)
    # A camera pitch: a proper rotation about x.
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(rotation[0], [1, 0, 0], atol=1e-6)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-6)
    pose = POSES[item["pose_index"]].astype(np.float64)
    expected3d = (pose - pose[J["Hip"]]) @ (rotation @ my_yaw(float(item["yaw"]))).T
    np.testing.assert_allclose(item["pose3d"], expected3d, atol=1e-5)
    # The camera centre X has rotation @ X + translation = 0.
    centre = -rotation.T @ item["translation"]
    world = (pose - pose[J["Hip"]]) @ my_yaw(float(item["yaw"])).T
    assert item["camera_height"] == pytest.approx(centre[1] - world[:, 1].min(), abs=1e-4)
    camera_frame = expected3d + item["translation"]
    assert np.all(camera_frame[:, 2] < 0), "every joint is in front of the camera"
    depth = None if camera == "perspective" else -float(item["translation"][2])
    expected2d = my_projection(camera_frame, float(item["focal"]), SIZE, depth)
    np.testing.assert_allclose(item["keypoints2d"], expected2d, atol=2e-3)
    height, width = SIZE
    kp = item["keypoints2d"]
    in_frame = (kp[:, 0] >= -0.5) & (kp[:, 0] <= width - 0.5) & (kp[:, 1] >= -0.5) & (
        kp[:, 1] <= height - 0.5)
    np.testing.assert_array_equal(item["in_frame"], in_frame)


def test_planted_yaw_size_and_position():
  yaw, size = 0.7, 0.6
  source = synthetic.SyntheticPoseSource(
      POSES, image_size=SIZE, seed=2, length=4, camera="weak", yaw=(yaw, yaw),
      elevation_deg=(0.0, 0.0), person_size=(size, size), centre_jitter=0.0)
  for i in range(4):
    item = source[i]
    pose = POSES[item["pose_index"]].astype(np.float64)
    np.testing.assert_allclose(item["pose3d"], (pose - pose[0]) @ my_yaw(yaw).T, atol=1e-5)
    kp = item["keypoints2d"]
    lo, hi = kp.min(axis=0), kp.max(axis=0)
    assert max(hi - lo) == pytest.approx(size * min(SIZE), abs=1e-3)
    np.testing.assert_allclose((lo + hi) / 2, [(80 - 1) / 2, (64 - 1) / 2], atol=1e-3)
  # Jitter moves the box centre by at most ±jitter·(W, H).
  jittered = synthetic.SyntheticPoseSource(
      POSES, image_size=SIZE, seed=2, length=20, camera="weak", centre_jitter=0.15)
  offsets = []
  for i in range(20):
    kp = jittered[i]["keypoints2d"]
    offsets.append((kp.min(axis=0) + kp.max(axis=0)) / 2 - [39.5, 31.5])
  offsets = np.abs(offsets)
  assert np.all(offsets <= [0.15 * 80 + 1e-3, 0.15 * 64 + 1e-3])
  assert offsets.max() > 0.05 * 64, "jitter should move the person"


def test_keypoints_land_on_the_person():
  source = synthetic.SyntheticPoseSource(POSES, image_size=SIZE, seed=3, length=12)
  checked = 0
  for i in range(12):
    scene = source.scene(i)
    with_person = synthetic.render(scene)
    np.testing.assert_array_equal(with_person, source[i]["image"])
    without = synthetic.render(scene, draw_person=False)
    visible = source[i]["visibility"] > 0
    for x, y in np.rint(scene.keypoints2d[visible]).astype(int):
      assert np.any(with_person[y, x] != without[y, x]), (i, x, y)
      checked += 1
  assert checked > 100


def _inside(occluder, x, y):
  """Independent point-in-shape test of an occluder."""
  c, s = math.cos(occluder["angle"]), math.sin(occluder["angle"])
  dx, dy = x - occluder["centre"][0], y - occluder["centre"][1]
  p, q = c * dx + s * dy, -s * dx + c * dy
  a, b = occluder["half"]
  if occluder["kind"] == "rectangle":
    return (abs(p) < a and abs(q) < b), min(a - abs(p), b - abs(q))
  rho = math.hypot(p / a, q / b)
  return rho < 1, (1 - rho) * min(a, b)


def test_occluded_joints_are_flagged_and_hidden():
  source = synthetic.SyntheticPoseSource(
      POSES, image_size=SIZE, seed=4, length=10, occluder_prob=1.0, max_occluders=3,
      occluder_size=(0.1, 0.3), noise_std=(0.0, 0.0))
  hidden = 0
  for i in range(10):
    scene = source.scene(i)
    item = source[i]
    without = synthetic.render(scene, draw_person=False)
    for j, (x, y) in enumerate(scene.keypoints2d):
      inside = [_inside(o, x, y) for o in scene.occluders]
      if any(abs(depth) < 1e-4 for _, depth in inside):
        continue  # on an edge
      assert item["occluded"][j] == any(flag for flag, _ in inside), (i, j)
      # Deep inside the top occluder the pixel shows its colour, person or not.
      covering = [k for k, (flag, depth) in enumerate(inside) if flag and depth > 1.5]
      px, py = round(x), round(y)
      if covering and 0 <= px < SIZE[1] and 0 <= py < SIZE[0]:
        top = scene.occluders[covering[-1]]
        later = [_inside(o, px, py)[1] > -1.0 for o in scene.occluders[covering[-1] + 1:]]
        if any(later):
          continue  # a later occluder's edge may touch the pixel.
        np.testing.assert_array_equal(item["image"][py, px], without[py, px])
        np.testing.assert_allclose(item["image"][py, px], top["colour"], atol=0.51)
        hidden += 1
    np.testing.assert_array_equal(item["visibility"], item["in_frame"] & ~item["occluded"])
  assert hidden >= 5


@pytest.mark.parametrize("wrist_z, expect", [(0.35, "forearm"), (-0.35, "torso")])
def test_painter_order_nearer_limb_covers_farther(wrist_z, expect):
  # The right forearm crosses the chest, in front of it (towards the camera at
  # +z) or behind it.
  pose = REST.copy()
  pose[J["RElbow"]] = [-0.3, 1.35, wrist_z]
  pose[J["RWrist"]] = [0.25, 1.35, wrist_z]
  source = synthetic.SyntheticPoseSource(
      pose[None], image_size=96, seed=5, length=1, yaw=(0.0, 0.0), elevation_deg=(0.0, 0.0),
      camera="weak", thickness=(1.0, 1.0), max_clutter=0, occluder_prob=0.0,
      noise_std=(0.0, 0.0), centre_jitter=0.0)
  scene = source.scene(0)
  # Plant colours: the forearm red, every other capsule blue.
  colours = np.tile([0.0, 0.0, 255.0], (len(scene.capsule_colours), 1))
  colours[15] = [255.0, 0.0, 0.0]  # ("RElbow", "RWrist")
  image = synthetic.render(dataclasses.replace(scene, capsule_colours=colours))
  image = image.astype(np.float64)
  # Where the forearm crosses the chest's axis: on the axes of both capsules.
  x = np.rint(scene.keypoints2d[J["Spine"], 0])
  y = np.rint(scene.keypoints2d[J["RWrist"], 1])
  forearm, torso = colours[15], colours[1]
  pixel = image[int(y), int(x)]
  # Near a capsule's axis the shading is close to 1: the pixel is its colour.
  want, other = (forearm, torso) if expect == "forearm" else (torso, forearm)
  assert np.abs(pixel - want).max() < 0.1 * 255, (pixel, want)
  assert np.abs(pixel - want).max() < np.abs(pixel - other).max()


def test_no_person_images():
  source = synthetic.SyntheticPoseSource(POSES, image_size=SIZE, seed=6, length=4,
                                         no_person_prob=1.0)
  for i in range(4):
    item = source[i]
    scene = source.scene(i)
    assert not item["has_person"]
    assert np.all(np.isnan(item["keypoints2d"])) and np.all(np.isnan(item["pose3d"]))
    np.testing.assert_array_equal(item["visibility"], np.zeros(17))
    np.testing.assert_array_equal(item["image"], synthetic.render(scene, draw_person=False))
    assert not np.array_equal(item["image"], synthetic.render(scene, draw_person=True))
  mixed = synthetic.SyntheticPoseSource(POSES, image_size=SIZE, seed=6, length=40,
                                        no_person_prob=0.5)
  flags = [bool(mixed[i]["has_person"]) for i in range(40)]
  assert 5 < sum(flags) < 35


def test_grain_map_dataset_and_data_loader():
  source = synthetic.SyntheticPoseSource(POSES, image_size=32, seed=9, length=8)
  reference = [source[i]["image"] for i in range(8)]

  def which(image):
    matches = [k for k, ref in enumerate(reference) if np.array_equal(ref, image)]
    assert len(matches) == 1
    return matches[0]

  dataset = grain.MapDataset.source(source).shuffle(seed=1).batch(4)
  seen = []
  for batch in dataset:
    assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.uint8
    assert batch["keypoints2d"].shape == (4, 17, 2)
    seen += [which(image) for image in batch["image"]]
  assert sorted(seen) == list(range(8))
  assert seen != list(range(8)), "shuffled"

  loader = grain_python.DataLoader(
      data_source=source,
      sampler=grain_python.IndexSampler(
          num_records=8, shard_options=grain_python.NoSharding(), shuffle=True, num_epochs=1,
          seed=3),
      operations=[grain_python.Batch(batch_size=4)],
      worker_count=0)
  batches = list(loader)
  assert len(batches) == 2
  assert sorted(which(im) for b in batches for im in b["image"]) == list(range(8))


def test_bad_input():
  with pytest.raises(ValueError, match=r"expected poses \(N, 17, 3\)"):
    synthetic.SyntheticPoseSource(np.zeros((4, 16, 3)))
  with pytest.raises(ValueError, match="NaN"):
    synthetic.SyntheticPoseSource(np.full((2, 17, 3), np.nan))
  with pytest.raises(ValueError, match="no_person_prob"):
    synthetic.SyntheticPoseSource(POSES, no_person_prob=1.5)
  with pytest.raises(ValueError, match="camera"):
    synthetic.SyntheticPoseSource(POSES, camera="fisheye")
  with pytest.raises(ValueError, match="yaw"):
    synthetic.SyntheticPoseSource(POSES, yaw=(1.0, 0.0))
  with pytest.raises(ValueError, match="image_size"):
    synthetic.SyntheticPoseSource(POSES, image_size=4)
  with pytest.raises(ValueError, match="unknown RenderOptions fields"):
    synthetic.SyntheticPoseSource(POSES, num_people=2)
  with pytest.raises(IndexError):
    synthetic.SyntheticPoseSource(POSES, length=3)[3]


@pytest.mark.slow
def test_labels_agree_with_lift3d_lift_given_camera_rotation():
  # A planted one-pose model: every rendered pose is the model's mean, so
  # lifting the exact 2D labels must give back pose3d when lift gets the
  # item's camera_rotation (and not when it gets its transpose).
  import lift3d
  from lift3d.pose_model.model import PoseModel

  centred = REST - REST.mean(axis=0)
  limbs = np.array(H36M17.limbs)
  limb_norm = math.sqrt(np.sum((centred[limbs[:, 0]] - centred[limbs[:, 1]]) ** 2))
  basis = np.zeros((1, 1, 17, 3))
  basis[0, 0, J["RWrist"], 0] = 1.0
  model = PoseModel(
      mean=(centred / limb_norm)[None].astype(np.float32), basis=basis.astype(np.float32),
      variances=np.full((1, 1), 1e-6, np.float32), noise=np.full((1,), 1e-6, np.float32),
      weights=np.ones(1, np.float32), limb_scale=np.float32(limb_norm))
  source = synthetic.SyntheticPoseSource(
      REST[None], image_size=96, seed=11, length=8, camera="weak",
      elevation_deg=(25.0, 25.0), occluder_prob=0.0)
  items = [source[i] for i in range(8)]
  keypoints = np.stack([item["keypoints2d"] for item in items])
  truth = np.stack([item["pose3d"] for item in items]) * 1000.0  # mm, hip at the origin.
  rotation = items[0]["camera_rotation"]

  def error(camera_rotation):
    result = lift3d.lift(model, keypoints, num_yaws=720, refine=True,
                         camera_rotation=camera_rotation)
    pose = np.asarray(result.pose3d)
    pose = pose - pose[:, :1]
    return np.linalg.norm(pose - truth, axis=-1).mean(axis=-1)

  right, transposed = error(rotation), error(rotation.T)
  assert np.all(right < 5.0), right
  assert np.all(transposed > 20.0), transposed


# Issue 17: the options beyond the original capsule people.

RICH_SIZE = (96, 112)


def _rich(preset="rich", length=10, seed=20, **overrides):
  return synthetic.SyntheticPoseSource(POSES, image_size=RICH_SIZE, seed=seed, length=length,
                                       preset=preset, **overrides)


def test_presets_change_only_what_they_name():
  assert synthetic.SyntheticPoseSource(POSES, preset="capsule").options == \
      synthetic.SyntheticPoseSource(POSES).options
  rich = _rich().options
  assert rich.lighting and rich.self_occlusion and rich.limb_length != (1.0, 1.0)
  assert _rich("rich_occluded").options.occluder_prob == 1.0
  assert _rich("rich_unoccluded").options.occluder_prob == 0.0
  # Overrides win over the preset.
  assert _rich(lighting=False).options.lighting is False
  with pytest.raises(ValueError, match="unknown preset"):
    synthetic.SyntheticPoseSource(POSES, preset="fancy")
  with pytest.raises(ValueError, match="limb_length"):
    synthetic.SyntheticPoseSource(POSES, limb_length=(0.0, 1.0))
  with pytest.raises(ValueError, match="clothing_texture_prob"):
    synthetic.SyntheticPoseSource(POSES, clothing_texture_prob=2.0)


def test_rich_renders_are_deterministic_whatever_the_order():
  a, b = _rich("rich_occluded", length=5), _rich("rich_occluded", length=5)
  forward = [a[i] for i in range(5)]
  backward = [b[i] for i in reversed(range(5))][::-1]
  copy = pickle.loads(pickle.dumps(a))
  for i in range(5):
    for key in forward[i]:
      np.testing.assert_array_equal(forward[i][key], backward[i][key], err_msg=key)
      np.testing.assert_array_equal(forward[i][key], copy[i][key], err_msg=key)
  # Switching the style options on leaves the scene stream (background, pose,
  # camera) alone: the same pose, yaw and background as the capsule renderer.
  plain = synthetic.SyntheticPoseSource(POSES, image_size=RICH_SIZE, seed=20, length=5)
  for i in range(5):
    assert plain.scene(i).pose_index == a.scene(i).pose_index
    assert plain.scene(i).yaw == a.scene(i).yaw
    assert plain.scene(i).background[0] == a.scene(i).background[0]


def test_scale_bones_against_bone_by_bone_truth():
  rng = np.random.default_rng(0)
  factors = rng.uniform(0.7, 1.3, 10)
  out = synthetic.scale_bones(REST, factors)
  kinds = {"RHip": 0, "LHip": 0, "RKnee": 1, "LKnee": 1, "RFoot": 2, "LFoot": 2, "Spine": 3,
           "Thorax": 4, "Neck/Nose": 5, "Head": 6, "LShoulder": 7, "RShoulder": 7,
           "LElbow": 8, "RElbow": 8, "LWrist": 9, "RWrist": 9}
  np.testing.assert_array_equal(out[0], REST[0])
  for name, kind in kinds.items():
    j, parent = J[name], H36M17.parents[J[name]]
    np.testing.assert_allclose(out[j] - out[parent], factors[kind] * (REST[j] - REST[parent]),
                               atol=1e-12, err_msg=name)
  assert len(kinds) == 16


def test_rich_labels_follow_the_drawn_body():
  lo, hi = 0.8, 1.2
  source = _rich(length=8, limb_length=(lo, hi), camera="weak")
  for i in range(8):
    item, scene = source[i], source.scene(i)
    pose = POSES[item["pose_index"]].astype(np.float64)
    rotation = item["camera_rotation"].astype(np.float64) @ my_yaw(float(item["yaw"]))
    truth = (pose - pose[0]) @ rotation.T  # unscaled bones, camera orientation.
    ratios = []
    for j in range(1, 17):
      parent = H36M17.parents[j]
      bone, planted = item["pose3d"][j] - item["pose3d"][parent], truth[j] - truth[parent]
      ratio = np.linalg.norm(bone) / np.linalg.norm(planted)
      # Same direction, length scaled within the range.
      np.testing.assert_allclose(bone / np.linalg.norm(bone), planted / np.linalg.norm(planted),
                                 atol=1e-4)
      assert lo - 1e-4 <= ratio <= hi + 1e-4
      ratios.append(ratio)
    assert np.ptp(ratios) > 0.05, "bones are scaled differently"
    # Left and right twins get the same factor.
    for left, right in (("LKnee", "RKnee"), ("LWrist", "RWrist"), ("LElbow", "RElbow")):
      assert ratios[J[left] - 1] == pytest.approx(ratios[J[right] - 1], abs=1e-4)
    # The 2D labels are the projection of the 3D labels, and the drawn capsules
    # end exactly at them.
    depth = -float(item["translation"][2])
    expected = my_projection(item["pose3d"] + item["translation"], float(item["focal"]),
                             RICH_SIZE, depth)
    np.testing.assert_allclose(item["keypoints2d"], expected, atol=2e-3)
    parts = [(a, b) for a, b, *_ in synthetic._PARTS]
    for c, (a, b) in enumerate(parts):
      np.testing.assert_allclose(scene.capsules[c, 0], scene.keypoints2d[J[a]], atol=1e-9)
      np.testing.assert_allclose(scene.capsules[c, 1], scene.keypoints2d[J[b]], atol=1e-9)


def test_rich_keypoints_land_on_the_drawn_person():
  source = _rich(length=10)
  checked = 0
  for i in range(10):
    scene, item = source.scene(i), source[i]
    with_person = item["image"]
    without = synthetic.render(scene, draw_person=False)
    for x, y in np.rint(scene.keypoints2d[item["visibility"] > 0]).astype(int):
      assert np.any(with_person[y, x] != without[y, x]), (i, x, y)
      checked += 1
  assert checked > 60


def _point_fields(scene, x, y):
  """Per capsule: (distance to its axis, interpolated radius) at a point, independently."""
  out = []
  for (a, b), (ra, rb) in zip(scene.capsules, scene.capsule_radii, strict=True):
    ab = b - a
    t = 0.0 if ab @ ab < 1e-12 else float(np.clip((np.array([x, y]) - a) @ ab / (ab @ ab), 0, 1))
    out.append((float(np.linalg.norm(np.array([x, y]) - a - t * ab)), ra + t * (rb - ra)))
  return out


def test_self_occlusion_labels_match_the_image():
  # A joint labelled self-occluded: removing its own capsules leaves its pixel
  # unchanged (something else covers it). Labelled visible: removing every
  # other capsule leaves the pixel unchanged (its own capsule is on top).
  source = _rich("rich_unoccluded", length=24, seed=21, noise_std=(0.0, 0.0))
  hidden = shown = 0
  for i in range(24):
    scene, item = source.scene(i), source[i]
    height, width = RICH_SIZE
    for j, (x, y) in enumerate(scene.keypoints2d):
      px, py = round(x), round(y)
      if not (0 <= px < width and 0 <= py < height):
        continue
      fields = _point_fields(scene, px, py)
      # Only clear-cut pixels: no capsule edge within 1.5 px.
      if any(abs(d - r) < 1.5 for d, r in fields):
        continue
      own = synthetic._INCIDENT[j]
      remove = own if item["self_occluded"][j] else ~own
      moved = np.where(remove[:, None, None], -1e4, scene.capsules)
      image = synthetic.render(dataclasses.replace(scene, capsules=moved))
      np.testing.assert_array_equal(image[py, px], item["image"][py, px], err_msg=(i, j))
      assert item["visibility"][j] == (not item["self_occluded"][j]), (i, j)
      if item["self_occluded"][j]:
        hidden += 1
      else:
        shown += 1
  assert hidden >= 5 and shown >= 60, (hidden, shown)


def test_rich_occluders_hide_joints():
  source = _rich("rich_occluded", length=12, seed=22, noise_std=(0.0, 0.0))
  checked = occluded = 0
  for i in range(12):
    scene, item = source.scene(i), source[i]
    for j, (x, y) in enumerate(scene.keypoints2d):
      inside = [_inside(o, x, y) for o in scene.occluders]
      if any(abs(depth) < 1e-4 for _, depth in inside):
        continue
      assert item["occluded"][j] == any(flag for flag, _ in inside), (i, j)
      if item["occluded"][j]:
        assert item["visibility"][j] == 0
        occluded += 1
      checked += 1
  assert checked > 150 and occluded > 30, (checked, occluded)
  assert any("texture" in o for i in range(12) for o in source.scene(i).occluders)


def _one_capsule_scene(**fields):
  """A scene showing one vertical capsule (x = 48, y from 20 to 76, radius 10 px)."""
  source = synthetic.SyntheticPoseSource(
      REST[None], image_size=96, seed=0, length=1, occluder_prob=0.0, max_clutter=0,
      noise_std=(0.0, 0.0))
  scene = source.scene(0)
  return dataclasses.replace(
      scene, capsules=np.array([[[48.0, 20.0], [48.0, 76.0]]]),
      capsule_radii=np.array([[10.0, 10.0]]), capsule_depth=np.array([1.0]),
      capsule_colours=np.array([[200.0, 100.0, 50.0]]), **fields)


@pytest.mark.parametrize("light", [(0.6, 0.0, 0.8, 0.3), (-0.28, 0.6, 0.75, 0.5)])
def test_lambert_lighting_against_closed_form(light):
  direction = np.array(light[:3]) / np.linalg.norm(light[:3])
  light = np.array([*direction, light[3]])
  image = synthetic.render(_one_capsule_scene(light=light)).astype(np.float64)
  colour = np.array([200.0, 100.0, 50.0])
  for offset in (-8, -4, 0, 3, 7):
    nx = offset / 10.0
    normal = np.array([nx, 0.0, np.sqrt(1 - nx * nx)])  # on the axis' mid-height: no y part.
    shade = light[3] + (1 - light[3]) * max(normal @ light[:3], 0.0)
    np.testing.assert_allclose(image[48, 48 + offset], np.rint(colour * shade), atol=1.0)
  assert not np.allclose(image[48, 40], image[48, 56], atol=2.0), "lit side differs"


def test_clothing_bands_against_closed_form():
  amplitude, period, phase = 0.3, 9.0, 0.4
  texture = np.array([[amplitude, period, phase, 1.0, 0.0, 0.0]])  # bands along the axis.
  plain = synthetic.render(_one_capsule_scene()).astype(np.float64)
  image = synthetic.render(_one_capsule_scene(capsule_texture=texture)).astype(np.float64)
  colour = np.array([200.0, 100.0, 50.0])
  for y in range(24, 72, 5):
    along = y - 20.0
    modulation = 1 + amplitude * np.sin(2 * np.pi * along / period + phase)
    np.testing.assert_allclose(image[y, 48], np.clip(np.rint(colour * modulation), 0, 255),
                               atol=1.0)
    np.testing.assert_allclose(plain[y, 48], colour, atol=1.0)  # shading 1 on the axis.


def _raising_arm_clip(frames: int = 8) -> np.ndarray:
  """(frames, 17, 3) REST walking along x while its left arm rises overhead and the
  knees bend: a box that grows and moves, with root motion."""
  t = np.linspace(0.0, 1.0, frames)[:, None]
  clip = np.repeat(REST[None].astype(np.float64), frames, axis=0)
  shoulder = clip[:, J["LShoulder"]]
  for joint, length in (("LElbow", 0.27), ("LWrist", 0.52)):
    angle = math.pi * t[:, 0]  # hanging (0) to overhead (π)
    clip[:, J[joint]] = shoulder + length * np.stack(
        [0.3 * np.sin(angle), -np.cos(angle), np.zeros_like(angle)], axis=-1)
  clip[:, :7, 1] -= 0.2 * t * np.isin(np.arange(7), [0, 1, 2, 4, 5])  # hips and knees sink
  clip[:, 7:, 1] -= 0.2 * t  # the upper body with the hips
  clip += np.array([1.5, 0.0, 0.0]) * t[:, :, None]  # walks 1.5 m along x
  return clip.astype(np.float32)


@pytest.mark.parametrize("camera, preset", [("perspective", "rich"), ("weak", "capsule")])
def test_video_keeps_one_camera_while_the_person_moves(camera, preset):
  clip = _raising_arm_clip()
  options = dataclasses.replace(synthetic.RenderOptions(), **{
      **synthetic.PRESETS[preset], "image_size": SIZE, "camera": camera, "occluder_prob": 1.0,
      "max_occluders": 2})
  scenes = synthetic.sample_video(clip, 5, 7, options)
  alone = [synthetic.sample_scene(pose[None], 5, 7, options) for pose in clip]
  assert len(scenes) == len(clip)
  first = scenes[0]
  rotation = first.camera_rotation @ my_yaw(first.yaw)
  scale = None
  for f, scene in enumerate(scenes):
    assert scene.pose_index == f
    # One camera, one body, one scene.
    np.testing.assert_array_equal(scene.translation, first.translation)
    assert (scene.focal, scene.yaw, scene.noise_key) == (first.focal, first.yaw, first.noise_key)
    np.testing.assert_array_equal(scene.camera_rotation, first.camera_rotation)
    np.testing.assert_array_equal(scene.capsule_colours, first.capsule_colours)
    assert scene.occluders is first.occluders and len(first.occluders) > 0
    # The frame's own pose (root motion removed), drawn as the example alone
    # draws it; without bone scaling, by one rotation and scale for all frames.
    np.testing.assert_array_equal(scene.pose3d, alone[f].pose3d)
    if preset == "capsule":
      centred = clip[f].astype(np.float64) - clip[f, J["Hip"]]
      back = scene.pose3d @ rotation  # undo p = q Mᵀ
      ratio = np.linalg.norm(back) / np.linalg.norm(centred)
      scale = ratio if scale is None else scale
      np.testing.assert_allclose(back, scale * centred, atol=1e-6)
    # Its keypoints: the fixed camera's projection, every joint inside the image.
    camera_frame = scene.pose3d + first.translation
    depth = None if camera == "perspective" else -float(first.translation[2])
    np.testing.assert_allclose(scene.keypoints2d, my_projection(camera_frame, first.focal, SIZE,
                                                                depth), atol=1e-6)
    height, width = SIZE
    assert np.all((scene.keypoints2d >= -0.5) & (scene.keypoints2d <= [width - 0.5,
                                                                         height - 0.5]))
  # The arm moves in the image, so a reframing camera would move too: the
  # images without the person are the same in every frame.
  assert not np.allclose(scenes[0].keypoints2d, scenes[-1].keypoints2d, atol=1.0)
  empty = synthetic.render(first, draw_person=False)
  for scene in scenes[1:]:
    np.testing.assert_array_equal(synthetic.render(scene, draw_person=False), empty)
  # The camera stands as far as the largest frame needs: that frame alone is
  # framed at the same depth (its box the largest).
  assert -first.translation[2] == pytest.approx(max(-s.translation[2] for s in alone))


def test_video_of_one_pose_is_that_example_and_bad_translations_fail():
  pose = POSES[3]
  options = synthetic.RenderOptions(image_size=SIZE)
  alone = synthetic.sample_scene(pose[None], 2, 4, options)
  for scene in synthetic.sample_video(np.stack([pose] * 3), 2, 4, options):
    np.testing.assert_allclose(scene.translation, alone.translation, rtol=1e-12)
    np.testing.assert_allclose(scene.keypoints2d, alone.keypoints2d, atol=1e-9)
  source = synthetic.SyntheticPoseSource(POSES, image_size=SIZE, seed=2)
  assert source.video(np.stack([pose] * 2), index=4)[1].translation.tolist() == (
      alone.translation.tolist())
  with pytest.raises(ValueError, match="behind the camera"):
    synthetic.sample_scene(pose[None], 2, 4, options, translation=np.array([0.0, 0.0, 0.1]))
  with pytest.raises(ValueError, match="3 finite numbers"):
    synthetic.sample_scene(pose[None], 2, 4, options, translation=np.array([0.0, np.nan, -3.0]))
