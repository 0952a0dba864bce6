"""Tests of lift3d.data.augment and lift3d.data.pipeline: labels stay on the joints."""

import io
import math

import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized
from PIL import Image

from lift3d import train
from lift3d.data import augment, pipeline
from lift3d.skeleton import H36M17

SIZE = 96  # crop side in these tests
OPTIONS = augment.AugmentOptions(input_size=SIZE, person_fraction=0.7, shift=0.08)
# A crop that shrinks the image ~6×: the JPEG is decoded at 1/4 size first.
SMALL = augment.AugmentOptions(input_size=48, person_fraction=0.25, shift=0.08)


def _marker_image(point, height=120, width=160, sigma=1.5):
  """A grey image (the crop's fill level) with a bright round Gaussian marker at `point`."""
  ys, xs = np.mgrid[:height, :width]
  blob = np.exp(-0.5 * ((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / sigma**2)
  grey = OPTIONS.fill + np.rint(120 * blob)
  return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)


def _centroid(crop):
  """Centre of mass of the marker (grey level above the background) in a crop."""
  grey = crop[..., :3].astype(np.float64).mean(-1)
  excess = np.clip(grey - np.median(grey), 0, None)
  excess[excess < 0.2 * excess.max()] = 0  # the marker only, not the noise around it
  ys, xs = np.mgrid[: crop.shape[0], : crop.shape[1]]
  return np.array([np.sum(xs * excess), np.sum(ys * excess)]) / np.sum(excess)


def _draws():
  """Extreme and random augmentations: scale ends, ±40°, flips, colour changes."""
  out = [augment.AugmentParams(),
         augment.AugmentParams(scale=0.7, angle=math.radians(40), flip=True, shift=(5.0, -4.0)),
         augment.AugmentParams(scale=1.3, angle=-math.radians(40), flip=False,
                               brightness=0.8, contrast=1.2, saturation=0.8),
         augment.AugmentParams(scale=1.3, angle=math.radians(-17), flip=True,
                               brightness=1.2, contrast=0.8)]
  rng = np.random.default_rng(3)
  out += [augment.sample_params(rng, OPTIONS) for _ in range(4)]
  return out


class MarkerTest(parameterized.TestCase):

  @parameterized.product(draw=tuple(range(8)), reduced=(False, True))
  def test_markers_stay_under_their_labels(self, draw, reduced):
    """A marker drawn at each joint lies within 1 px of its transformed label.

    One JPEG record per joint (a marker at that joint only) goes through the
    whole pipeline (decode, crop, flip with the left/right swap, colour jitter);
    `reduced`: a small crop, for which the JPEG is decoded at 1/4 size.
    """
    params = _draws()[draw]
    options, size, sigma = (SMALL, 48, 4.0) if reduced else (OPTIONS, SIZE, 1.5)
    if reduced:
      zoom = SMALL.person_fraction * SMALL.input_size / 80.0 * params.scale
      self.assertLessEqual(zoom * 4, 1.0)  # make_example decodes at 1/4
    rng = np.random.default_rng(draw)
    joints = rng.uniform([40, 30], [120, 90], size=(17, 2))  # pixels of a 160×120 image
    box = np.array([40.0, 20.0, 80.0, 80.0])
    checked = 0
    for j in range(17):
      buffer = io.BytesIO()
      Image.fromarray(_marker_image(joints[j], sigma=sigma)).save(buffer, format="JPEG",
                                                                   quality=98)
      record = {"image": buffer.getvalue(), "keypoints": joints.astype(np.float32),
                "visibility": np.ones(17, np.float32), "box": box.astype(np.float32),
                "layout": b"h36m17"}
      out = pipeline.make_example(record, params, options)
      label = H36M17.mirror_permutation[j] if params.flip else j
      want = out["keypoints2d"][label]
      # The returned map takes the record's full-size pixels to the crop.
      np.testing.assert_allclose(augment.transform_points(joints[j], out["matrix"]),
                                 out["keypoints2d"][label], atol=1e-3)
      if not np.all((want > 4) & (want < size - 5)):
        continue  # the marker left the crop
      np.testing.assert_array_less(np.abs(_centroid(out["image"]) - want), 1.0)
      checked += 1
    self.assertGreaterEqual(checked, 12)

  def test_reduced_jpeg_decoding(self):
    buffer = io.BytesIO()
    Image.fromarray(_marker_image((50.0, 40.0))).save(buffer, format="JPEG")
    image, reduction = pipeline.decode_jpeg(buffer.getvalue(), max_reduction=4)
    self.assertEqual((reduction, image.size), (4, (40, 30)))
    image, reduction = pipeline.decode_jpeg(buffer.getvalue())
    self.assertEqual((reduction, image.size), (1, (160, 120)))

  def test_flip_swaps_left_and_right(self):
    # A flip mirrors positions: the person's left wrist label moves to where
    # the mirrored right wrist is.
    joints = np.random.default_rng(0).uniform(30, 90, (17, 2))
    plain = augment.augment(np.zeros((120, 120, 3), np.uint8), joints, np.ones(17), (60, 60),
                            100.0, augment.AugmentParams(), OPTIONS)
    flipped = augment.augment(np.zeros((120, 120, 3), np.uint8), joints, np.ones(17), (60, 60),
                              100.0, augment.AugmentParams(flip=True), OPTIONS)
    left, right = H36M17.index("LWrist"), H36M17.index("RWrist")
    mirror = lambda p: np.array([SIZE - 1 - p[0], p[1]])  # noqa: E731
    np.testing.assert_allclose(flipped["keypoints2d"][right], mirror(plain["keypoints2d"][left]),
                               atol=1e-4)
    np.testing.assert_allclose(flipped["keypoints2d"][H36M17.index("Hip")],
                               mirror(plain["keypoints2d"][H36M17.index("Hip")]), atol=1e-4)


class AugmentTest(absltest.TestCase):

  def test_crop_matrix_closed_form(self):
    params = augment.AugmentParams(scale=1.25, angle=math.radians(30), shift=(2.0, -3.0))
    m = augment.crop_matrix((50.0, 40.0), 80.0, params, OPTIONS)
    zoom = 0.7 * SIZE / 80.0 * 1.25
    # The centre lands on the (shifted) crop centre; a point 10 px to its
    # right turns by 30° (clockwise on screen, y down) and scales by zoom.
    np.testing.assert_allclose(augment.transform_points([50.0, 40.0], m), [49.5, 44.5])
    got = augment.transform_points([60.0, 40.0], m) - [49.5, 44.5]
    np.testing.assert_allclose(got, 10 * zoom * np.array([math.cos(math.pi / 6),
                                                          math.sin(math.pi / 6)]), atol=1e-12)

  def test_centre_map_and_channel(self):
    m = augment.centre_map((10.0, 5.0), 12, 20, sigma=3.0)
    self.assertEqual(m.shape, (12, 20))
    self.assertEqual(np.unravel_index(np.argmax(m), m.shape), (5, 10))
    self.assertAlmostEqual(float(m[5, 13]), math.exp(-0.5), places=6)
    image = augment.with_centre_map(np.zeros((12, 20, 3), np.uint8), (10.0, 5.0), 3.0)
    self.assertEqual(image.shape, (12, 20, 4))
    self.assertEqual(image[5, 10, 3], 255)

  def test_sample_params_within_ranges(self):
    rng = np.random.default_rng(0)
    draws = [augment.sample_params(rng, augment.AugmentOptions()) for _ in range(300)]
    scales = [d.scale for d in draws]
    angles = np.degrees([d.angle for d in draws])
    self.assertTrue(0.7 <= min(scales) < 0.75 and 1.25 < max(scales) <= 1.3)
    self.assertTrue(-40 <= angles.min() < -35 and 35 < angles.max() <= 40)
    self.assertBetween(np.mean([d.flip for d in draws]), 0.4, 0.6)

  def test_belief_targets_match_the_training_targets(self):
    keypoints = np.array([[5.5, 9.5], [np.nan, np.nan], [30.2, 3.1]] + [[12.0, 12.0]] * 14,
                         np.float32)
    ours = augment.belief_targets(keypoints, 8, 8, stride=4, sigma=1.0)
    theirs, _ = train.target_maps(jnp.asarray(keypoints[None]), jnp.ones((1, 17)), 8, 8,
                                  stride=4, sigma=1.0)
    np.testing.assert_allclose(ours, np.asarray(theirs)[0], atol=1e-6)

  def test_bad_options(self):
    with self.assertRaisesRegex(ValueError, "scale"):
      augment.AugmentOptions(scale=(1.2, 0.8))
    with self.assertRaisesRegex(ValueError, "box_size"):
      augment.crop_matrix((0, 0), 0.0, augment.AugmentParams(), OPTIONS)


if __name__ == "__main__":
  absltest.main()
