"""A TFDS builder for Human3.6M (manual download, array_record, no TensorFlow).

    import lift3d.data.h36m as h36m
    h36m.prepare(data_dir="~/tensorflow_datasets", manual_dir="/data/h36m",
                 protocol="protocol1")
    source = h36m.data_source(data_dir="~/tensorflow_datasets", protocol="protocol1",
                              split="test")

What works without TensorFlow (checked with tensorflow-datasets 4.9.10): a
`GeneratorBasedBuilder` whose features are numpy-encodable (`Tensor`,
`Scalar`, `Text`) prepares with `file_format="array_record"` through
`download_and_prepare`; `DatasetInfo` must be built directly (not with
`dataset_info_from_configs`, which looks for package metadata files), and the
result is read with `builder.as_data_source()` / `tfds.data_source` (random
access) and `grain`. `as_dataset` (tf.data) is not used.

One builder config per protocol (`lift3d.data.h36m.splits.PROTOCOLS`), each
with two splits:
  * "test": exactly the protocol's test frames;
  * "train": the training subjects (S1, S5, S6, S7, S8), all trials, every
    `train_frame_step`-th frame (10 fps by default), each frame once (as seen
    by camera `TRAIN_CAMERA`; the world pose is the same for all cameras):
    their 3D world poses fit the pose model.

Each example: subject, action (canonical name), raw_action, subaction (trial),
camera, frame (index at 50 fps), pose3d_camera (17, 3) mm, pose3d_world
(17, 3) mm, pose2d_gt (17, 2) px, pose2d_det (17, 2) px (NaN when the copy
has no detections) and has_detection.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

# Attribute access only at call time: person_records imports this package
# (for ManualDirError) and may be the one being imported first.
from lift3d.data import person_records
from lift3d.data.h36m import sources, splits
from lift3d.data.h36m.cameras import CAMERA_IDS

_TRAIN_FRAME_STEP = 5
# The training split keeps each frame once, as seen by this camera.
TRAIN_CAMERA = CAMERA_IDS[0]


@dataclasses.dataclass
class H36mConfig(tfds.core.BuilderConfig):
  """A protocol's selection of frames.

  Attributes:
    protocol: key of `lift3d.data.h36m.splits.PROTOCOLS`.
    train_frame_step: keep every n-th frame of the training subjects.
  """

  protocol: str = "protocol1"
  train_frame_step: int = _TRAIN_FRAME_STEP


def _configs():
  return [
      H36mConfig(name=name, description=f"Human3.6M, {name} test frames + training poses",
                 protocol=name)
      for name in splits.PROTOCOLS
  ]


class Lift3dH36m(tfds.core.GeneratorBasedBuilder):
  """Human3.6M poses (3D camera and world, 2D ground truth and detections)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {
      "1.0.0": "First version: protocols #1-#3 of docs/method.md §7."}
  BUILDER_CONFIGS = _configs()
  DEFAULT_CONFIG_NAME = "protocol1"
  MANUAL_DOWNLOAD_INSTRUCTIONS = sources.expected_files_message("<manual_dir>")

  def _info(self) -> tfds.core.DatasetInfo:
    f = tfds.features
    return tfds.core.DatasetInfo(
        builder=self,
        description="Human3.6M 17-joint poses for the protocols of Lifting from the Deep.",
        features=f.FeaturesDict({
            "subject": f.Text(),
            "action": f.Text(),
            "raw_action": f.Text(),
            "subaction": f.Scalar(dtype=np.int32),
            "camera": f.Text(),
            "frame": f.Scalar(dtype=np.int32),
            "pose3d_camera": f.Tensor(shape=(17, 3), dtype=np.float32),
            "pose3d_world": f.Tensor(shape=(17, 3), dtype=np.float32),
            "pose2d_gt": f.Tensor(shape=(17, 2), dtype=np.float32),
            "pose2d_det": f.Tensor(shape=(17, 2), dtype=np.float32),
            "has_detection": f.Scalar(dtype=np.bool_),
        }),
        # Keep the generation order: records of a sequence stay together and
        # a split reads back in (subject, action, camera, frame) order.
        disable_shuffling=True,
        homepage="http://vision.imar.ro/human3.6m",
    )

  def _split_generators(self, dl_manager):
    manual_dir = person_records.manual_dir_of(dl_manager)
    sources.detect_layout(manual_dir)  # one clear error before anything else
    protocol = splits.get_protocol(self.builder_config.protocol)
    return {
        "train": self._generate_examples(manual_dir, protocol, train=True),
        "test": self._generate_examples(manual_dir, protocol, train=False),
    }

  def _generate_examples(self, manual_dir, protocol, train: bool):
    if train:
      subjects, step = protocol.train_subjects, self.builder_config.train_frame_step

      def keep(rec, frames):
        # One record per frame: the world pose is the same for every camera.
        if rec.camera != TRAIN_CAMERA:
          return frames[:0]
        return frames[frames % step == 0]
    else:
      subjects = protocol.test_subjects

      def keep(rec, frames):
        if rec.camera not in protocol.cameras or rec.subaction not in protocol.subactions:
          return frames[:0]
        return frames[frames % protocol.frame_step == 0]

    count = 0
    for rec in sources.read_recordings(manual_dir, subjects):
      frames = keep(rec, np.arange(rec.num_frames))
      det = rec.pose2d_det
      nan2d = np.full((17, 2), np.nan, np.float32)
      for i in frames:
        key = f"{rec.subject}/{rec.raw_action}/{rec.camera}/{i:06d}"
        yield key, {
            "subject": rec.subject,
            "action": rec.action,
            "raw_action": rec.raw_action,
            "subaction": rec.subaction,
            "camera": rec.camera,
            "frame": int(i),
            "pose3d_camera": rec.pose3d_camera[i],
            "pose3d_world": rec.pose3d_world[i],
            "pose2d_gt": rec.pose2d_gt[i],
            "pose2d_det": nan2d if det is None else det[i],
            "has_detection": det is not None,
        }
        count += 1
    logging.info("h36m %s %s: %d examples", protocol.name, "train" if train else "test", count)


def prepare(data_dir: str, manual_dir: str, protocol: str = "protocol1", *,
            train_frame_step: int = _TRAIN_FRAME_STEP) -> Lift3dH36m:
  """Converts the manual directory into array_record files (once; later calls reuse them).

  Once prepared, the records are reused without looking at `manual_dir`.

  Args:
    data_dir: the TFDS data directory the records go to.
    manual_dir: the user's Human3.6M copy (see `sources.expected_files_message`).
    protocol: "protocol1", "protocol2" or "protocol3".
    train_frame_step: every n-th training frame is kept (a non-default value
      makes a config of its own, named "<protocol>_train<n>").

  Returns:
    The prepared builder (`builder.as_data_source()[split]` reads it).
  """
  splits.get_protocol(protocol)
  builder = make_builder(data_dir, protocol, train_frame_step=train_frame_step)
  person_records.prepare_builder(builder, manual_dir, sources.detect_layout)
  return builder


def make_builder(data_dir: str, protocol: str = "protocol1", *,
                 train_frame_step: int = _TRAIN_FRAME_STEP) -> Lift3dH36m:
  """The builder of a protocol's config (prepared or not), writing array_record.

  Args:
    data_dir: the TFDS data directory (`~` is expanded).
    protocol: "protocol1", "protocol2" or "protocol3" (not checked here;
      `prepare` checks it).
    train_frame_step: every n-th training frame (a non-default value makes a
      config of its own, "<protocol>_train<n>").

  Returns:
    A `Lift3dH36m` (`prepare` writes its records).
  """
  config = protocol_config(H36mConfig, protocol, train_frame_step, _TRAIN_FRAME_STEP)
  return Lift3dH36m(config=config, data_dir=os.path.expanduser(data_dir),
                    file_format="array_record")


def protocol_config(config_class: type, protocol: str, train_frame_step: int,
                    default_train_frame_step: int):
  """The builder config of a protocol with a training frame step (shared with `images`).

  The default step uses the registered config named after the protocol; any
  other step gets a config of its own, "<protocol>_train<n>", so both can be
  prepared side by side under one data directory.

  Args:
    config_class: `H36mConfig` or `images.H36mImagesConfig` (fields
      `protocol`, `train_frame_step`).
    protocol: the protocol's name, e.g. "protocol1".
    train_frame_step: every n-th training frame is kept.
    default_train_frame_step: the step of the registered configs.

  Returns:
    The config name (str) for the default step, else a new `config_class`.
  """
  if train_frame_step == default_train_frame_step:
    return protocol
  return config_class(name=f"{protocol}_train{train_frame_step}", protocol=protocol,
                      train_frame_step=train_frame_step)


def data_source(data_dir: str, protocol: str = "protocol1", split: str = "test"):
  """Random-access source of a prepared split (via `tfds.data_source`, no TensorFlow).

  Args:
    data_dir: the TFDS data directory given to `prepare`.
    protocol: the builder config name.
    split: "train" or "test".

  Returns:
    A sequence of example dicts (see the module docstring); use it with grain.
  """
  return person_records.data_source(f"{Lift3dH36m.name}/{protocol}", data_dir, split)


def read_arrays(source, *, batch_size: int = 4096, fields=None) -> dict[str, np.ndarray]:
  """Reads a whole source into stacked numpy arrays with a grain pipeline.

  Args:
    source: a data source (e.g. from `data_source`).
    batch_size: records per grain batch.
    fields: keys to keep (default all).

  Returns:
    {key: (N, ...) array}; text fields are decoded to str arrays.
  """
  import grain  # heavy; only readers need it

  num = len(source)
  if num == 0:
    return {}
  keep = tuple(fields) if fields is not None else None

  def read_batch(start):
    # One grain element per batch: the source's batched read, stacked here
    # (cheaper than grain's per-record batching).
    records = source.__getitems__(range(start, min(start + batch_size, num)))
    keys = keep if keep is not None else tuple(records[0])
    return {k: np.stack([r[k] for r in records]) for k in keys}

  ds = grain.MapDataset.range(0, num, batch_size).map(read_batch)
  parts: dict[str, list[np.ndarray]] = {}
  for batch in ds:
    for k, v in batch.items():
      parts.setdefault(k, []).append(v)
  out = {k: np.concatenate(v) for k, v in parts.items()}
  for k, v in out.items():
    if v.dtype.kind in "SO":
      out[k] = np.char.decode(v.astype(bytes), "utf-8")
  return out
