"""Human3.6M frames as person records: one image config per protocol (issue 13).

    from lift3d.data.h36m import images
    images.prepare("~/tensorflow_datasets", "/data/h36m", protocol="protocol1")
    test = images.data_source("~/tensorflow_datasets", protocol="protocol1", split="test")

Two layouts of the manual directory are accepted (detected automatically):

1. "videos", the original release: `S*/Videos/<Action>.<camera>.mp4`
   (decoded with PyAV) with the poses of `S*/MyPoseFeatures/
   D3_Positions_mono/` and `D2_Positions/` (CDF, read as in
   `lift3d.data.h36m.sources`).
2. "extracted", the widely used frame extraction (mmpose's
   preprocess_h36m.py): `images/S1/S1_Directions_1.54138969/
   S1_Directions_1.54138969_000001.jpg` (the file number is the 50 fps frame
   index + 1) with `annotation_body3d/fps50/` or `fps10/h36m_{train,test}.npz`
   holding `imgname`, `center`, `scale`, `part` (N, 17, 3: pixels and a
   flag) and `S` (N, 17, 4: camera frame, metres, and a flag), H36M17 order.
   fps50 is used when present. At fps10 (every 5th frame) only Protocol #1's
   test frames are all there; the other protocols need fps50 or the videos.

Frames: "train" holds the training subjects (S1, S5, S6, S7, S8), all four
cameras, every `train_frame_step`-th frame; "test" exactly the protocol's
test frames (`lift3d.data.h36m.splits`; a missing one is an error naming it).

Each record stores a person-centred crop rather than the whole 1000×1000
frame: a square of `CROP_MARGIN` times the larger side of the box of the
projected 2D joints, centred on it (padded with black outside the frame),
at full resolution. Fields (see `lift3d.data.person_records`): `image` (JPEG
of the crop), `keypoints` (17, 2) crop pixels, `visibility` (all 1: the
mocap labels every joint), `box` (the 2D joints' box enlarged by 1/10, crop
pixels), `image_id` (running number in the split), `layout` "h36m17", and
`crop_offset` (2,) (frame pixels = crop pixels + offset), `pose3d_camera`
(17, 3) mm (camera frame, x right, y down, z forward), `subject`, `action`
(canonical), `raw_action`, `subaction`, `camera`, `frame` (50 fps index).
"""

from __future__ import annotations

import dataclasses
import glob
import io
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from lift3d.data import person_records
from lift3d.data.h36m import sources, splits
from lift3d.data.h36m.builder import H36mConfig, protocol_config
from lift3d.data.h36m.cameras import CAMERA_IDS
from lift3d.data.person_records import ManualDirError

CROP_MARGIN = 1.5
BOX_MARGIN = 1.1
JPEG_QUALITY = 95
_TRAIN_FRAME_STEP = 10
_EXTRACTED_RATES = ("fps50", "fps10")
_IMGNAME = re.compile(r"(?:.*/)?(S\d+)_(.+)\.(\d+)_(\d+)\.jpg$")


def expected_files_message(manual_dir: str) -> str:
  """The one-line error text saying what the manual directory must hold."""
  return (f"Human3.6M images not found in manual_dir {manual_dir!r}: expected either the "
          f"original release ({manual_dir}/<S>/Videos/<Action>.<camera>.mp4 with "
          f"{manual_dir}/<S>/MyPoseFeatures/D3_Positions_mono/ and D2_Positions/<Action>."
          f"<camera>.cdf) or the extracted frames ({manual_dir}/images/<S>/<S>_<Action>."
          f"<camera>/..._000001.jpg with {manual_dir}/annotation_body3d/fps50 or fps10/"
          "h36m_{train,test}.npz); get Human3.6M from http://vision.imar.ro/human3.6m")


def _extracted_annotations(manual_dir: str) -> str | None:
  for rate in _EXTRACTED_RATES:
    folder = os.path.join(manual_dir, "annotation_body3d", rate)
    if all(os.path.isfile(os.path.join(folder, f"h36m_{s}.npz")) for s in ("train", "test")):
      return folder
  return None


def _video_subjects(manual_dir: str) -> list[str]:
  return [s for s in sources.ALL_SUBJECTS
          if glob.glob(os.path.join(manual_dir, s, "Videos", "*.mp4"))
          and glob.glob(os.path.join(manual_dir, s, "MyPoseFeatures", "D3_Positions_mono",
                                     "*.cdf"))]


def detect_layout(manual_dir: str | None) -> str:
  """"extracted" or "videos"; `ManualDirError` (one line) when neither is there."""
  manual_dir = str(manual_dir)
  if os.path.isdir(os.path.join(manual_dir, "images")) and _extracted_annotations(manual_dir):
    return "extracted"
  if os.path.isdir(manual_dir) and _video_subjects(manual_dir):
    return "videos"
  raise ManualDirError(expected_files_message(manual_dir))


@dataclasses.dataclass(frozen=True)
class Frame:
  """One camera's view of one frame, before cropping.

  Attributes:
    subject, raw_action, subaction, camera, frame: where it comes from.
    keypoints: (17, 2) float32 frame pixels.
    pose3d_camera: (17, 3) float32 mm, camera frame.
  """

  subject: str
  raw_action: str
  subaction: int
  camera: str
  frame: int
  keypoints: np.ndarray
  pose3d_camera: np.ndarray


def _selector(protocol: splits.Protocol, split: str, train_frame_step: int):
  if split == "train":
    return lambda subject, camera, subaction, frame: (
        subject in protocol.train_subjects and frame % train_frame_step == 0)
  return protocol.keeps


def crop_box(keypoints: np.ndarray) -> tuple[np.ndarray, int]:
  """The person-centred square crop of a frame (see the module docstring).

  Args:
    keypoints: (L, 2) frame pixels of the person's joints (x right, y down).

  Returns:
    (offset, side): offset (2,) int64, the crop's top-left pixel in the frame
    (frame pixels = crop pixels + offset; may be negative or past the frame,
    which is padded black), and side, the crop's width = height in pixels
    (`CROP_MARGIN` times the joints' larger extent, plus one).
  """
  lo, hi = keypoints.min(0), keypoints.max(0)
  side = int(np.ceil(CROP_MARGIN * float(np.max(hi - lo)))) + 1
  offset = np.floor((lo + hi) / 2 - (side - 1) / 2).astype(np.int64)
  return offset, side


def crop_record(image, frame: Frame) -> dict:
  """The record fields of one frame (see the module docstring) but `image_id`.

  Args:
    image: the whole frame, a PIL image.
    frame: its labels.
  """
  offset, side = crop_box(frame.keypoints)
  crop = image.crop((int(offset[0]), int(offset[1]), int(offset[0]) + side,
                     int(offset[1]) + side))
  buffer = io.BytesIO()
  crop.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
  keypoints = frame.keypoints - offset
  lo, hi = keypoints.min(0), keypoints.max(0)
  size = (hi - lo) * BOX_MARGIN
  box = np.concatenate([(lo + hi) / 2 - size / 2, size])
  action, _ = sources.parse_action(frame.raw_action)
  return {
      "image": buffer.getvalue(),
      "keypoints": keypoints.astype(np.float32),
      "visibility": np.ones(17, np.float32),
      "box": box.astype(np.float32),
      "layout": "h36m17",
      "crop_offset": offset.astype(np.float32),
      "pose3d_camera": frame.pose3d_camera.astype(np.float32),
      "subject": frame.subject,
      "action": action,
      "raw_action": frame.raw_action,
      "subaction": frame.subaction,
      "camera": frame.camera,
      "frame": frame.frame,
  }


def parse_imgname(name: str) -> tuple[str, str, str, int]:
  """"S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg" ->
  ("S1", "Directions 1", "54138969", 0): subject, raw action, camera, 0-based frame."""
  m = _IMGNAME.match(name)
  if not m:
    raise ValueError(f"image name {name!r} is not <S>/<S>_<Action>.<camera>/"
                     "<S>_<Action>.<camera>_<frame>.jpg")
  return m.group(1), m.group(2).replace("_", " "), m.group(3), int(m.group(4)) - 1


def _check_complete(present: dict, extent: dict, protocol: splits.Protocol, where: str) -> None:
  """ManualDirError naming the protocol's test frames missing from `present`.

  Args:
    present: (subject, raw action, camera) -> set of test frames found.
    extent: the same keys -> the sequence's last frame found (any frame).
    protocol: the protocol.
    where: the folder named in the message.
  """
  missing = []
  for key, last in sorted(extent.items()):
    needed = set(range(0, last + 1, protocol.frame_step))
    missing += [(*key, f) for f in sorted(needed - present.get(key, set()))]
  if missing:
    raise ManualDirError(
        f"{where} lacks {len(missing)} of {protocol.name}'s test frames (e.g. "
        f"{missing[:2]} as (subject, action, camera, frame)); extract every frame (fps50) "
        "or give the original videos")


def _extracted_frames(manual_dir: str, protocol, split: str,
                      train_frame_step: int) -> Iterator[tuple[Callable, Frame]]:
  """Parses the split's npz and checks the test frames now; the frames come lazily."""
  folder = _extracted_annotations(manual_dir)
  path = os.path.join(folder, f"h36m_{split}.npz")
  with np.load(path) as f:
    missing = [k for k in ("imgname", "part", "S") if k not in f.files]
    if missing:
      raise ValueError(f"{path}: expected keys imgname, part, S; lacks {missing}")
    names, parts, poses = f["imgname"], f["part"], f["S"]
  parsed = [parse_imgname(str(n)) for n in names]
  trials = {}
  for subject in {p[0] for p in parsed}:
    trials[subject] = sources.trial_numbers({p[1] for p in parsed if p[0] == subject})
  keep = _selector(protocol, split, train_frame_step)
  selected, present, extent = [], {}, {}
  for i, (subject, raw, camera, frame) in enumerate(parsed):
    key = (subject, raw, camera)
    if split == "test" and protocol.keeps(subject, camera, trials[subject][raw], 0):
      extent[key] = max(extent.get(key, 0), frame)  # a tested sequence, to this frame
    if keep(subject, camera, trials[subject][raw], frame):
      selected.append(i)
      present.setdefault(key, set()).add(frame)
  if split == "test":
    _check_complete(present, extent, protocol, folder)

  def load(image_path):
    from PIL import Image

    if not os.path.isfile(image_path):
      raise ManualDirError(f"{image_path} (listed in {path}) is missing; "
                           + expected_files_message(manual_dir))
    return Image.open(image_path)

  def frames():
    for i in selected:
      subject, raw, camera, frame = parsed[i]
      image_path = os.path.join(manual_dir, "images", str(names[i]))
      yield (lambda image_path=image_path: load(image_path)), Frame(
          subject, raw, trials[subject][raw], camera, frame,
          np.asarray(parts[i, :, :2], np.float32),
          (np.asarray(poses[i, :, :3], np.float64) * 1000.0).astype(np.float32))

  return frames()


def decode_frames(path: str, wanted) -> Iterator[tuple[int, object]]:
  """Decodes chosen frames of a video with PyAV, streaming (one frame held at a time).

  Args:
    path: the video file, e.g. `<S>/Videos/<Action>.<camera>.mp4`.
    wanted: iterable of 0-based frame indexes (50 fps for Human3.6M);
      duplicates and order do not matter.

  Yields:
    (index, image) in increasing index order: the frame's int index and an
    RGB PIL image of the whole frame (W×H pixels). Decoding stops after the
    last wanted frame; indexes past the video's end are not yielded (callers
    count what came).
  """
  import av

  wanted = sorted(set(int(w) for w in wanted))
  if not wanted:
    return
  with av.open(path) as container:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    targets = iter(wanted)
    target = next(targets)
    for index, frame in enumerate(container.decode(stream)):
      if index == target:
        yield index, frame.to_image()
        target = next(targets, None)
        if target is None:
          return


def _video_frames(manual_dir: str, protocol, split: str,
                  train_frame_step: int) -> Iterator[tuple[Callable, Frame]]:
  subjects = [s for s in _video_subjects(manual_dir)
              if s in (protocol.train_subjects if split == "train" else protocol.test_subjects)]
  keep = _selector(protocol, split, train_frame_step)
  for rec in sources.read_cdf(manual_dir, subjects):
    frames = [f for f in range(rec.num_frames)
              if keep(rec.subject, rec.camera, rec.subaction, f)]
    if not frames:
      continue
    path = os.path.join(manual_dir, rec.subject, "Videos", f"{rec.raw_action}.{rec.camera}.mp4")
    if not os.path.isfile(path):
      raise ManualDirError(f"{path} is missing (its poses are there); "
                           + expected_files_message(manual_dir))
    count = 0
    for f, image in decode_frames(path, frames):  # streamed: one decoded frame at a time
      count += 1
      yield (lambda image=image: image), Frame(
          rec.subject, rec.raw_action, rec.subaction, rec.camera, f, rec.pose2d_gt[f],
          rec.pose3d_camera[f])
    if count < len(frames):
      message = (f"{path} gave {count} of the {len(frames)} frames wanted (the poses have "
                 f"{rec.num_frames})")
      if split == "test":
        raise ManualDirError(message + f": {protocol.name}'s test frames are incomplete")
      logging.warning("%s: the rest are skipped", message)


def read_frames(manual_dir: str, protocol: str, split: str,
                train_frame_step: int = _TRAIN_FRAME_STEP) -> Iterator[tuple[Callable, Frame]]:
  """The frames of a split, each with a function that loads its image.

  Args:
    manual_dir: the user's Human3.6M copy (either layout).
    protocol: "protocol1", "protocol2" or "protocol3".
    split: "train" or "test".
    train_frame_step: every n-th training frame.

  Yields:
    (load() -> PIL image of the whole frame, `Frame`).
  """
  layout = detect_layout(manual_dir)
  protocol = splits.get_protocol(protocol)
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
  reader = _extracted_frames if layout == "extracted" else _video_frames
  return reader(manual_dir, protocol, split, int(train_frame_step))


@dataclasses.dataclass
class H36mImagesConfig(H36mConfig):
  """A protocol's frames as person crops: `H36mConfig` with every 10th training frame.

  Attributes:
    protocol: key of `lift3d.data.h36m.splits.PROTOCOLS`.
    train_frame_step: keep every n-th frame of the training subjects.
  """

  train_frame_step: int = _TRAIN_FRAME_STEP


def _configs():
  return [H36mImagesConfig(name=name, description=f"Human3.6M crops, {name} test frames",
                           protocol=name) for name in splits.PROTOCOLS]


class Lift3dH36mImages(tfds.core.GeneratorBasedBuilder):
  """Human3.6M person crops with 2D and 3D labels, per protocol."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First version (issue 13)."}
  BUILDER_CONFIGS = _configs()
  DEFAULT_CONFIG_NAME = "protocol1"
  MANUAL_DOWNLOAD_INSTRUCTIONS = expected_files_message("<manual_dir>")

  def _info(self) -> tfds.core.DatasetInfo:
    f = tfds.features
    return tfds.core.DatasetInfo(
        builder=self,
        description="Human3.6M frames as person-centred crops, 2D and 3D labels (H36M17).",
        features=person_records.person_features(
            17, crop_offset=f.Tensor(shape=(2,), dtype=np.float32),
            pose3d_camera=f.Tensor(shape=(17, 3), dtype=np.float32), subject=f.Text(),
            action=f.Text(), raw_action=f.Text(), subaction=f.Scalar(dtype=np.int32),
            camera=f.Text(), frame=f.Scalar(dtype=np.int32)),
        disable_shuffling=True,
        homepage="http://vision.imar.ro/human3.6m",
    )

  def _split_generators(self, dl_manager):
    manual_dir = person_records.manual_dir_of(dl_manager)
    detect_layout(manual_dir)
    cfg = self.builder_config
    # The readers check what they can (the extracted layout's test frames)
    # before anything is written; frames are decoded lazily.
    return {split: self._generate_examples(
        read_frames(manual_dir, cfg.protocol, split, cfg.train_frame_step))
        for split in ("train", "test")}

  def _generate_examples(self, frames):
    for image_id, (load, frame) in enumerate(frames):
      record = crop_record(load(), frame)
      record["image_id"] = image_id
      yield f"{frame.subject}/{frame.raw_action}/{frame.camera}/{frame.frame:06d}", record


def make_builder(data_dir: str, protocol: str = "protocol1", *,
                 train_frame_step: int = _TRAIN_FRAME_STEP) -> Lift3dH36mImages:
  """The builder of a protocol's image config (prepared or not), writing array_record.

  Args:
    data_dir: the TFDS data directory (`~` is expanded).
    protocol: "protocol1", "protocol2" or "protocol3" (`ValueError` otherwise).
    train_frame_step: every n-th training frame (a non-default value makes a
      config of its own, "<protocol>_train<n>").

  Returns:
    A `Lift3dH36mImages` (`prepare` writes its records).
  """
  splits.get_protocol(protocol)
  config = protocol_config(H36mImagesConfig, protocol, train_frame_step, _TRAIN_FRAME_STEP)
  return Lift3dH36mImages(config=config, data_dir=os.path.expanduser(data_dir),
                          file_format="array_record")


def prepare(data_dir: str, manual_dir: str, protocol: str = "protocol1", *,
            train_frame_step: int = _TRAIN_FRAME_STEP) -> Lift3dH36mImages:
  """Crops the frames of the manual directory into array_record files (once).

  Args:
    data_dir: the TFDS data directory the records go to.
    manual_dir: the user's Human3.6M copy with images (see the module docstring).
    protocol: "protocol1", "protocol2" or "protocol3".
    train_frame_step: every n-th training frame (a non-default value makes
      a config of its own, "<protocol>_train<n>").

  Returns:
    The prepared builder.
  """
  builder = make_builder(data_dir, protocol, train_frame_step=train_frame_step)
  person_records.prepare_builder(builder, manual_dir, detect_layout)
  return builder


def data_source(data_dir: str, protocol: str = "protocol1", split: str = "test", *,
                train_frame_step: int = _TRAIN_FRAME_STEP):
  """Random-access source of a prepared split (no TensorFlow; read with grain).

  Args:
    data_dir: the TFDS data directory given to `prepare`.
    protocol: "protocol1", "protocol2" or "protocol3".
    split: "train" or "test" (`ValueError` otherwise).
    train_frame_step: the step given to `prepare` (picks its config).

  Returns:
    A sequence of record dicts (see the module docstring): "image" JPEG bytes
    of the crop, "keypoints" (17, 2) float32 crop pixels, "pose3d_camera"
    (17, 3) float32 mm, "crop_offset" (2,) float32 pixels, ...
  """
  if split not in ("train", "test"):
    raise ValueError(f"Human3.6M image split must be 'train' or 'test', got {split!r}")
  config = make_builder(data_dir, protocol, train_frame_step=train_frame_step).builder_config
  return person_records.data_source(f"{Lift3dH36mImages.name}/{config.name}", data_dir, split)


__all__ = ["CAMERA_IDS", "Frame", "H36mImagesConfig", "Lift3dH36mImages", "crop_box",
           "crop_record", "data_source", "decode_frames", "detect_layout", "make_builder",
           "parse_imgname", "prepare", "read_frames"]
