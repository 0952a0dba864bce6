"""Tests of lift3d.data.mpii: a fake release in the real .mat layout, built and read back."""

import os
import tempfile
import zlib

import numpy as np
import pytest

from lift3d.data import fake_datasets, mpii
from lift3d.data.person_records import ManualDirError
from lift3d.skeleton import convert


@pytest.fixture(scope="module")
def prepared():
  with tempfile.TemporaryDirectory() as root:
    manual = os.path.join(root, "mpii")
    truth = fake_datasets.write_mpii(manual, num_images=8)
    data_dir = os.path.join(root, "tfds")
    mpii.prepare(data_dir, manual, "train")
    yield truth, {s: mpii.data_source(data_dir, s) for s in mpii.SPLITS}, manual, data_dir


def test_counts_and_splits(prepared):
  truth, sources, _, _ = prepared
  # 8 training images, every third with two people, one of those without
  # joints (k % 6 == 4), and a test image: 8 + 3 - 1 people.
  assert len(truth) == 10
  for split in mpii.SPLITS:
    want = [t for t in truth if t.split == split]
    assert len(sources[split]) == len(want) > 0, split
    names = {r["image_name"].decode() for r in sources[split]}
    # The documented rule, independently: crc32 of the name modulo 10.
    assert all((zlib.crc32(n.encode()) % 10 == 0) == (split == "validation") for n in names)


def test_records_match_the_planted_truth(prepared):
  truth, sources, manual, _ = prepared
  checked = 0
  for split in mpii.SPLITS:
    want = [t for t in truth if t.split == split]
    for record, t in zip(sources[split], want, strict=True):
      assert record["image_name"].decode() == t.image_name
      assert record["image_id"] == t.image_id
      assert record["layout"] == b"mpii16"
      # 1-based MATLAB pixels became 0-based; the unlabelled joint is NaN.
      np.testing.assert_allclose(record["keypoints"], t.keypoints, atol=1e-4)
      np.testing.assert_array_equal(np.isnan(record["keypoints"]), np.isnan(t.keypoints))
      np.testing.assert_array_equal(record["visibility"], t.visibility)
      np.testing.assert_allclose(record["box"], t.box, atol=1e-3)
      with open(os.path.join(manual, "images", t.image_name), "rb") as f:
        assert record["image"] == f.read()
      # Mapped into H36M17, the labels are the renderer's (but the spine,
      # which MPII lacks, and joints made from the unlabelled one).
      h36m = convert(record["keypoints"], "mpii16",
                     np.isfinite(record["keypoints"][:, 0]).astype(np.float32)).keypoints
      ok = np.isfinite(h36m[:, 0])
      ok[7] = False  # Spine
      assert ok.sum() >= 13
      np.testing.assert_allclose(h36m[ok], t.keypoints17[ok], atol=1e-3)
      checked += 1
  assert checked == len(truth)


def test_single_person_flags(prepared):
  _, sources, _, _ = prepared
  records = [r for s in mpii.SPLITS for r in sources[s]]
  by_image = {}
  for r in records:
    by_image.setdefault(int(r["image_id"]), []).append(bool(r["single_person"]))
  # Images with one person are single; k % 3 == 1 (two people) are not.
  for k, flags in by_image.items():
    assert flags == [k % 3 != 1] * len(flags), (k, flags)


def test_missing_and_incomplete_manual_dir(prepared):
  _, _, manual, _ = prepared
  with tempfile.TemporaryDirectory() as d:
    with pytest.raises(ManualDirError, match=r"expected .*mpii_human_pose_v1_u12_1\.mat and "
                                             r".*images/\*\.jpg") as err:
      mpii.prepare(os.path.join(d, "tfds"), os.path.join(d, "nothing"))
    assert "\n" not in str(err.value)
    # An annotation file whose images are absent (8 training images; the test
    # image has no people): the error names them.
    os.makedirs(os.path.join(d, "partial", "images"))
    os.link(os.path.join(manual, mpii.ANNOTATION_FILE),
            os.path.join(d, "partial", mpii.ANNOTATION_FILE))
    with pytest.raises(ManualDirError, match=r"8 of the 8 annotated MPII images are missing"):
      mpii.prepare(os.path.join(d, "tfds"), os.path.join(d, "partial"))
  with pytest.raises(ValueError, match="split"):
    mpii.data_source("/nowhere", "test")


def test_prepared_records_are_reused(prepared):
  _, sources, _, data_dir = prepared
  again = mpii.prepare(data_dir, "/gone/mpii", "validation")
  assert again.is_prepared()
  assert len(mpii.data_source(data_dir, "validation")) == len(sources["validation"])
