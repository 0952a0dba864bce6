"""Tests of lift3d.data.h36m.images: fakes of both image layouts, cropped and read back."""

import io
import os
import tempfile

import numpy as np
import pytest
from PIL import Image

from lift3d.data import fake_datasets
from lift3d.data.h36m import images
from lift3d.data.h36m.splits import PROTOCOLS
from lift3d.data.person_records import ManualDirError

# Short sequences keep the fakes small: 50 fps frames 0..10.
NUM_FRAMES = 11
SUBJECTS = ("S1", "S11")


def _window(image, offset, side):
  """The side×side window of `image` at integer `offset` (x, y), black outside."""
  pad = 2 * side
  frame = np.zeros((image.shape[0] + 2 * pad, image.shape[1] + 2 * pad, 3))
  frame[pad:pad + image.shape[0], pad:pad + image.shape[1]] = image
  x0, y0 = (int(v) + pad for v in offset)
  return frame[y0:y0 + side, x0:x0 + side]


def _pool(image, k=4):
  n = image.shape[0] // k * k
  return image[:n, :n].reshape(n // k, k, n // k, k, 3).mean(axis=(1, 3))


def _mean_error(a, b):
  return float(np.mean(np.abs(a - b)))


@pytest.fixture(scope="module")
def prepared():
  with tempfile.TemporaryDirectory() as root:
    out = {}
    for layout, write in (("extracted", fake_datasets.write_h36m_extracted),
                          ("videos", fake_datasets.write_h36m_videos)):
      manual = os.path.join(root, layout)
      truth = write(manual, subjects=SUBJECTS, num_frames=NUM_FRAMES)
      data_dir = os.path.join(root, "tfds_" + layout)
      assert images.detect_layout(manual) == layout
      images.prepare(data_dir, manual, "protocol1", train_frame_step=5)
      out[layout] = (truth, {s: images.data_source(data_dir, "protocol1", s, train_frame_step=5)
                             for s in ("train", "test")}, manual)
    yield out


@pytest.mark.parametrize("layout", ["extracted", "videos"])
def test_counts_and_labels(prepared, layout):
  truth, sources, _ = prepared[layout]
  by_key = {(t.subject, t.raw_action, t.camera, t.frame): t for t in truth}
  # Protocol 1 test: S11, both trials, 4 cameras, frames 0, 5, 10; training
  # (step 5): S1, the same frames.
  assert len(sources["test"]) == len(sources["train"]) == 2 * 4 * 3
  checked = 0
  for split, subject in (("train", "S1"), ("test", "S11")):
    for record in sources[split]:
      key = (record["subject"].decode(), record["raw_action"].decode(),
             record["camera"].decode(), int(record["frame"]))
      assert key[0] == subject and key[3] % 5 == 0
      t = by_key[key]
      assert record["subaction"] == (1 if key[1] == "Directions" else 2)
      offset = record["crop_offset"]
      # Crop pixels + offset = the frame's labels; 3D in mm as planted.
      np.testing.assert_allclose(record["keypoints"] + offset, t.keypoints, atol=1e-3)
      np.testing.assert_allclose(record["pose3d_camera"], t.pose3d_camera, rtol=1e-5, atol=1e-2)
      crop = np.asarray(Image.open(io.BytesIO(record["image"])).convert("RGB"), np.float64)
      side = crop.shape[0]
      assert crop.shape == (side, side, 3)
      # The crop holds the person: the box of its joints, enlarged, inside it.
      lo, hi = record["keypoints"].min(0), record["keypoints"].max(0)
      assert np.all(lo > 0) and np.all(hi < side - 1)
      assert side >= 1.5 * np.max(hi - lo)
      # ... and it is that part of the planted frame, much closer to it than to
      # the frame shifted by a few pixels (compared as 4×4 means: JPEG and
      # H.264 wash out the renders' finest stripes).
      errors = [_mean_error(_pool(crop), _pool(_window(t.image, offset + shift, side)))
                for shift in ((0, 0), (5, 0), (0, 5), (-4, 3))]
      assert errors[0] < 6.0 and errors[0] < 0.5 * min(errors[1:]), errors
      checked += 1
  assert checked == 48


def test_test_frames_must_be_complete():
  with tempfile.TemporaryDirectory() as root:
    # Extracted at 10 fps, 70 frames: Protocol 2 wants frames 0 and 64, and
    # 64 was not extracted.
    fake_datasets.write_h36m_extracted(root, subjects=("S11",), raw_actions=("Directions",),
                                       num_frames=70)
    assert PROTOCOLS["protocol2"].frame_step == 64
    with pytest.raises(ManualDirError, match=r"fps10 lacks 4 of protocol2's test frames"):
      images.prepare(os.path.join(root, "tfds"), root, "protocol2")


def test_missing_manual_dir():
  with tempfile.TemporaryDirectory() as d:
    with pytest.raises(ManualDirError, match=r"Videos/<Action>\.<camera>\.mp4.*annotation_body3d")\
        as err:
      images.prepare(os.path.join(d, "tfds"), os.path.join(d, "none"))
    assert "\n" not in str(err.value)


def test_image_names():
  assert images.parse_imgname("S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg") \
      == ("S1", "Directions 1", "54138969", 0)
  assert images.parse_imgname("S9_TakingPhoto.60457274_000123.jpg") == (
      "S9", "TakingPhoto", "60457274", 122)
  with pytest.raises(ValueError, match="image name"):
    images.parse_imgname("S1/frame.png")
