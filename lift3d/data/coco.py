"""COCO person keypoints as a TFDS dataset (manual download, array_record, no TensorFlow).

    import lift3d.data.coco as coco
    coco.prepare(data_dir="~/tensorflow_datasets", manual_dir="/data/coco", split="train")
    source = coco.data_source("~/tensorflow_datasets", "validation")

The manual directory holds the 2017 release as downloaded from
https://cocodataset.org: `annotations/person_keypoints_{train,val}2017.json`
and the images `{train,val}2017/*.jpg`. Split "train" is train2017,
"validation" is val2017.

One record per person annotation that has keypoints: crowd annotations
(`iscrowd`), annotations with `num_keypoints == 0` and boxes of zero width or
height are dropped. Fields (see `lift3d.data.person_records`): `image` (the
original JPEG bytes), `keypoints` (17, 2) in COCO order
(`lift3d.skeleton.COCO17_NAMES`), `visibility`, `box`, `image_id` (COCO's
id), `layout` "coco17", and also `annotation_id` and `area`.

Conventions: COCO keypoints are pixel indices (the first pixel is 0) and so
already in lift3d's pixels (centres at integers); `v = 0` is unlabelled
(NaN), `v = 1` labelled but hidden (visibility 0), `v = 2` visible. COCO
boxes are continuous coordinates (the image spans [0, W]): we subtract 1/2
from x and y to put them in the same pixels as the keypoints.
"""

from __future__ import annotations

import json
import logging
import os
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from lift3d.data import person_records
from lift3d.data.person_records import ManualDirError

NUM_JOINTS = 17
LAYOUT = "coco17"
SPLITS = ("train", "validation")
_YEAR = "2017"
_FOLDERS = {"train": f"train{_YEAR}", "validation": f"val{_YEAR}"}
PERSON_CATEGORY = 1


def annotation_path(manual_dir: str, split: str) -> str:
  """The keypoint annotation file of a split in the user's COCO copy.

  Args:
    manual_dir: the user's COCO copy (see the module docstring).
    split: "train" or "validation" (any other raises `KeyError`).

  Returns:
    The path `<manual_dir>/annotations/person_keypoints_{train,val}2017.json`.
  """
  return os.path.join(manual_dir, "annotations", f"person_keypoints_{_FOLDERS[split]}.json")


def image_dir(manual_dir: str, split: str) -> str:
  """The image folder of `split`."""
  return os.path.join(manual_dir, _FOLDERS[split])


def expected_files_message(manual_dir: str) -> str:
  """The one-line error text saying what the manual directory must hold."""
  want = ", ".join(f"{annotation_path(manual_dir, s)} with {image_dir(manual_dir, s)}/*.jpg"
                   for s in SPLITS)
  return (f"COCO keypoints not found in manual_dir {manual_dir!r}: expected {want} "
          "(download annotations_trainval2017.zip, train2017.zip and val2017.zip from "
          "https://cocodataset.org and unpack them there)")


def check_manual_dir(manual_dir: str | None) -> None:
  """Raises `ManualDirError` (one line) unless both splits' annotations and folders are there."""
  manual_dir = str(manual_dir)
  for split in SPLITS:
    if not (os.path.isfile(annotation_path(manual_dir, split))
            and os.path.isdir(image_dir(manual_dir, split))):
      raise ManualDirError(expected_files_message(manual_dir))


def keeps(annotation: dict) -> bool:
  """Whether a COCO annotation becomes a record (a non-crowd person with keypoints and a box)."""
  box = annotation.get("bbox") or [0, 0, 0, 0]
  return (annotation.get("category_id", PERSON_CATEGORY) == PERSON_CATEGORY
          and not annotation.get("iscrowd", 0)
          and annotation.get("num_keypoints", 0) > 0
          and len(box) == 4 and box[2] > 0 and box[3] > 0)


def person_arrays(annotation: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """keypoints (17, 2) px (NaN unlabelled), visibility (17,), box (4,) of one annotation."""
  raw = np.asarray(annotation["keypoints"], np.float64).reshape(NUM_JOINTS, 3)
  labelled = raw[:, 2] > 0
  keypoints = np.where(labelled[:, None], raw[:, :2], np.nan).astype(np.float32)
  visibility = (raw[:, 2] == 2).astype(np.float32)
  box = np.asarray(annotation["bbox"], np.float64) - [0.5, 0.5, 0.0, 0.0]
  return keypoints, visibility, box.astype(np.float32)


def read_annotations(manual_dir: str, split: str) -> tuple[list[dict], dict[int, dict]]:
  """Reads one split's COCO keypoint file and keeps the person annotations (`keeps`).

  Args:
    manual_dir: the user's COCO copy (see the module docstring).
    split: "train" or "validation".

  Returns:
    (kept, images): the kept annotation dicts in file order (COCO's fields:
    "keypoints" a flat list of 17 (x, y, flag) in pixels with corner-based
    coordinates, "bbox" x, y, w, h pixels, ...; `person_arrays` converts
    them), and the image dicts of the file keyed by int image id.

  Raises:
    ValueError: naming the file when it lacks "images" or "annotations", or
      when a kept annotation refers to an image id it does not list.
  """
  path = annotation_path(manual_dir, split)
  with open(path) as f:
    data = json.load(f)
  for key in ("images", "annotations"):
    if key not in data:
      raise ValueError(f"{path}: expected a COCO keypoints file with {key!r}, found {sorted(data)}")
  images = {int(im["id"]): im for im in data["images"]}
  kept = [a for a in data["annotations"] if keeps(a)]
  unknown = sorted({a["image_id"] for a in kept} - set(images))
  if unknown:
    raise ValueError(f"{path}: annotations refer to unknown image ids {unknown[:5]}")
  logging.info("coco %s: %d of %d annotations kept", split, len(kept), len(data["annotations"]))
  return kept, images


class Lift3dCoco(tfds.core.GeneratorBasedBuilder):
  """COCO 2017 person keypoints: one record per kept person annotation."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First version (issue 13)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = expected_files_message("<manual_dir>")

  def _info(self) -> tfds.core.DatasetInfo:
    f = tfds.features
    return tfds.core.DatasetInfo(
        builder=self,
        description="COCO 2017 people with keypoints (17 joints) and their JPEG images.",
        features=person_records.person_features(
            NUM_JOINTS, annotation_id=f.Scalar(dtype=np.int64), area=f.Scalar(dtype=np.float32)),
        disable_shuffling=True,
        homepage="https://cocodataset.org",
    )

  def _split_generators(self, dl_manager):
    manual_dir = person_records.manual_dir_of(dl_manager)
    check_manual_dir(manual_dir)
    out = {}
    for split in SPLITS:
      kept, images = read_annotations(manual_dir, split)
      folder = image_dir(manual_dir, split)
      missing = sorted({images[a["image_id"]]["file_name"] for a in kept
                        if not os.path.isfile(os.path.join(folder, images[a["image_id"]]["file_name"]))})
      if missing:
        raise ManualDirError(f"{len(missing)} annotated COCO images are missing from {folder} "
                             f"(e.g. {missing[:3]}); " + expected_files_message(manual_dir))
      out[split] = self._generate_examples(folder, kept, images)
    return out

  def _generate_examples(self, folder, kept, images):
    for a in kept:
      keypoints, visibility, box = person_arrays(a)
      with open(os.path.join(folder, images[a["image_id"]]["file_name"]), "rb") as f:
        image = f.read()
      yield int(a["id"]), {
          "image": image,
          "keypoints": keypoints,
          "visibility": visibility,
          "box": box,
          "image_id": int(a["image_id"]),
          "layout": LAYOUT,
          "annotation_id": int(a["id"]),
          "area": np.float32(a.get("area", 0.0)),
      }


_DATASET = person_records.ImageDataset("COCO", Lift3dCoco, SPLITS, check_manual_dir)


def make_builder(data_dir: str) -> Lift3dCoco:
  """The builder (prepared or not), writing array_record under `data_dir`.

  Args:
    data_dir: the TFDS data directory (`~` is expanded).

  Returns:
    A `Lift3dCoco` (`prepare` writes its records).
  """
  return _DATASET.make_builder(data_dir)


def prepare(data_dir: str, manual_dir: str, split: str = "train") -> Lift3dCoco:
  """Converts the manual directory into array_record files (once; later calls reuse them).

  Both splits are written together; `split` is checked only.

  Args:
    data_dir: the TFDS data directory the records go to.
    manual_dir: the user's COCO copy (see the module docstring).
    split: "train" or "validation".

  Returns:
    The prepared builder.
  """
  return _DATASET.prepare(data_dir, manual_dir, split)


def data_source(data_dir: str, split: str = "train"):
  """Random-access source of a prepared split (records as in the module docstring).

  Args:
    data_dir: the TFDS data directory given to `prepare`.
    split: "train" or "validation".

  Returns:
    A sequence of record dicts; use it with grain.
  """
  return _DATASET.data_source(data_dir, split)
