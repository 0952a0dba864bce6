"""Tests of lift3d.data.coco: a fake 2017 release (crowd, empty and normal annotations)."""

import json
import os
import tempfile

import numpy as np
import pytest

from lift3d.data import coco, fake_datasets
from lift3d.data.person_records import ManualDirError


@pytest.fixture(scope="module")
def prepared():
  with tempfile.TemporaryDirectory() as root:
    manual = os.path.join(root, "coco")
    truth = fake_datasets.write_coco(manual, num_images=4)
    data_dir = os.path.join(root, "tfds")
    coco.prepare(data_dir, manual, "train")
    yield truth, {s: coco.data_source(data_dir, s) for s in coco.SPLITS}, manual


def test_counts_and_dropped_annotations(prepared):
  truth, sources, manual = prepared
  for split in coco.SPLITS:
    with open(coco.annotation_path(manual, split)) as f:
      annotations = json.load(f)["annotations"]
    crowd = [a for a in annotations if a["iscrowd"]]
    empty = [a for a in annotations if not a["iscrowd"] and a["num_keypoints"] == 0]
    no_box = [a for a in annotations if a["num_keypoints"] and a["bbox"][2] == 0]
    assert len(crowd) == len(empty) == len(no_box) == 1
    # 4 images, 1 or 2 people each: 6 people; the three others are dropped.
    assert len(annotations) == 6 + 3
    assert len(sources[split]) == sum(t.split == split for t in truth) == 6
    kept = {int(r["annotation_id"]) for r in sources[split]}
    assert not kept & {a["id"] for a in crowd + empty + no_box}


def test_records_match_the_planted_truth(prepared):
  truth, sources, manual = prepared
  checked = 0
  for split in coco.SPLITS:
    want = [t for t in truth if t.split == split]
    for record, t in zip(sources[split], want, strict=True):
      assert record["image_id"] == t.image_id
      assert record["layout"] == b"coco17"
      np.testing.assert_array_equal(record["keypoints"], t.keypoints)  # NaN where v = 0
      np.testing.assert_array_equal(record["visibility"], t.visibility)
      np.testing.assert_allclose(record["box"], t.box, atol=1e-5)
      with open(os.path.join(coco.image_dir(manual, split), t.image_name), "rb") as f:
        assert record["image"] == f.read()
      # Integer COCO keypoints are the renderer's labels to within rounding.
      labelled = np.isfinite(t.keypoints[:, 0])
      direct = fake_datasets.h36m17_to_coco17(t.keypoints17)
      np.testing.assert_array_less(np.abs(record["keypoints"][labelled] - direct[labelled]),
                                   0.5 + 1e-4)
      checked += 1
  assert checked == len(truth) == 12


def test_missing_and_incomplete_manual_dir(prepared):
  _, _, manual = prepared
  with tempfile.TemporaryDirectory() as d:
    with pytest.raises(ManualDirError, match=r"person_keypoints_train2017\.json with "
                                             r".*train2017/\*\.jpg") as err:
      coco.prepare(os.path.join(d, "tfds"), d)
    assert "\n" not in str(err.value)
    partial = os.path.join(d, "partial")
    os.makedirs(os.path.join(partial, "annotations"))
    for split in coco.SPLITS:
      os.makedirs(coco.image_dir(partial, split))
      os.link(coco.annotation_path(manual, split), coco.annotation_path(partial, split))
    with pytest.raises(ManualDirError, match=r"4 annotated COCO images are missing from"):
      coco.prepare(os.path.join(d, "tfds"), partial)
