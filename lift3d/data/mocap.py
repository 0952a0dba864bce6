"""Motion-capture corpora of 3D poses: the embedded corpus and readers.

A `MocapCorpus` holds N H36M17 poses in metres, y up, grouped into named clips,
so that experiments can hold out whole clips. The embedded corpus
(`load_embedded`) ships with the repository in `third_party/`: real people
from the CMU Graphics Lab database (`cmu/` clips) and HDM05 (`hdm05/` clips,
CC BY-SA 3.0), and DeepMimic's simulated humanoid (`humanoid3d_*` clips). It
covers walking, running, jumping, kicking, punching, bending, squatting,
reaching, lying down, dancing and sports, but no sitting on a chair. Users
with Human3.6M can read its widely used `data_3d_h36m.npz` (`load_h36m_npz`),
and BVH files are read by `lift3d.data.bvh.load_bvh`.

Shape letters: N frames, C clips, L = 17 joints.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lift3d import skeleton as skeleton_lib

# Where the embedded corpus lives, relative to the repository root.
_THIRD_PARTY = Path(__file__).resolve().parents[2] / "third_party"
EMBEDDED_PATH = _THIRD_PARTY / "deepmimic" / "poses_h36m17.npz"
# The embedded sources: name -> file. Clip names say the source: "cmu/…",
# "hdm05/…", and DeepMimic's "humanoid3d_…".
EMBEDDED_SOURCES = {
    "cmu": _THIRD_PARTY / "cmu_mocap" / "poses_h36m17.npz",
    "hdm05": _THIRD_PARTY / "hdm05" / "poses_h36m17.npz",
    "deepmimic": EMBEDDED_PATH,
}

# Human3.6M's world frame is z up; ours is y up. The proper rotation of -90°
# about x maps (x, y, z)_h36m to (x, z, -y): up stays up, and since it is a
# rotation (det +1, not a reflection) left and right are unchanged.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclasses.dataclass(frozen=True, eq=False)
class MocapCorpus:
  """3D poses grouped into clips (a frozen value; methods return new corpora).

  Attributes:
    poses: (N, 17, 3) float32, metres, y up, H36M17 joint order. World frame of
      the capture (not root-centred).
    clip_ids: (N,) int32, the clip of each frame, an index into `clip_names`.
      Frames of a clip are contiguous and in time order.
    clip_names: (C,) names of the clips, e.g. "humanoid3d_walk" or "S1/Walking".
    frame_rate: frames per second. When the clips were captured at different
      rates, the rate of most frames; the exact rates are in `clip_frame_rates`.
    clip_frame_rates: (C,) frames per second of each clip, or None when every
      clip has `frame_rate`.
  """

  poses: np.ndarray
  clip_ids: np.ndarray
  clip_names: tuple[str, ...]
  frame_rate: float
  clip_frame_rates: tuple[float, ...] | None = None

  def __post_init__(self):
    poses = np.asarray(self.poses, np.float32)
    clip_ids = np.asarray(self.clip_ids, np.int32)
    names = tuple(str(n) for n in self.clip_names)
    if poses.ndim != 3 or poses.shape[1:] != (skeleton_lib.H36M17.num_joints, 3):
      raise ValueError(
          f"expected poses (N, 17, 3) in H36M17 order, got {poses.shape}; "
          "map other layouts with lift3d.skeleton.convert first"
      )
    if clip_ids.shape != poses.shape[:1]:
      raise ValueError(f"clip_ids shape {clip_ids.shape} does not match {len(poses)} poses")
    if len(set(names)) != len(names):
      raise ValueError(f"clip names repeat: {names}")
    if clip_ids.size and (clip_ids.min() < 0 or clip_ids.max() >= len(names)):
      raise ValueError(f"clip_ids must lie in [0, {len(names)}), got [{clip_ids.min()}, {clip_ids.max()}]")
    if not np.isfinite(self.frame_rate) or self.frame_rate <= 0:
      raise ValueError(f"frame_rate must be positive, got {self.frame_rate}")
    rates = self.clip_frame_rates
    if rates is not None:
      rates = tuple(float(r) for r in rates)
      if len(rates) != len(names):
        raise ValueError(f"{len(rates)} clip_frame_rates for {len(names)} clips")
    object.__setattr__(self, "poses", poses)
    object.__setattr__(self, "clip_ids", clip_ids)
    object.__setattr__(self, "clip_names", names)
    object.__setattr__(self, "frame_rate", float(self.frame_rate))
    object.__setattr__(self, "clip_frame_rates", rates)

  def __len__(self) -> int:
    return len(self.poses)

  @property
  def num_clips(self) -> int:
    """The number of clips, the length of `clip_names`."""
    return len(self.clip_names)

  def clip_rate(self, name: str) -> float:
    """Frames per second of the clip called `name`."""
    index = self._indices([name])[0]
    return self.frame_rate if self.clip_frame_rates is None else self.clip_frame_rates[index]

  def clip_poses(self, name: str) -> np.ndarray:
    """(F, 17, 3) poses of the clip called `name`, in time order."""
    return self.poses[self.clip_ids == self._indices([name])[0]]

  def _indices(self, names: Iterable[str]) -> list[int]:
    if isinstance(names, str):
      raise ValueError(f"expected a sequence of clip names, got the string {names!r}")
    names = list(names)
    unknown = [n for n in names if n not in self.clip_names]
    if unknown:
      raise ValueError(f"unknown clip names {unknown}; clips are {list(self.clip_names)}")
    return [self.clip_names.index(n) for n in names]

  def select(self, clip_names: Sequence[str]) -> MocapCorpus:
    """The corpus of the named clips only.

    Args:
      clip_names: names of clips of this corpus (ValueError for unknown ones).

    Returns:
      A new corpus holding those clips in this corpus's clip order, with clip
      ids renumbered 0..C'-1.
    """
    keep = sorted(set(self._indices(clip_names)))
    new_id = np.full(self.num_clips, -1, np.int32)
    new_id[keep] = np.arange(len(keep), dtype=np.int32)
    mask = new_id[self.clip_ids] >= 0
    clip_ids = new_id[self.clip_ids[mask]]
    frame_rate, rates = self.frame_rate, None
    if self.clip_frame_rates is not None:
      frame_rate, rates = _summarise_rates(
          [self.clip_frame_rates[i] for i in keep], np.bincount(clip_ids, minlength=len(keep))
      )
    return MocapCorpus(
        poses=self.poses[mask],
        clip_ids=clip_ids,
        clip_names=tuple(self.clip_names[i] for i in keep),
        frame_rate=frame_rate,
        clip_frame_rates=rates,
    )

  def clips_with_prefix(self, prefixes: Sequence[str]) -> tuple[str, ...]:
    """Names of the clips that start with any of `prefixes`, e.g. ("hdm05/mm_",).

    Raises:
      ValueError: if a prefix matches no clip (a typo would silently hold out nothing).
    """
    if isinstance(prefixes, str):
      raise ValueError(f"expected a sequence of prefixes, got the string {prefixes!r}")
    names = []
    for prefix in prefixes:
      matched = [n for n in self.clip_names if n.startswith(prefix)]
      if not matched:
        raise ValueError(f"no clip name starts with {prefix!r}")
      names += [n for n in matched if n not in names]
    return tuple(names)

  def split(self, holdout_clips: Sequence[str],
            holdout_prefixes: Sequence[str] = ()) -> tuple[MocapCorpus, MocapCorpus]:
    """Splits off whole clips for held-out evaluation.

    Args:
      holdout_clips: names of clips to hold out (ValueError for unknown ones).
      holdout_prefixes: also hold out every clip whose name starts with one of
        these (e.g. "hdm05/mm_" for all clips of one HDM05 actor).

    Returns:
      (train, heldout): the corpus without those clips, and of them only.
    """
    names = list(holdout_clips) + [n for n in self.clips_with_prefix(holdout_prefixes)
                                   if n not in holdout_clips]
    held = set(self._indices(names))
    rest = [n for i, n in enumerate(self.clip_names) if i not in held]
    return self.select(rest), self.select([self.clip_names[i] for i in sorted(held)])

  def subsample(self, stride: int) -> MocapCorpus:
    """Every `stride`-th frame of each clip, starting at the clip's first frame.

    Args:
      stride: positive int; 1 keeps everything.

    Returns:
      A new corpus; its frame rates are divided by `stride`.
    """
    if isinstance(stride, bool) or int(stride) != stride or stride < 1:
      raise ValueError(f"stride must be a positive integer, got {stride!r}")
    stride = int(stride)
    if stride == 1:
      return self
    # Position of each frame within its clip (frames of a clip are contiguous).
    starts = np.flatnonzero(np.r_[True, self.clip_ids[1:] != self.clip_ids[:-1]])
    run = np.diff(np.r_[starts, len(self.clip_ids)])
    within = np.arange(len(self.clip_ids)) - np.repeat(starts, run)
    mask = within % stride == 0
    rates = self.clip_frame_rates
    return dataclasses.replace(
        self,
        poses=self.poses[mask],
        clip_ids=self.clip_ids[mask],
        frame_rate=self.frame_rate / stride,
        clip_frame_rates=None if rates is None else tuple(r / stride for r in rates),
    )


def _summarise_rates(
    rates: Sequence[float], counts: Sequence[int]
) -> tuple[float, tuple[float, ...] | None]:
  """(rate of most frames, per-clip rates or None if they are all that rate)."""
  frames_at = collections.Counter()
  for rate, count in zip(rates, counts, strict=True):
    frames_at[float(rate)] += int(count)
  if not frames_at:
    return 1.0, None
  main_rate = frames_at.most_common(1)[0][0]
  if all(float(r) == main_rate for r in rates):
    return main_rate, None
  return main_rate, tuple(float(r) for r in rates)


def from_clips(
    clips: Sequence[tuple[str, np.ndarray]],
    frame_rates: float | Sequence[float],
) -> MocapCorpus:
  """Builds a corpus from named clips.

  Args:
    clips: (name, poses) pairs, poses (F, 17, 3) metres, y up, H36M17 order.
    frame_rates: frames per second, one for all clips or one per clip.

  Returns:
    The `MocapCorpus` of the clips in the given order.
  """
  if not clips:
    raise ValueError("no clips given")
  names = [name for name, _ in clips]
  poses = [np.asarray(p, np.float32) for _, p in clips]
  for name, p in zip(names, poses, strict=True):
    if p.ndim != 3 or p.shape[1:] != (skeleton_lib.H36M17.num_joints, 3):
      raise ValueError(f"clip {name!r}: expected poses (F, 17, 3), got {p.shape}")
  rates = np.broadcast_to(np.asarray(frame_rates, np.float64), (len(clips),))
  frame_rate, clip_rates = _summarise_rates(rates.tolist(), [len(p) for p in poses])
  return MocapCorpus(
      poses=np.concatenate(poses),
      clip_ids=np.concatenate([np.full(len(p), i, np.int32) for i, p in enumerate(poses)]),
      clip_names=tuple(names),
      frame_rate=frame_rate,
      clip_frame_rates=clip_rates,
  )


def load_embedded(path: str | os.PathLike | None = None, *,
                  sources: Sequence[str] = ("cmu", "hdm05", "deepmimic")) -> MocapCorpus:
  """The embedded mocap corpus: real people (CMU, HDM05) and DeepMimic's humanoid.

  Sources (see third_party/README.md for licences and acknowledgements):
  "cmu" (61 clips, 10,260 poses), "hdm05" (288 clips, 13,776 poses; CC BY-SA
  3.0) and "deepmimic" (15 clips, 1,618 poses of a simulated humanoid).

  Args:
    path: one .npz in the embedded format (poses, clip_ids, clip_names,
      frame_rate) to read instead of the sources, e.g. one rebuilt with
      third_party/deepmimic/convert.py.
    sources: which embedded sources to concatenate, in this order.

  Returns:
    The corpus: poses (N, 17, 3) float32 metres, y up, in each clip's world
    frame, with per-clip frame rates.

  Raises:
    ValueError: for an unknown source or a missing or malformed file.
  """
  if path is not None:
    files = [Path(path)]
  else:
    if isinstance(sources, str):
      raise ValueError(f"sources must be a sequence of names, got the string {sources!r}")
    unknown = [s for s in sources if s not in EMBEDDED_SOURCES]
    if unknown or not sources:
      raise ValueError(f"unknown or no mocap sources {list(sources)}; choose from "
                       f"{sorted(EMBEDDED_SOURCES)}")
    files = [EMBEDDED_SOURCES[s] for s in sources]
  clips, rates = [], []
  for file in files:
    file_clips, file_rates = _read_embedded(file)
    clips += file_clips
    rates += file_rates
  return from_clips(clips, rates)


def _read_embedded(path: Path):
  if not path.is_file():
    raise ValueError(
        f"embedded mocap corpus not found at {path}; it is committed with the repository "
        "(rebuild the DeepMimic part with `python third_party/deepmimic/convert.py`, which "
        "needs the `mocap` extra: pip install -e '.[mocap]')"
    )
  with np.load(path) as data:
    missing = {"poses", "clip_ids", "clip_names", "frame_rate"} - set(data.files)
    if missing:
      raise ValueError(f"{path} lacks the arrays {sorted(missing)}")
    names = [str(n) for n in data["clip_names"]]
    poses, clip_ids = data["poses"], data["clip_ids"]
    rates = np.broadcast_to(data["frame_rate"], (len(names),))
  if not np.all(np.isfinite(poses)):
    raise ValueError(f"{path} holds non-finite poses")
  clips = [(n, poses[clip_ids == i]) for i, n in enumerate(names)]
  return clips, [float(r) for r in rates]


def load_h36m_npz(
    path: str | os.PathLike,
    subjects: Sequence[str] | None = None,
    *,
    frame_rate: float = 50.0,
) -> MocapCorpus:
  """Human3.6M 3D poses from the widely used `data_3d_h36m.npz` file.

  The file holds one array `positions_3d`, a pickled dict subject -> action ->
  (F, 32, 3) joint positions in metres in Human3.6M's world frame (z up). Each
  (subject, action) becomes a clip "S1/Walking 1". Positions are rotated to y
  up with `Z_UP_TO_Y_UP`, (x, y, z) -> (x, z, -y), and the 32 joints mapped to
  H36M17 with `lift3d.skeleton.convert(..., "h36m32")`.

  Unpickling runs code from the file: only load files you trust.

  Args:
    path: the .npz file.
    subjects: subjects to read, e.g. ("S1", "S5"); None for all.
    frame_rate: frames per second of the positions (50 in the usual file).

  Returns:
    A `MocapCorpus` of poses (N, 17, 3) float32 metres, y up.
  """
  path = Path(path)
  if not path.is_file():
    raise ValueError(f"no Human3.6M file at {path}")
  with np.load(path, allow_pickle=True) as data:
    if "positions_3d" not in data.files:
      raise ValueError(f"{path} has no 'positions_3d' array (it has {data.files})")
    positions = data["positions_3d"].item()
  if not isinstance(positions, dict):
    raise ValueError(f"{path}: positions_3d should hold a dict subject -> action -> array")
  if subjects is None:
    subjects = sorted(positions)
  elif isinstance(subjects, str):
    raise ValueError(f"subjects must be a sequence of names, got the string {subjects!r}")
  unknown = [s for s in subjects if s not in positions]
  if unknown:
    raise ValueError(f"unknown subjects {unknown}; {path} has {sorted(positions)}")
  clips = []
  for subject in subjects:
    for action in sorted(positions[subject]):
      joints = np.asarray(positions[subject][action], np.float64)
      if joints.ndim != 3 or joints.shape[1:] != (32, 3):
        raise ValueError(f"{subject}/{action}: expected (F, 32, 3) positions, got {joints.shape}")
      if not np.all(np.isfinite(joints)):
        raise ValueError(f"{subject}/{action}: non-finite positions")
      poses = skeleton_lib.convert(joints, "h36m32").keypoints @ Z_UP_TO_Y_UP.T
      clips.append((f"{subject}/{action}", poses))
  return from_clips(clips, frame_rate)
