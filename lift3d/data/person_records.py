"""What the image datasets share: one record per annotated person, and its TFDS plumbing.

`lift3d.data.mpii`, `lift3d.data.coco` and the image configs of
`lift3d.data.h36m` write the same kind of record (array_record, no
TensorFlow; see `lift3d.data.h36m.builder` for what works without it):

  image: encoded JPEG bytes (the original file for MPII and COCO; a
    person-centred crop for Human3.6M).
  keypoints: (L, 2) float32 pixels of that image (x right, y down, pixel
    centres at integers); NaN where the joint is not labelled.
  visibility: (L,) float32, 1 for a labelled visible joint, 0 for one
    labelled as hidden or not labelled.
  box: (4,) float32 x, y, w, h of the person in the same pixels (x, y the
    top-left corner; see each dataset for how it is made).
  image_id: int64, the dataset's image number.
  layout: the joint layout of `keypoints` ("mpii16", "coco17", "h36m17"),
    a key of `lift3d.skeleton.LAYOUTS`.

Shape letters: L joints of the dataset's layout.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import tensorflow_datasets as tfds

from lift3d.data.h36m.sources import ManualDirError

__all__ = ["ImageDataset", "ManualDirError", "data_source", "person_features", "prepare_builder"]


def person_features(num_joints: int, **extra) -> tfds.features.FeaturesDict:
  """The TFDS features of a person record (see the module docstring).

  Args:
    num_joints: L, the joints of the dataset's layout.
    **extra: further `tfds.features` by field name (a dataset's own fields).

  Returns:
    A `FeaturesDict`: image (JPEG bytes), keypoints (L, 2) float32 pixels,
    visibility (L,) float32, box (4,) float32 pixels, image_id int64, layout
    text, and `extra`.
  """
  f = tfds.features
  return f.FeaturesDict({
      "image": f.Scalar(dtype=np.object_),  # JPEG bytes (numpy-encodable: no TensorFlow)
      "keypoints": f.Tensor(shape=(num_joints, 2), dtype=np.float32),
      "visibility": f.Tensor(shape=(num_joints,), dtype=np.float32),
      "box": f.Tensor(shape=(4,), dtype=np.float32),
      "image_id": f.Scalar(dtype=np.int64),
      "layout": f.Text(),
      **extra,
  })


def prepare_builder(builder: tfds.core.GeneratorBasedBuilder, manual_dir: str, check) -> None:
  """Writes the builder's array_record files from `manual_dir` unless already prepared.

  Args:
    builder: a builder made with `file_format="array_record"`.
    manual_dir: the user's copy of the dataset.
    check: `check(manual_dir)` raises `ManualDirError` (one message saying
      what is expected where) before anything is written.
  """
  if builder.is_prepared():
    return
  manual_dir = os.path.expanduser(manual_dir)
  check(manual_dir)
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir),
  )


def manual_dir_of(dl_manager) -> str | None:
  """The manual directory a TFDS download manager was given (None if none)."""
  manual_dir = getattr(dl_manager, "_manual_dir", None)
  return os.fspath(manual_dir) if manual_dir else None


def data_source(name: str, data_dir: str, split: str):
  """Random-access source of a prepared split (`tfds.data_source`, read with grain).

  Args:
    name: "<builder name>/<config>" or the builder name.
    data_dir: the TFDS data directory given to `prepare`.
    split: "train", "validation" or "test".

  Returns:
    A sequence of record dicts (see the module docstring).
  """
  return tfds.data_source(name, split=split, data_dir=os.path.expanduser(data_dir))


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """The TFDS plumbing of a person-record dataset with fixed splits (MPII, COCO).

  `lift3d.data.mpii` and `lift3d.data.coco` differ only in these fields; their
  public `make_builder`, `prepare` and `data_source` are thin wrappers.

  Attributes:
    title: the dataset's name in error messages ("MPII", "COCO").
    builder_class: its `GeneratorBasedBuilder`, made with `file_format="array_record"`.
    splits: the split names it writes, e.g. ("train", "validation").
    check_manual_dir: `check_manual_dir(manual_dir)` raises `ManualDirError`
      (one line saying what is expected where) before anything is written.
  """

  title: str
  builder_class: type[tfds.core.GeneratorBasedBuilder]
  splits: tuple[str, ...]
  check_manual_dir: Callable[[str], None]

  def check_split(self, split: str) -> None:
    """Raises `ValueError` naming `split` unless it is one of `splits`."""
    if split not in self.splits:
      raise ValueError(f"{self.title} split must be one of {self.splits}, got {split!r}")

  def make_builder(self, data_dir: str) -> tfds.core.GeneratorBasedBuilder:
    """The builder (prepared or not), writing array_record under `data_dir` (`~` expanded)."""
    return self.builder_class(data_dir=os.path.expanduser(data_dir), file_format="array_record")

  def prepare(self, data_dir: str, manual_dir: str,
              split: str) -> tfds.core.GeneratorBasedBuilder:
    """Converts `manual_dir` into array_record files under `data_dir` (once).

    All splits are written together; `split` is checked only. A prepared
    builder is reused without looking at `manual_dir`.

    Args:
      data_dir: the TFDS data directory the records go to.
      manual_dir: the user's copy of the dataset.
      split: one of `splits`.

    Returns:
      The prepared builder.
    """
    self.check_split(split)
    builder = self.make_builder(data_dir)
    prepare_builder(builder, manual_dir, self.check_manual_dir)
    return builder

  def data_source(self, data_dir: str, split: str):
    """Random-access source of a prepared split (records as in the module docstring).

    Args:
      data_dir: the TFDS data directory given to `prepare`.
      split: one of `splits`.

    Returns:
      A sequence of record dicts; use it with grain.
    """
    self.check_split(split)
    return data_source(self.builder_class.name, data_dir, split)


def as_float_or_nan(value) -> float:
  """A MATLAB/JSON scalar as float; NaN for empty arrays and blanks."""
  arr = np.asarray(value)
  if arr.size != 1:
    return float("nan")
  item = arr.reshape(()).item()
  if isinstance(item, bytes | str):
    item = item.strip()
    return float(item) if item else float("nan")
  return float(item)
