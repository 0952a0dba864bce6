"""Readers of a user's Human3.6M copy (the TFDS manual directory).

Two layouts are accepted and detected automatically:

1. "npz": the widely used preprocessed files in the manual directory itself:
   `data_3d_h36m.npz` (`positions_3d`: subject -> action -> (N, 32, 3) metres,
   world frame) and optionally `data_2d_h36m_gt.npz` and/or detections such as
   `data_2d_h36m_cpn_ft_h36m_dbb.npz` (`positions_2d`: subject -> action -> list
   of 4 cameras, in `CAMERA_IDS` order -> (N, 17, 2) pixels, H36M17 order).
   Without a ground-truth 2D file the 2D ground truth is the projection of the
   3D poses with the calibrated cameras (lens distortion included).
2. "cdf": the original release's folders `S*/MyPoseFeatures/D3_Positions_mono/
   <Action>.<camera>.cdf` (camera frame, mm, 32 joints) and, optionally,
   `S*/MyPoseFeatures/D2_Positions/<Action>.<camera>.cdf` (pixels, 32 joints),
   read with cdflib. World poses come from the camera poses and the calibration.

Both yield `Recording`s: one (subject, action, trial, camera) sequence each,
in H36M17 order and millimetres.

Trials: a subject performs every action twice; files are named "Walking",
"Walking 1", ... We number the trials 1, 2 in the order of the name's numeric
suffix (no suffix counts as 0) (our choice: the release gives no other
numbering). "TakingPhoto" is reported as "Photo" and "WalkingDog" as
"WalkDog", the names of the papers' tables; the "_ALL" files are skipped.

Shape letters: N frames of a recording.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import re
from collections.abc import Iterator

import numpy as np

from lift3d.data.h36m import cameras as cams
from lift3d.skeleton import H36M32_TO_17

ALL_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
NPZ_3D = "data_3d_h36m.npz"
NPZ_2D_GT = "data_2d_h36m_gt.npz"
NPZ_2D_DETECTIONS = "data_2d_h36m_cpn_ft_h36m_dbb.npz"
_ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}


class ManualDirError(FileNotFoundError):
  """The manual directory is missing or incomplete (the message says what to put where)."""


@dataclasses.dataclass(frozen=True)
class Recording:
  """One sequence seen by one camera.

  Attributes:
    subject: e.g. "S9".
    action: canonical action name, e.g. "Photo" (see `lift3d.eval.H36M_ACTIONS`).
    subaction: trial number, 1 or 2.
    raw_action: the action name in the source files, e.g. "TakingPhoto 1".
    camera: camera id, e.g. "54138969".
    pose3d_world: (N, 17, 3) float32 mm, world frame (z up).
    pose3d_camera: (N, 17, 3) float32 mm, camera frame (x right, y down, z forward).
    pose2d_gt: (N, 17, 2) float32 pixels.
    pose2d_det: (N, 17, 2) float32 pixels, or None without detections.
  """

  subject: str
  action: str
  subaction: int
  raw_action: str
  camera: str
  pose3d_world: np.ndarray
  pose3d_camera: np.ndarray
  pose2d_gt: np.ndarray
  pose2d_det: np.ndarray | None

  @property
  def num_frames(self) -> int:
    """The recording's number of frames (50 fps), the first axis of its pose arrays."""
    return self.pose3d_camera.shape[0]


def parse_action(raw: str) -> tuple[str, int]:
  """("TakingPhoto 1") -> ("Photo", 1): canonical name and numeric suffix (0 if none)."""
  m = re.fullmatch(r"\s*(.*?)\s*(\d+)?\s*", raw)
  name, num = m.group(1), m.group(2)
  return _ACTION_ALIASES.get(name, name), int(num) if num else 0


def trial_numbers(raw_actions) -> dict[str, int]:
  """Trial number (1, 2, ...) of each raw action name of one subject."""
  by_action: dict[str, list[tuple[int, str]]] = {}
  for raw in raw_actions:
    name, suffix = parse_action(raw)
    by_action.setdefault(name, []).append((suffix, raw))
  out = {}
  for entries in by_action.values():
    for rank, (_, raw) in enumerate(sorted(entries), start=1):
      out[raw] = rank
  return out


def expected_files_message(manual_dir: str, subjects=ALL_SUBJECTS) -> str:
  """The one error text listing what the manual directory must hold."""
  subs = ", ".join(subjects)
  return (
      f"Human3.6M was not found in the manual directory {manual_dir!r}.\n"
      "Put ONE of these layouts there (the dataset cannot be redistributed; get it\n"
      "from http://vision.imar.ro/human3.6m after registering):\n"
      f"  (1) preprocessed files: {manual_dir}/{NPZ_3D} (key 'positions_3d':\n"
      f"      subject -> action -> (N,32,3) metres, world frame) for subjects {subs};\n"
      f"      optional {NPZ_2D_GT} and/or detections such as {NPZ_2D_DETECTIONS}\n"
      "      (key 'positions_2d': subject -> action -> 4 cameras -> (N,17,2) px).\n"
      f"  (2) the original release: {manual_dir}/<S>/MyPoseFeatures/D3_Positions_mono/"
      "<Action>.<camera>.cdf\n"
      f"      (and optionally .../D2_Positions/<Action>.<camera>.cdf) for <S> in {subs}.\n"
      "Pass the directory with --manual_dir (tfds) or `manual_dir=` "
      "(lift3d.data.h36m.prepare)."
  )


def _cdf_dir(manual_dir: str, subject: str, kind: str) -> str:
  return os.path.join(manual_dir, subject, "MyPoseFeatures", kind)


def detect_layout(manual_dir: str | None, subjects=ALL_SUBJECTS) -> str:
  """Returns "npz" or "cdf"; raises `ManualDirError` listing what is missing."""
  if not manual_dir or not os.path.isdir(manual_dir):
    raise ManualDirError(expected_files_message(str(manual_dir), subjects))
  if os.path.isfile(os.path.join(manual_dir, NPZ_3D)):
    return "npz"
  have = [s for s in subjects
          if glob.glob(os.path.join(_cdf_dir(manual_dir, s, "D3_Positions_mono"), "*.cdf"))]
  if have and len(have) == len(subjects):
    return "cdf"
  detail = ""
  if have:
    missing = [s for s in subjects if s not in have]
    detail = f"\nFound the original layout for {have} but not for {missing}."
  raise ManualDirError(expected_files_message(manual_dir, subjects) + detail)


def _load_pickled(path: str, key: str) -> dict:
  with np.load(path, allow_pickle=True) as f:
    if key not in f.files:
      raise ValueError(f"{path}: expected key {key!r}, found {f.files}")
    return f[key].item()


def _find_detections(manual_dir: str, name: str | None) -> str | None:
  if name:
    path = os.path.join(manual_dir, name)
    if not os.path.isfile(path):
      raise ManualDirError(f"detections file {path} not found")
    return path
  candidates = sorted(
      p for p in glob.glob(os.path.join(manual_dir, "data_2d_h36m_*.npz"))
      if os.path.basename(p) != NPZ_2D_GT
  )
  if len(candidates) > 1:
    logging.warning("several detection files %s; using %s", candidates, candidates[0])
  return candidates[0] if candidates else None


def _trim(name: str, arrays: list[np.ndarray | None]) -> list[np.ndarray | None]:
  lengths = [a.shape[0] for a in arrays if a is not None]
  n = min(lengths)
  if len(set(lengths)) > 1:
    logging.info("%s: frame counts %s differ; keeping the first %d", name, lengths, n)
  return [None if a is None else a[:n] for a in arrays]


def _check_2d(path, subject, action, per_camera):
  if len(per_camera) != len(cams.CAMERA_IDS):
    raise ValueError(f"{path}: {subject}/{action} has {len(per_camera)} cameras, expected 4")
  for a in per_camera:
    if np.ndim(a) != 3 or np.shape(a)[1:] != (17, 2):
      raise ValueError(f"{path}: {subject}/{action}: expected (N, 17, 2) keypoints, got {np.shape(a)}")


def read_npz(manual_dir: str, subjects=ALL_SUBJECTS, detections: str | None = None,
             camera_path=None) -> Iterator[Recording]:
  """Recordings of the preprocessed-npz layout (see the module docstring).

  Args:
    manual_dir: directory holding `data_3d_h36m.npz` and the 2D files.
    subjects: subjects to read.
    detections: file name of the detections (default: the one
      `data_2d_h36m_*.npz` other than the ground truth, if any).
    camera_path: camera parameter file (default: the bundled one).

  Yields:
    `Recording`s in (subject, action, camera) order.
  """
  path3d = os.path.join(manual_dir, NPZ_3D)
  pos3d = _load_pickled(path3d, "positions_3d")
  missing = [s for s in subjects if s not in pos3d]
  if missing:
    raise ManualDirError(
        f"{path3d} lacks subjects {missing} (has {sorted(pos3d)}).\n"
        + expected_files_message(manual_dir, subjects))
  gt_path = os.path.join(manual_dir, NPZ_2D_GT)
  gt2d = _load_pickled(gt_path, "positions_2d") if os.path.isfile(gt_path) else None
  det_path = _find_detections(manual_dir, detections)
  det2d = _load_pickled(det_path, "positions_2d") if det_path else None
  if gt2d is None:
    logging.info("no %s: 2D ground truth = projection of the 3D poses", NPZ_2D_GT)
  calib = cams.load_cameras(camera_path)
  for subject in subjects:
    actions = {a: v for a, v in pos3d[subject].items() if not a.startswith("_ALL")}
    trials = trial_numbers(actions)
    for raw in sorted(actions):
      world = np.asarray(actions[raw], np.float64)
      if world.ndim != 3 or world.shape[1:] != (32, 3):
        raise ValueError(f"{path3d}: {subject}/{raw}: expected (N, 32, 3), got {world.shape}")
      world = world[:, list(H36M32_TO_17)] * 1000.0  # metres -> mm
      gt_list = det_list = None
      if gt2d is not None:
        gt_list = gt2d.get(subject, {}).get(raw)
        if gt_list is None:
          raise ValueError(f"{gt_path} lacks {subject}/{raw}")
        _check_2d(gt_path, subject, raw, gt_list)
      if det2d is not None:
        det_list = det2d.get(subject, {}).get(raw)
        if det_list is None:
          logging.warning("%s lacks %s/%s: no detections for it", det_path, subject, raw)
        else:
          _check_2d(det_path, subject, raw, det_list)
      name, _ = parse_action(raw)
      for c, cid in enumerate(cams.CAMERA_IDS):
        camera = calib[subject][cid]
        pose_cam = cams.world_to_camera(world, camera)
        gt = (np.asarray(gt_list[c], np.float64) if gt_list is not None
              else cams.project(pose_cam, camera))
        det = None if det_list is None else np.asarray(det_list[c], np.float64)
        w, pc, gt, det = _trim(f"{subject}/{raw}/{cid}", [world, pose_cam, gt, det])
        yield Recording(subject, name, trials[raw], raw, cid,
                        w.astype(np.float32), pc.astype(np.float32), gt.astype(np.float32),
                        None if det is None else det.astype(np.float32))


def _read_cdf_pose(path: str, dim: int) -> np.ndarray:
  import cdflib  # only this layout needs it

  data = np.asarray(cdflib.CDF(path).varget("Pose"), np.float64)
  if data.size % (32 * dim):
    raise ValueError(f"{path}: 'Pose' has shape {data.shape}, not a multiple of 32x{dim}")
  return data.reshape(-1, 32, dim)[:, list(H36M32_TO_17)]


def read_cdf(manual_dir: str, subjects=ALL_SUBJECTS, camera_path=None) -> Iterator[Recording]:
  """Recordings of the original release's CDF layout (see the module docstring).

  Args:
    manual_dir: directory holding the S* folders.
    subjects: subjects to read.
    camera_path: camera parameter file (default: the bundled one).

  Yields:
    `Recording`s in (subject, action, camera) order. Detections are None.
  """
  calib = cams.load_cameras(camera_path)
  for subject in subjects:
    d3 = _cdf_dir(manual_dir, subject, "D3_Positions_mono")
    d2 = _cdf_dir(manual_dir, subject, "D2_Positions")
    files = {}
    for path in sorted(glob.glob(os.path.join(d3, "*.cdf"))):
      stem = os.path.basename(path)[: -len(".cdf")]
      raw, _, cid = stem.rpartition(".")
      if raw.startswith("_ALL") or cid not in cams.CAMERA_IDS:
        continue
      files[(raw, cid)] = path
    trials = trial_numbers({raw for raw, _ in files})
    for (raw, cid), path in sorted(files.items()):
      camera = calib[subject][cid]
      pose_cam = _read_cdf_pose(path, 3)
      world = cams.camera_to_world(pose_cam, camera)
      path2d = os.path.join(d2, os.path.basename(path))
      gt = _read_cdf_pose(path2d, 2) if os.path.isfile(path2d) else cams.project(pose_cam, camera)
      world, pose_cam, gt = _trim(f"{subject}/{raw}/{cid}", [world, pose_cam, gt])
      name, _ = parse_action(raw)
      yield Recording(subject, name, trials[raw], raw, cid, world.astype(np.float32),
                      pose_cam.astype(np.float32), gt.astype(np.float32), None)


def read_recordings(manual_dir: str, subjects=ALL_SUBJECTS, *, detections: str | None = None,
                    camera_path=None) -> Iterator[Recording]:
  """Recordings of whichever layout `manual_dir` holds (`detect_layout`)."""
  layout = detect_layout(manual_dir, subjects)
  logging.info("Human3.6M manual dir %s: %s layout", manual_dir, layout)
  if layout == "npz":
    return read_npz(manual_dir, subjects, detections, camera_path)
  return read_cdf(manual_dir, subjects, camera_path)
