"""Readers of the keypoint files that 2D detectors write, as sequences of frames.

- OpenPose writes one JSON file per frame, `{"people": [{"pose_keypoints_2d":
  [x, y, c] * S, ...}, ...]}` (S = 25 for BODY_25), with (0, 0, 0) for joints
  it did not find.
- COCO keypoint results (and AlphaPose, whose `image_id` is the image's file
  name and whose optional `idx` is a track id) are one JSON list of
  `{"image_id", "keypoints": [x, y, v] * S, "score"}` records, several per
  frame.

Both become arrays with a track axis and a frame axis: keypoints
(P, F, S, 2) pixels (y down) and confidence (P, F, S), where track p is the
p-th person of every frame (or, with track ids, one id per track) and a
person absent from a frame has confidence 0 and NaN keypoints. Frames are in
the order of their file names or image ids, numbers compared as numbers
("frame_10" after "frame_9").

Shape letters: P tracks (people), F frames, S joints of the source layout.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np


class KeypointSequence(NamedTuple):
  """Keypoints of several people over time.

  Attributes:
    keypoints: (P, F, S, 2) float64 pixels, x right, y down; NaN where the
      person is absent or the joint was not detected.
    confidence: (P, F, S) float64 in [0, 1]; 0 where absent or not detected.
    frames: (F,) the frame names (file names without directory) or image ids,
      in time order.
    track_ids: (P,) the track id of each track (the person index within the
      frame when the files carry none).
  """

  keypoints: np.ndarray
  confidence: np.ndarray
  frames: np.ndarray
  track_ids: np.ndarray


def natural_key(value) -> tuple:
  """Sort key that compares the digit runs of a name as numbers ("f2" < "f10")."""
  if isinstance(value, int | float | np.integer | np.floating):
    return ((0, float(value), ""),)
  parts = re.split(r"(\d+)", str(value))
  return tuple((0, float(p), "") if p.isdigit() else (1, 0.0, p) for p in parts if p)


def _triples(values, num_joints: int | None, where: str) -> np.ndarray:
  """[x, y, c] * S -> (S, 3), checking the count."""
  array = np.asarray(values, np.float64)
  if array.ndim != 1 or array.size % 3 or (num_joints is not None and
                                           array.size != 3 * num_joints):
    need = "a multiple of 3" if num_joints is None else f"{3 * num_joints} ([x, y, c] * " \
        f"{num_joints})"
    raise ValueError(f"{where}: {array.size} keypoint values; expected {need}")
  return array.reshape(-1, 3)


def _assemble(per_frame: list[list[tuple[object, np.ndarray]]], num_joints: int, frames,
              ) -> KeypointSequence:
  """Per frame a list of (track id, (S, 3)) -> a KeypointSequence."""
  ids = sorted({tid for people in per_frame for tid, _ in people}, key=natural_key)
  where = {tid: p for p, tid in enumerate(ids)}
  keypoints = np.full((len(ids), len(per_frame), num_joints, 2), np.nan)
  confidence = np.zeros((len(ids), len(per_frame), num_joints))
  for f, people in enumerate(per_frame):
    for tid, triples in people:
      conf = np.clip(np.nan_to_num(triples[:, 2], nan=0.0), 0.0, 1.0)
      found = (conf > 0) & np.all(np.isfinite(triples[:, :2]), axis=-1)
      keypoints[where[tid], f] = np.where(found[:, None], triples[:, :2], np.nan)
      confidence[where[tid], f] = np.where(found, conf, 0.0)
  return KeypointSequence(keypoints, confidence, np.asarray(frames), np.asarray(ids))


def _openpose_people(path, num_joints):
  """(people (P, S, 3), track ids (P,) or None when untracked) of one OpenPose file."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"cannot read OpenPose file {str(path)!r}: {e}") from None
  if not isinstance(data, dict) or not isinstance(data.get("people"), list):
    raise ValueError(f"{str(path)!r}: not an OpenPose file (no 'people' list)")
  people, ids = [], []
  for i, person in enumerate(data["people"]):
    if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
      raise ValueError(f"{str(path)!r}: person {i} has no 'pose_keypoints_2d'")
    people.append(_triples(person["pose_keypoints_2d"], num_joints, f"{str(path)!r} person {i}"))
    pid = person.get("person_id", -1)
    pid = pid[0] if isinstance(pid, list) and pid else pid
    ids.append(int(pid) if isinstance(pid, int | float) and pid >= 0 else None)
  if not people:
    return np.zeros((0, num_joints or 0, 3)), None
  if len({p.shape for p in people}) > 1:
    raise ValueError(f"{str(path)!r}: people with different numbers of keypoints")
  tracked = all(pid is not None for pid in ids) and len(set(ids)) == len(ids)
  return np.stack(people), (ids if tracked else None)


def read_openpose_frame(path: str | os.PathLike, num_joints: int | None = None) -> np.ndarray:
  """The people of one OpenPose JSON file.

  Args:
    path: an OpenPose `*_keypoints.json` file.
    num_joints: S expected per person (25 for BODY_25), or None for any.

  Returns:
    (P, S, 3) float64 [x, y, confidence] per person and joint, in file order
    (P may be 0). ValueError naming the file for malformed content.
  """
  return _openpose_people(path, num_joints)[0]


def read_openpose_folder(folder: str | os.PathLike, num_joints: int) -> KeypointSequence:
  """Every `*.json` file of a folder as one frame of OpenPose output.

  Track p is the p-th person of every file (OpenPose's own order), or, when
  every person of every file has a `person_id` >= 0 (OpenPose's tracking),
  one track per id.

  Args:
    folder: directory of OpenPose JSON files, one per frame.
    num_joints: S per person (25 for BODY_25).

  Returns:
    A `KeypointSequence`; frames are the file names in natural order.
  """
  folder = Path(folder)
  if not folder.is_dir():
    raise ValueError(f"{str(folder)!r} is not a directory of OpenPose JSON files")
  files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".json"),
                 key=lambda p: natural_key(p.name))
  if not files:
    raise ValueError(f"{str(folder)!r} holds no .json files")
  frames = [_openpose_people(path, num_joints) for path in files]
  tracked = all(ids is not None or len(people) == 0 for people, ids in frames)
  per_frame = [list(zip(ids if tracked and ids is not None else range(len(people)), people,
                        strict=True)) for people, ids in frames]
  return _assemble(per_frame, num_joints, [p.name for p in files])


def read_coco_sequence(records, num_joints: int, where: str = "results") -> KeypointSequence:
  """COCO / AlphaPose keypoint results of several frames as a sequence.

  Frames are the distinct `image_id`s in natural order. Within a frame,
  records keep their order in the list; a record's track is its `idx` or
  `track_id` when every record has one (AlphaPose tracking), else its index
  among the records of its frame.

  Args:
    records: the parsed JSON (a list of records, or a dict with an
      "annotations" list).
    num_joints: S of the layout.
    where: name of the source for error messages.

  Returns:
    A `KeypointSequence`; `frames` holds the image ids.
  """
  if isinstance(records, dict) and "annotations" in records:
    records = records["annotations"]
  if not isinstance(records, list) or not records:
    raise ValueError(f"{where}: expected a non-empty JSON list of keypoint results")
  for i, rec in enumerate(records):
    if not isinstance(rec, dict) or "keypoints" not in rec or "image_id" not in rec:
      raise ValueError(f"{where}: record {i} lacks 'keypoints' or 'image_id'")
  track_key = next((k for k in ("idx", "track_id") if all(k in r for r in records)), None)
  frames = sorted({r["image_id"] for r in records}, key=natural_key)
  index = {f: n for n, f in enumerate(frames)}
  per_frame: list[list] = [[] for _ in frames]
  for i, rec in enumerate(records):
    people = per_frame[index[rec["image_id"]]]
    if track_key is None:
      tid = len(people)
    else:
      tid = rec[track_key]
      tid = tid[0] if isinstance(tid, list) and tid else tid
      if not isinstance(tid, int | float | str):
        raise ValueError(f"{where}: record {i} has an unusable {track_key} {tid!r}")
      if any(t == tid for t, _ in people):
        raise ValueError(f"{where}: two records of frame {rec['image_id']!r} have "
                         f"{track_key} {tid!r}")
    people.append((tid, _triples(rec["keypoints"], num_joints, f"{where}: record {i}")))
  return _assemble(per_frame, num_joints, frames)
