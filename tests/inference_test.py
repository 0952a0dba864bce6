"""Tests of inference on pictures (lift3d.inference: predict, load_network, export)."""

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lift3d
from lift3d import cli, inference, train
from lift3d import pose_model as pose_model_lib
from lift3d.data import augment
from lift3d.models import belief_maps, cpm
from tests.models import tiny

L = tiny.NUM_LANDMARKS
SIZE = tiny.IMAGE_SIZE
YAWS = tiny.MODEL.num_yaws  # the final lift searches as many yaws as the stages'


@functools.cache
def _network() -> inference.Network:
  pose_model = tiny.pose_model()
  params = cpm.init(tiny.MODEL, jax.random.key(0), (SIZE, SIZE), pose_model)
  return inference.Network(tiny.MODEL, params, input_size=SIZE, person_size=0.75,
                           scales=(1.0,), min_confidence=0.0, pose_model=pose_model)


@functools.cache
def _pictures():
  source = tiny.BlobSource(3)
  images = np.stack([source[i]["image"] for i in range(3)])
  net = _network()
  reference = jax.device_get(cpm.predict(net.params, tiny.MODEL, images, net.pose_model,
                                         min_confidence=0.0))
  return images, reference


def _stack(people, name):
  return np.stack([getattr(p, name) for p in people])


def test_without_boxes_a_training_sized_picture_gives_the_training_forward_pass():
  # No box: one person centred; for a picture of the network's input size the
  # crop is the picture itself, so a single scale with the plain arg-max must
  # reproduce `cpm.predict` (what the training code's evaluation calls).
  images, ref = _pictures()
  people = [p[0] for p in lift3d.predict(_network(), None, images, scales=(1.0,),
                                         subpixel="argmax", num_yaws=YAWS)]
  assert len(people) == 3
  np.testing.assert_array_equal(_stack(people, "keypoints"), ref.keypoints2d)
  # The crop divides by 255 in another fused kernel than the network does.
  # Float32 convolutions in other fused kernels: rounding of ~10³-term sums (≈ 10⁻⁵).
  np.testing.assert_allclose(_stack(people, "confidence"), ref.confidence, rtol=0, atol=1e-5)
  valid = _stack(people, "valid")
  np.testing.assert_array_equal(valid, ref.valid)
  # The untrained network's maps are noise, so its lifts are implausible (not
  # valid, docs/method.md §4.5) but lifted: compare every lifted pose.
  valid = np.array([int(p.lifted.component) >= 0 for p in people])
  assert valid.any(), "the tiny model's maps should be lifted"
  assert np.array_equal(valid, np.asarray(ref.output.lifted.component) >= 0)
  # Lifting pixels instead of grid cells: the same pose (the lift removes
  # translation and scale); float32 rounding of the normalisation only.
  # The untrained tiny network's CNN confidences (the lift's weights) are
  # faint, so its lifts are nearly data-free and θ against θ + π (x, z
  # negated) is a near-tie that the rounding of pixels against grid cells may
  # settle either way: compare up to that flip.
  pose = np.stack([p.lifted.pose3d for p in people])[valid]
  expected = ref.pose3d[valid]
  flipped = pose * np.array([-1.0, 1.0, -1.0])
  same = np.all(np.abs(pose - expected) <= 0.1, axis=(1, 2))
  same_flipped = np.all(np.abs(flipped - expected) <= 0.1, axis=(1, 2))
  assert np.all(same | same_flipped), np.abs(pose - expected).max()
  for person in people:
    assert person.lifted.pose3d.shape == (L, 3) and person.lifted.reprojected.shape == (L, 2)
    assert (person.reason == "") == person.valid and person.box.shape == (4,)
  # Lifted but implausible people say so (not "too few landmarks").
  implausible = [p for p in people if int(p.lifted.component) >= 0 and not p.lifted.valid]
  assert implausible and all(p.reason.startswith("implausible 3D pose") for p in implausible)

  # Sub-pixel refinement moves each landmark by at most half a map cell.
  refined = [p[0] for p in lift3d.predict(_network(), None, images, scales=(1.0,),
                                          num_yaws=YAWS)]
  shift = np.abs(_stack(refined, "keypoints") - ref.keypoints2d)
  assert shift.max() <= 0.5 * tiny.MODEL.stride + 1e-5


def test_boxes_give_one_person_each_at_their_place_in_the_picture():
  # Two training-sized pictures pasted into a larger one at integer offsets;
  # boxes whose crops are exactly those pictures give exactly their
  # predictions, shifted by the offsets. A zero-size box gives an invalid
  # person with a reason and leaves the others alone.
  images, ref = _pictures()
  canvas = np.full((40, 70, 3), 90, np.uint8)
  offsets = np.array([[3, 5], [41, 20], [22, 1]])  # (x, y) of each picture's top-left pixel
  for image, (x, y) in zip(images, offsets, strict=True):
    canvas[y : y + SIZE, x : x + SIZE] = image
  side = SIZE * _network().person_size
  boxes = [[[x + 0.5 * (SIZE - side), y + 0.5 * (SIZE - side), side, side]
            for x, y in offsets] + [[10, 10, 0, 4]]]
  people = lift3d.predict(_network(), None, [canvas], boxes, scales=(1.0,), subpixel="argmax",
                          num_yaws=YAWS)[0]
  assert len(people) == 4
  for n in range(3):
    np.testing.assert_array_equal(people[n].keypoints, ref.keypoints2d[n] + offsets[n])
    # Float32 convolutions over a larger canvas sum in another order: rounding of
    # ~10³-term sums of ~10⁻² terms (γ_n·Σ|terms| ≈ 10⁻⁵).
    np.testing.assert_allclose(people[n].confidence, ref.confidence[n], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(people[n].box, boxes[0][n])
  assert not people[3].valid and "zero-size" in people[3].reason
  assert np.all(np.isnan(people[3].keypoints)) and np.all(np.isnan(people[3].lifted.pose3d))


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.7])
def test_crops_sample_the_picture_where_the_box_says(scale):
  # On a linear ramp every normalised linear resampling returns the ramp at
  # the sampled point, so the crop's pixels must equal the ramp at the picture
  # coordinates of their centres (away from the border).
  height, width, size = 60, 80, 16
  ys, xs = np.mgrid[:height, :width].astype(np.float32)
  ramp = np.stack([0.002 * xs, 0.003 * ys, 0.001 * (xs + ys)], -1)
  centre = np.array([[37.0, 29.5]], np.float32)  # box coordinates (x, y)
  side = np.array([24.0], np.float32)
  crop = np.asarray(inference._crops(jnp.asarray(ramp), centre, side, size=size, scales=(scale,)))
  q = np.arange(size) + 0.5  # crop pixel centres, corner-based
  x = centre[0, 0] - 0.5 * side[0] / scale + q * side[0] / scale / size - 0.5
  y = centre[0, 1] - 0.5 * side[0] / scale + q * side[0] / scale / size - 0.5
  expected = np.stack(np.broadcast_arrays(0.002 * x[None], 0.003 * y[:, None],
                                          0.001 * (x[None] + y[:, None])), -1)
  # Exact when upsampling (linear interpolation). Downsampling uses a
  # triangle kernel widened by the factor and sampled at pixel centres, whose
  # centroid can sit a few hundredths of a pixel off the sample point.
  position_error = 1e-4 if side[0] / scale <= size else 0.05
  np.testing.assert_allclose(crop[0, 0], expected, atol=position_error * 0.003 + 1e-6)


def test_crop_outside_the_picture_is_mid_grey():
  image = np.zeros((10, 10, 3), np.uint8)
  crop = np.asarray(inference._crops(jnp.asarray(image), np.array([[5.0, 5.0]], np.float32),
                                     np.array([20.0], np.float32), size=8, scales=(1.0,)))[0, 0]
  np.testing.assert_allclose(crop[0, 0], 0.5)  # outside: grey
  np.testing.assert_allclose(crop[4, 4], 0.0, atol=1e-6)  # inside: the picture


def test_scale_average_puts_a_planted_landmark_back_on_the_scale_one_grid():
  # What a perfect network sees: in the crop of scale m (same centre, side
  # divided by m) a landmark at corner-based grid position g₁ of the scale-1
  # crop sits at G/2 + (g₁ − G/2)·m, with a peak m times wider.
  grid, scales = 12, (0.7, 1.0, 1.3)
  truth = np.array([[4.3, 6.8], [7.6, 5.2]])  # (column, row) cell-centre coordinates
  maps = []
  for m in scales:
    at_m = 0.5 * grid + (truth + 0.5 - 0.5 * grid) * m - 0.5
    maps.append(belief_maps.gaussian_maps(jnp.asarray(at_m, jnp.float32), grid, grid, 1.2 * m))
  average = jax.jit(inference._average_scales, static_argnums=1)
  averaged = average(jnp.stack(maps)[None], scales)
  points, _ = belief_maps.maps_to_points(averaged, "quadratic")
  # Quadratic refinement of a sampled Gaussian is biased by up to ~0.1 cell.
  np.testing.assert_allclose(points[0], truth, atol=0.12)


def test_export_then_load_gives_the_same_network_and_predictions(tmp_path):
  net = _network()
  # A calibrated lifting prior travels with the network.
  net = dataclasses.replace(net, pose_model=net.pose_model.replace(
      obs_noise=np.float32(0.1), prior_weight=np.float32(0.5)))
  path = str(tmp_path / "net.msgpack")
  inference.export_network(net, path)
  loaded = lift3d.load_network(path)
  assert loaded.model == net.model and loaded.config() == net.config()
  jax.tree.map(np.testing.assert_array_equal, loaded.params, net.params)
  jax.tree.map(np.testing.assert_array_equal, loaded.pose_model, net.pose_model)
  assert float(loaded.pose_model.obs_noise) == np.float32(0.1)
  assert float(loaded.pose_model.prior_weight) == np.float32(0.5)
  images, _ = _pictures()
  a = lift3d.predict(net, None, images, num_yaws=YAWS)
  b = lift3d.predict(loaded, None, images, num_yaws=YAWS)
  for pa, pb in zip(a, b, strict=True):
    np.testing.assert_array_equal(pa[0].keypoints, pb[0].keypoints)
    np.testing.assert_array_equal(pa[0].lifted.pose3d, pb[0].lifted.pose3d)

  (tmp_path / "junk.msgpack").write_bytes(b"\x00not msgpack")
  with pytest.raises(ValueError, match="not a lift3d network file"):
    lift3d.load_network(str(tmp_path / "junk.msgpack"))


def test_load_network_from_a_training_workdir(tmp_path):
  net = _network()
  workdir = str(tmp_path / "run")
  # The settings of tests/train_test.py: one compiled training step for both.
  state = train.train(tiny.MODEL, net.pose_model, tiny.BlobSource(4), workdir, num_steps=1,
                      ckpt_every=1, batch_size=4, optimizer="adam", learning_rate=1e-2,
                      schedule="constant", log_every=1, num_threads=1, progress=False)
  with pytest.raises(ValueError, match=r"network\.json"):
    lift3d.load_network(workdir)
  inference.save_network_config(workdir, net.config())
  pose_model_lib.save(os.path.join(workdir, inference.POSE_MODEL_FILE), net.pose_model)
  loaded = lift3d.load_network(workdir)
  assert loaded.config() == net.config()
  jax.tree.map(np.testing.assert_array_equal, loaded.params, jax.device_get(state.params))
  jax.tree.map(np.testing.assert_array_equal, loaded.pose_model, net.pose_model)
  with open(os.path.join(workdir, "network.json")) as f:
    assert json.load(f)["model"]["num_stages"] == tiny.MODEL.num_stages
  # `lift3d export WORKDIR OUT` writes the same network into one file.
  exported = str(tmp_path / "exported.msgpack")
  assert cli.main(["export", workdir, exported]) == 0
  again = lift3d.load_network(exported)
  assert again.config() == loaded.config()
  jax.tree.map(np.testing.assert_array_equal, again.params, loaded.params)
  jax.tree.map(np.testing.assert_array_equal, again.pose_model, loaded.pose_model)
  assert cli.main(["export", str(tmp_path / "nowhere"), exported]) == 2


def test_no_person_is_invalid_with_a_reason_never_a_pose():
  grey = np.full((3, SIZE, SIZE, 3), 128, np.uint8)
  people = lift3d.predict(_network(), None, grey, min_confidence=0.99, num_yaws=YAWS)
  person = people[0][0]
  assert not person.valid and person.reason.startswith("no person")
  assert person.keypoints.shape == (L, 2) and person.confidence.shape == (L,)
  assert lift3d.predict(_network(), None, grey[:1], [np.zeros((0, 4))])[0] == []


def test_bad_inputs_raise_one_clear_error():
  net = _network()
  image = np.zeros((SIZE, SIZE, 3), np.uint8)
  with pytest.raises(ValueError, match="grey"):
    lift3d.predict(net, None, [np.zeros((SIZE, SIZE), np.uint8)])
  with pytest.raises(ValueError, match=r"\(P, 4\)"):
    lift3d.predict(net, None, [image], [[[1, 2, 3]]])
  with pytest.raises(ValueError, match="boxes for 2 pictures"):
    lift3d.predict(net, None, [image], [None, None])
  with pytest.raises(ValueError, match="scales"):
    lift3d.predict(net, None, [image], scales=(0.0,))
  with pytest.raises(ValueError, match="no pose model"):
    lift3d.predict(inference.Network(tiny.MODEL, net.params, SIZE), None, [image])
  with pytest.raises(ValueError, match="int64"):
    lift3d.predict(net, None, [image.astype(np.int64)])
  with pytest.raises(ValueError, match=r"0\.\.1, got 0\.\.255.*divide"):
    lift3d.predict(net, None, [np.full((SIZE, SIZE, 3), 255.0, np.float32) * np.eye(SIZE)[..., None]])
  with pytest.raises(ValueError, match="no network at"):
    lift3d.load_network("/nonexistent/net.msgpack")


def test_box_from_keypoints_is_the_corner_based_box_of_the_confident_landmarks():
  keypoints = np.array([[10.0, 20.0], [30.0, 5.0], [100.0, 100.0]])
  box = inference.box_from_keypoints(keypoints, np.array([0.9, 0.8, 0.05]), min_confidence=0.1)
  np.testing.assert_allclose(box, [10.5, 5.5, 20.0, 15.0])
  assert np.all(np.isnan(inference.box_from_keypoints(keypoints, np.zeros(3))))


def _balanced_error(people, empty, threshold):
  return np.mean(people < threshold) + np.mean(empty >= threshold)


def test_confidence_threshold_lies_in_the_gap_of_separable_confidences():
  rng = np.random.default_rng(0)
  people = rng.uniform(0.3, 0.8, 50)
  empty = rng.uniform(0.001, 0.1, 40)
  threshold = inference.confidence_threshold(people, empty)
  assert _balanced_error(people, empty, threshold) == 0.0
  # The geometric middle of the gap between the highest empty and lowest person.
  np.testing.assert_allclose(threshold, np.sqrt(empty.max() * people.min()), rtol=1e-12)


def test_confidence_threshold_minimises_the_balanced_error_by_brute_force():
  rng = np.random.default_rng(1)
  for trial in range(20):
    people = rng.lognormal(np.log(0.3), 0.6, rng.integers(1, 30))
    empty = rng.lognormal(np.log(0.05), 1.0, rng.integers(1, 30))
    threshold = inference.confidence_threshold(people, empty)
    # Every distinct threshold: each value, and just above and below it.
    values = np.concatenate([people, empty])
    grid = np.concatenate([values, values * (1 + 1e-9), values * (1 - 1e-9), [1e-9, 1e9]])
    best = min(_balanced_error(people, empty, t) for t in grid)
    assert _balanced_error(people, empty, threshold) == pytest.approx(best, abs=1e-12), trial


def test_confidence_threshold_errors():
  with pytest.raises(ValueError, match="both people and empty"):
    inference.confidence_threshold([], [0.1])
  with pytest.raises(ValueError, match="finite"):
    inference.confidence_threshold([0.5, np.nan], [0.1])


def test_a_centre_map_network_gets_its_fourth_channel_as_in_training():
  # A picture of the network's input size, no box: the crop is the picture,
  # centred, so the input must be RGB plus the training centre map at the
  # crop centre (`augment.centre_map`, as `augment.with_centre_map` draws it).
  model = tiny.MODEL.clone(centre_map=True)
  pose_model = tiny.pose_model()
  params = cpm.init(model, jax.random.key(1), (SIZE, SIZE), pose_model)
  sigma = 3.0
  net = inference.Network(model, params, input_size=SIZE, person_size=0.75, scales=(1.0,),
                          min_confidence=0.0, pose_model=pose_model, centre_sigma=sigma)
  images, _ = _pictures()
  centre = augment.centre_map(((SIZE - 1) / 2, (SIZE - 1) / 2), SIZE, SIZE, sigma)
  with_map = np.concatenate(
      [images / 255.0, np.broadcast_to(centre[..., None], (*images.shape[:3], 1))], -1)
  ref = jax.device_get(cpm.predict(params, model, with_map.astype(np.float32), pose_model,
                                   min_confidence=0.0))
  people = [p[0] for p in lift3d.predict(net, None, images, subpixel="argmax", num_yaws=YAWS)]
  np.testing.assert_array_equal(_stack(people, "keypoints"), ref.keypoints2d)
  np.testing.assert_allclose(_stack(people, "confidence"), ref.confidence, rtol=0, atol=1e-5)
  # Without the channel the network sees other input: the maps differ.
  rgb_only = np.concatenate([images / 255.0, np.zeros((*images.shape[:3], 1))], -1)
  other = jax.device_get(cpm.predict(params, model, rgb_only.astype(np.float32), pose_model,
                                     min_confidence=0.0))
  assert np.abs(other.confidence - ref.confidence).max() > 1e-3
  # The centre map's width travels with the network's config.
  assert inference.network_from_config(net.config(), params, pose_model).centre_sigma == sigma
