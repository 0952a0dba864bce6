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

import os

import numpy as np
import tensorflow_datasets as tfds

from lift3d.data.h36m.sources import ManualDirError

__all__ = ["ManualDirError", "data_source", "person_features", "prepare_builder"]


def person_features(num_joints: int, **extra) -> tfds.features.FeaturesDict:
  """The TFDS features of a person record with `num_joints` joints, plus `extra` ones."""
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
