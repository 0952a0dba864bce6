"""MPII Human Pose as a TFDS dataset (manual download, array_record, no TensorFlow).

    import lift3d.data.mpii as mpii
    mpii.prepare(data_dir="~/tensorflow_datasets", manual_dir="/data/mpii", split="train")
    source = mpii.data_source("~/tensorflow_datasets", "train")

The manual directory holds the release as downloaded from
http://human-pose.mpi-inf.mpg.de: `mpii_human_pose_v1_u12_1.mat` (the MATLAB
struct `RELEASE`, read with `scipy.io.loadmat`) and `images/*.jpg`.

One record per annotated person (an `annorect` with `annopoints`) of the
training images (`img_train == 1`; the test images have no joints). Fields
(see `lift3d.data.person_records`): `image` (the original JPEG bytes),
`keypoints` (16, 2) in MPII16 order (`lift3d.skeleton.MPII16_NAMES`, the
`point.id` order), `visibility`, `box`, `image_id` (0-based `annolist`
index), `layout` "mpii16", and also `image_name`, `person` (0-based
`annorect` index), `head_box` (4,) x, y, w, h (the PCKh head segment box),
`scale` (person height / 200 px) and `single_person`.

Conventions:
- MATLAB pixels are 1-based (the first pixel's centre is 1); we subtract 1 so
  that pixel centres sit at integers from 0, as everywhere in lift3d.
- `box`: a square of side 200·scale around `objpos` (MPII's own person
  position and size; the CPM papers crop around them); a person without
  `objpos`/`scale` gets the box of its labelled joints, enlarged by 1/5.
- `is_visible`: 0 or "0" is hidden; 1, "1" or a missing (empty) flag is
  visible (the release leaves it empty on some joints that are drawn).

Splits **(choice)**: the release has no labelled validation set; "validation"
holds the training images whose name has `zlib.crc32(name) % 10 == 0` (about
a tenth, fixed by the names alone, so every copy agrees), "train" the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import zlib
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from lift3d.data import person_records
from lift3d.data.person_records import ManualDirError, as_float_or_nan

ANNOTATION_FILE = "mpii_human_pose_v1_u12_1.mat"
IMAGE_DIR = "images"
NUM_JOINTS = 16
LAYOUT = "mpii16"
SPLITS = ("train", "validation")
VALIDATION_MODULUS = 10  # validation: crc32(image name) % 10 == 0


@dataclasses.dataclass(frozen=True)
class Person:
  """One annotated person of the release (0-based pixels).

  Attributes:
    image_id: 0-based index into `annolist`.
    image_name: the file name under `images/`.
    person: 0-based index into the image's `annorect`.
    keypoints: (16, 2) float32 pixels, MPII16 order, NaN where unlabelled.
    visibility: (16,) float32.
    box: (4,) float32 x, y, w, h.
    head_box: (4,) float32 x, y, w, h (NaN if absent).
    scale: person height / 200 px (NaN if absent).
    single_person: whether the release lists it as a single (isolated) person.
  """

  image_id: int
  image_name: str
  person: int
  keypoints: np.ndarray
  visibility: np.ndarray
  box: np.ndarray
  head_box: np.ndarray
  scale: float
  single_person: bool


def split_of(image_name: str) -> str:
  """"validation" or "train" for a training image (see the module docstring)."""
  return "validation" if zlib.crc32(image_name.encode()) % VALIDATION_MODULUS == 0 else "train"


def expected_files_message(manual_dir: str) -> str:
  """The one-line error text saying what the manual directory must hold."""
  return (f"MPII Human Pose not found in manual_dir {manual_dir!r}: expected "
          f"{os.path.join(manual_dir, ANNOTATION_FILE)} and {os.path.join(manual_dir, IMAGE_DIR)}"
          "/*.jpg (download both from http://human-pose.mpi-inf.mpg.de and unpack them there)")


def _items(value) -> list:
  """A (squeezed) MATLAB struct array as a list: [] for empty, [x] for one struct."""
  if isinstance(value, np.ndarray):
    return list(value.ravel())
  return [value]


def _field(struct, name, default=None):
  value = getattr(struct, name, default)
  if isinstance(value, np.ndarray) and value.size == 0:
    return default
  return value


def _visible(flag) -> float:
  value = as_float_or_nan(flag)
  return 1.0 if not np.isfinite(value) else float(value != 0)


def _person(image_id, name, index, rect, single) -> Person | None:
  annopoints = _field(rect, "annopoints")
  points = _items(_field(annopoints, "point")) if annopoints is not None else []
  if not points:
    return None
  keypoints = np.full((NUM_JOINTS, 2), np.nan, np.float32)
  visibility = np.zeros(NUM_JOINTS, np.float32)
  for point in points:
    joint = int(as_float_or_nan(point.id))
    if not 0 <= joint < NUM_JOINTS:
      raise ValueError(f"{name}: annorect {index + 1} has a point with id {joint}, "
                       f"expected 0..{NUM_JOINTS - 1}")
    keypoints[joint] = (as_float_or_nan(point.x) - 1.0, as_float_or_nan(point.y) - 1.0)
    visibility[joint] = _visible(_field(point, "is_visible", np.array([])))
  labelled = np.all(np.isfinite(keypoints), axis=-1)
  visibility = np.where(labelled, visibility, 0.0).astype(np.float32)
  if not labelled.any():
    return None
  scale = as_float_or_nan(_field(rect, "scale", np.array([])))
  objpos = _field(rect, "objpos")
  centre = (np.array([as_float_or_nan(objpos.x), as_float_or_nan(objpos.y)]) - 1.0
            if objpos is not None else np.full(2, np.nan))
  if np.isfinite(scale) and scale > 0 and np.all(np.isfinite(centre)):
    side = 200.0 * scale
    box = np.array([centre[0] - side / 2, centre[1] - side / 2, side, side])
  else:
    lo, hi = np.min(keypoints[labelled], 0), np.max(keypoints[labelled], 0)
    size = (hi - lo) * 1.2
    box = np.concatenate([(lo + hi) / 2 - size / 2, size])
  head = [as_float_or_nan(_field(rect, k, np.array([]))) for k in ("x1", "y1", "x2", "y2")]
  head_box = np.array([head[0] - 1.0, head[1] - 1.0, head[2] - head[0], head[3] - head[1]])
  return Person(image_id, name, index, keypoints, visibility, box.astype(np.float32),
                head_box.astype(np.float32), scale, single)


def read_annotations(path: str) -> Iterator[Person]:
  """Every annotated person of the training images of `mpii_human_pose_v1_u12_1.mat`.

  Args:
    path: the annotation file.

  Yields:
    `Person`s in (image, annorect) order.
  """
  import scipy.io  # only the MPII reader needs it

  release = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
  if "RELEASE" not in release:
    raise ValueError(f"{path}: expected the MATLAB struct 'RELEASE', found {sorted(release)}")
  release = release["RELEASE"]
  annolist = _items(release.annolist)
  img_train = np.atleast_1d(np.asarray(release.img_train)).ravel()
  if len(img_train) != len(annolist):
    raise ValueError(f"{path}: {len(annolist)} annolist entries but {len(img_train)} img_train")
  singles = _items(getattr(release, "single_person", np.array([])))
  for image_id, (entry, train) in enumerate(zip(annolist, img_train, strict=True)):
    if not train:
      continue
    name = str(entry.image.name)
    single = {int(s) - 1 for s in np.atleast_1d(singles[image_id]).ravel()
              if np.size(s) and np.isfinite(as_float_or_nan(s))} if image_id < len(singles) else set()
    for index, rect in enumerate(_items(_field(entry, "annorect", np.array([])))):
      person = _person(image_id, name, index, rect, index in single)
      if person is not None:
        yield person


def check_manual_dir(manual_dir: str | None) -> None:
  """Raises `ManualDirError` (one line) unless the annotation file and image folder are there."""
  manual_dir = str(manual_dir)
  if not (os.path.isfile(os.path.join(manual_dir, ANNOTATION_FILE))
          and os.path.isdir(os.path.join(manual_dir, IMAGE_DIR))):
    raise ManualDirError(expected_files_message(manual_dir))


def _check_images(manual_dir: str, people: list[Person]) -> None:
  names = sorted({p.image_name for p in people})
  missing = [n for n in names if not os.path.isfile(os.path.join(manual_dir, IMAGE_DIR, n))]
  if missing:
    raise ManualDirError(
        f"{len(missing)} of the {len(names)} annotated MPII images are missing from "
        f"{os.path.join(manual_dir, IMAGE_DIR)} (e.g. {missing[:3]}); "
        + expected_files_message(manual_dir))


class Lift3dMpii(tfds.core.GeneratorBasedBuilder):
  """MPII Human Pose: one record per annotated person of the training images."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First version (issue 13)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = expected_files_message("<manual_dir>")

  def _info(self) -> tfds.core.DatasetInfo:
    f = tfds.features
    return tfds.core.DatasetInfo(
        builder=self,
        description="MPII Human Pose people (16 joints) with their JPEG images.",
        features=person_records.person_features(
            NUM_JOINTS, image_name=f.Text(), person=f.Scalar(dtype=np.int32),
            head_box=f.Tensor(shape=(4,), dtype=np.float32),
            scale=f.Scalar(dtype=np.float32), single_person=f.Scalar(dtype=np.bool_)),
        disable_shuffling=True,  # records of an image stay together, in release order
        homepage="http://human-pose.mpi-inf.mpg.de",
    )

  def _split_generators(self, dl_manager):
    manual_dir = person_records.manual_dir_of(dl_manager)
    check_manual_dir(manual_dir)
    people = list(read_annotations(os.path.join(manual_dir, ANNOTATION_FILE)))
    _check_images(manual_dir, people)
    return {split: self._generate_examples(manual_dir, [p for p in people
                                                        if split_of(p.image_name) == split])
            for split in SPLITS}

  def _generate_examples(self, manual_dir, people):
    for p in people:
      with open(os.path.join(manual_dir, IMAGE_DIR, p.image_name), "rb") as f:
        image = f.read()
      yield f"{p.image_id:06d}/{p.person:02d}", {
          "image": image,
          "keypoints": p.keypoints,
          "visibility": p.visibility,
          "box": p.box,
          "image_id": p.image_id,
          "layout": LAYOUT,
          "image_name": p.image_name,
          "person": p.person,
          "head_box": p.head_box,
          "scale": np.float32(p.scale),
          "single_person": p.single_person,
      }
    logging.info("mpii: %d people", len(people))


_DATASET = person_records.ImageDataset("MPII", Lift3dMpii, SPLITS, check_manual_dir)


def make_builder(data_dir: str) -> Lift3dMpii:
  """The builder (prepared or not), writing array_record under `data_dir`.

  Args:
    data_dir: the TFDS data directory (`~` is expanded).

  Returns:
    A `Lift3dMpii` (`prepare` writes its records).
  """
  return _DATASET.make_builder(data_dir)


def prepare(data_dir: str, manual_dir: str, split: str = "train") -> Lift3dMpii:
  """Converts the manual directory into array_record files (once; later calls reuse them).

  Both splits are written together; `split` is checked only.

  Args:
    data_dir: the TFDS data directory the records go to.
    manual_dir: the user's MPII copy (see the module docstring).
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
