"""Skeletons: joint names, parents, limbs and left/right pairs, and converters.

Everything in lift3d works on `H36M17`, the 17-joint Human3.6M skeleton. Other
layouts (the 32-joint Human3.6M release, COCO-17, MPII-16, OpenPose BODY_25,
MediaPipe's 33 pose landmarks, AlphaPose's Halpe-26) are mapped into it with
`convert`, which derives the joints a source lacks and marks them as
estimated. `mediapipe_to_pixels` turns MediaPipe's normalised landmarks into
pixels; the readers of the detectors' files are in `lift3d.data.keypoint_files`.

Shape letters: L joints of the target skeleton, S joints of a source layout,
D coordinate dimension (2 or 3).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Skeleton:
  """A kinematic tree of named joints (a frozen value; edit by making a new one).

  Attributes:
    name: short name of the layout, e.g. "h36m17".
    names: (L,) joint names.
    parents: (L,) index of each joint's parent, -1 for the root.
    left_right: pairs (left index, right index) of mirror-twin joints.
  """

  name: str
  names: tuple[str, ...]
  parents: tuple[int, ...]
  left_right: tuple[tuple[int, int], ...]

  def __post_init__(self):
    if len(self.names) != len(self.parents):
      raise ValueError(
          f"{self.name}: {len(self.names)} names but {len(self.parents)} parents"
      )
    for i, p in enumerate(self.parents):
      if not -1 <= p < len(self.names) or p == i:
        raise ValueError(f"{self.name}: joint {i} has invalid parent {p}")
    # A tree: following parents from any joint reaches the root (no cycles,
    # which would also make `subset` loop forever).
    for i in range(len(self.parents)):
      j = i
      for _ in range(len(self.parents) + 1):
        if j < 0:
          break
        j = self.parents[j]
      else:
        raise ValueError(f"{self.name}: the parents of joint {i} form a cycle")
    seen = [j for pair in self.left_right for j in pair]
    if any(not 0 <= j < len(self.names) for j in seen):
      raise ValueError(f"{self.name}: left/right pairs {self.left_right} name unknown joints")
    if len(set(seen)) != len(seen):
      raise ValueError(f"{self.name}: a joint appears in two left/right pairs")

  @property
  def num_joints(self) -> int:
    """L, the number of joints (the length of `names`)."""
    return len(self.names)

  @property
  def limbs(self) -> tuple[tuple[int, int], ...]:
    """(parent, child) index pairs, one per non-root joint, in joint order."""
    return tuple((p, i) for i, p in enumerate(self.parents) if p >= 0)

  @property
  def mirror_permutation(self) -> tuple[int, ...]:
    """(L,) permutation that swaps every left joint with its right twin."""
    perm = list(range(self.num_joints))
    for left, right in self.left_right:
      perm[left], perm[right] = right, left
    return tuple(perm)

  def index(self, name: str) -> int:
    """Index of the joint called `name` (ValueError listing the names if absent)."""
    try:
      return self.names.index(name)
    except ValueError:
      raise ValueError(
          f"{self.name} has no joint {name!r}; joints are {list(self.names)}"
      ) from None

  def subset(self, keep: tuple[int, ...] | list[int], name: str | None = None) -> Skeleton:
    """A new skeleton of the joints `keep` (in that order).

    A kept joint whose parent was dropped is re-attached to its nearest kept
    ancestor (or becomes a root).
    """
    keep = tuple(int(k) for k in keep)
    where = {old: new for new, old in enumerate(keep)}
    parents = []
    for old in keep:
      p = self.parents[old]
      while p >= 0 and p not in where:
        p = self.parents[p]
      parents.append(where[p] if p >= 0 else -1)
    pairs = tuple(
        (where[a], where[b]) for a, b in self.left_right if a in where and b in where
    )
    return Skeleton(
        name=name or f"{self.name}_subset{len(keep)}",
        names=tuple(self.names[k] for k in keep),
        parents=tuple(parents),
        left_right=pairs,
    )


H36M17 = Skeleton(
    name="h36m17",
    names=(
        "Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine",
        "Thorax", "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist",
        "RShoulder", "RElbow", "RWrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    # (left, right): hips, knees, feet, shoulders, elbows, wrists.
    left_right=((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)),
)

# Evaluation subset of Human3.6M protocols #2 and #3 (docs/method.md §7): H36M17 minus
# Hip, Spine and Neck/Nose.
EVAL14_INDICES: tuple[int, ...] = tuple(
    i for i, n in enumerate(H36M17.names) if n not in ("Hip", "Spine", "Neck/Nose")
)
H36M_EVAL14 = H36M17.subset(EVAL14_INDICES, name="h36m_eval14")

# Joint indices of H36M17 in the 32-joint layout of the original release.
H36M32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
MPII16_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder",
    "l_elbow", "l_wrist",
)

# OpenPose BODY_25 (the default model of OpenPose >= 1.3), in its output order.
BODY25_NAMES = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar",
    "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)
# MediaPipe Pose (BlazePose) landmarks, in its output order.
MEDIAPIPE33_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)
# Halpe-26 (AlphaPose's full-body keypoints without face and hands): COCO-17,
# then head top, neck, pelvis and six foot points.
HALPE26_NAMES = (
    *COCO17_NAMES, "head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe",
    "right_small_toe", "left_heel", "right_heel",
)


def check_poses(poses, skeleton: Skeleton = H36M17, *, what: str = "poses",
                batched: bool = False) -> None:
  """Raises ValueError unless `poses` is a finite pose array for `skeleton`.

  Finiteness is not checked on JAX tracers (inside `jit`).

  Args:
    poses: array-like, expected (..., L, 3) with L = skeleton.num_joints, or
      (N, L, 3) with N ≥ 1 if `batched`.
    skeleton: the joints' skeleton.
    what: the argument's name, for the message.
    batched: require exactly one batch axis, of at least one pose.
  """
  shape = np.shape(poses)
  expected = "(N, {L}, 3) with N ≥ 1" if batched else "(..., {L}, 3)"
  wrong_batch = batched and (len(shape) != 3 or shape[0] == 0)
  if len(shape) < 2 or shape[-2:] != (skeleton.num_joints, 3) or wrong_batch:
    raise ValueError(
        f"expected {what} {expected.format(L=skeleton.num_joints)} for skeleton "
        f"{skeleton.name}, got {shape}; map other layouts with lift3d.skeleton.convert first"
    )
  jax = sys.modules.get("jax")  # a tracer exists only if jax is loaded
  if jax is not None and isinstance(poses, jax.core.Tracer):
    return
  if not bool(np.all(np.isfinite(poses))):
    raise ValueError(f"{what} contain NaN or infinite values; drop or repair those poses first")


class ConvertedPose(NamedTuple):
  """Keypoints mapped into H36M17.

  Attributes:
    keypoints: (..., 17, D) in the units of the input; NaN where `confidence`
      is 0.
    confidence: (..., 17) in [0, 1]: the source confidence of a mapped joint,
      the smallest confidence of the joints used for a derived one.
    estimated: (17,) bool, True for joints derived from others rather than
      taken from the source.
  """

  keypoints: np.ndarray
  confidence: np.ndarray
  estimated: np.ndarray


def _mapping(source_names: tuple[str, ...], recipe: dict[str, dict[str, float]]):
  """Turns {target: {source: weight}} into a (17, S) weight matrix."""
  weights = np.zeros((H36M17.num_joints, len(source_names)), np.float64)
  estimated = np.zeros((H36M17.num_joints,), bool)
  for target, parts in recipe.items():
    t = H36M17.index(target)
    for source, w in parts.items():
      weights[t, source_names.index(source)] += w
    estimated[t] = len(parts) > 1
  if not np.all(weights.any(axis=1)):
    missing = [H36M17.names[i] for i in np.flatnonzero(~weights.any(axis=1))]
    raise AssertionError(f"recipe lacks {missing}")
  return weights, estimated


def _mid(a: str, b: str) -> dict[str, float]:
  return {a: 0.5, b: 0.5}


# COCO has no pelvis, spine, thorax or head top. Pelvis and thorax are the hip
# and shoulder midpoints, spine the midpoint of those two (H36M's spine joint
# sits about half way), and the head top is extrapolated from the thorax
# through the ear midpoint by half that distance again (H36M: thorax->head top
# is about 1.5x thorax->ear level).
_COCO_RECIPE = {
    "Hip": _mid("left_hip", "right_hip"),
    "RHip": {"right_hip": 1.0},
    "RKnee": {"right_knee": 1.0},
    "RFoot": {"right_ankle": 1.0},
    "LHip": {"left_hip": 1.0},
    "LKnee": {"left_knee": 1.0},
    "LFoot": {"left_ankle": 1.0},
    "Spine": {"left_hip": 0.25, "right_hip": 0.25, "left_shoulder": 0.25, "right_shoulder": 0.25},
    "Thorax": _mid("left_shoulder", "right_shoulder"),
    "Neck/Nose": {"nose": 1.0},
    "Head": {"left_ear": 0.75, "right_ear": 0.75, "left_shoulder": -0.25, "right_shoulder": -0.25},
    "LShoulder": {"left_shoulder": 1.0},
    "LElbow": {"left_elbow": 1.0},
    "LWrist": {"left_wrist": 1.0},
    "RShoulder": {"right_shoulder": 1.0},
    "RElbow": {"right_elbow": 1.0},
    "RWrist": {"right_wrist": 1.0},
}

# MPII has no spine and no nose: the spine is the pelvis-thorax midpoint and
# Neck/Nose the midpoint of upper neck and head top.
_MPII_RECIPE = {
    "Hip": {"pelvis": 1.0},
    "RHip": {"r_hip": 1.0},
    "RKnee": {"r_knee": 1.0},
    "RFoot": {"r_ankle": 1.0},
    "LHip": {"l_hip": 1.0},
    "LKnee": {"l_knee": 1.0},
    "LFoot": {"l_ankle": 1.0},
    "Spine": _mid("pelvis", "thorax"),
    "Thorax": {"thorax": 1.0},
    "Neck/Nose": _mid("upper_neck", "head_top"),
    "Head": {"head_top": 1.0},
    "LShoulder": {"l_shoulder": 1.0},
    "LElbow": {"l_elbow": 1.0},
    "LWrist": {"l_wrist": 1.0},
    "RShoulder": {"r_shoulder": 1.0},
    "RElbow": {"r_elbow": 1.0},
    "RWrist": {"r_wrist": 1.0},
}

# BODY_25 has a pelvis (MidHip) and a neck at the shoulder midpoint (H36M's
# thorax), but no spine and no head top: the spine is the pelvis-neck midpoint
# and the head top is extrapolated from the neck through the ear midpoint by
# half that distance again, as for COCO.
_BODY25_RECIPE = {
    "Hip": {"MidHip": 1.0},
    "RHip": {"RHip": 1.0},
    "RKnee": {"RKnee": 1.0},
    "RFoot": {"RAnkle": 1.0},
    "LHip": {"LHip": 1.0},
    "LKnee": {"LKnee": 1.0},
    "LFoot": {"LAnkle": 1.0},
    "Spine": _mid("MidHip", "Neck"),
    "Thorax": {"Neck": 1.0},
    "Neck/Nose": {"Nose": 1.0},
    "Head": {"LEar": 0.75, "REar": 0.75, "Neck": -0.5},
    "LShoulder": {"LShoulder": 1.0},
    "LElbow": {"LElbow": 1.0},
    "LWrist": {"LWrist": 1.0},
    "RShoulder": {"RShoulder": 1.0},
    "RElbow": {"RElbow": 1.0},
    "RWrist": {"RWrist": 1.0},
}

# MediaPipe's body landmarks are COCO's (and more): the same derivations.
_MEDIAPIPE_RECIPE = _COCO_RECIPE

# Halpe-26 adds a pelvis ("hip"), a neck at the shoulder midpoint and a head
# top, so only the spine is derived (the pelvis-neck midpoint).
_HALPE_RECIPE = {
    **_COCO_RECIPE,
    "Hip": {"hip": 1.0},
    "Spine": _mid("hip", "neck"),
    "Thorax": {"neck": 1.0},
    "Head": {"head": 1.0},
}

_H36M32_WEIGHTS = np.eye(32)[list(H36M32_TO_17)]
_COCO_WEIGHTS, _COCO_ESTIMATED = _mapping(COCO17_NAMES, _COCO_RECIPE)
_MPII_WEIGHTS, _MPII_ESTIMATED = _mapping(MPII16_NAMES, _MPII_RECIPE)
_BODY25_WEIGHTS, _BODY25_ESTIMATED = _mapping(BODY25_NAMES, _BODY25_RECIPE)
_MEDIAPIPE_WEIGHTS, _MEDIAPIPE_ESTIMATED = _mapping(MEDIAPIPE33_NAMES, _MEDIAPIPE_RECIPE)
_HALPE_WEIGHTS, _HALPE_ESTIMATED = _mapping(HALPE26_NAMES, _HALPE_RECIPE)

LAYOUTS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "h36m17": (np.eye(17), np.zeros(17, bool)),
    "h36m32": (_H36M32_WEIGHTS, np.zeros(17, bool)),
    "coco17": (_COCO_WEIGHTS, _COCO_ESTIMATED),
    "mpii16": (_MPII_WEIGHTS, _MPII_ESTIMATED),
    "body25": (_BODY25_WEIGHTS, _BODY25_ESTIMATED),
    "mediapipe33": (_MEDIAPIPE_WEIGHTS, _MEDIAPIPE_ESTIMATED),
    "halpe26": (_HALPE_WEIGHTS, _HALPE_ESTIMATED),
}

# The source joint names of each layout (h36m32: its index in the release).
LAYOUT_NAMES: dict[str, tuple[str, ...]] = {
    "h36m17": H36M17.names,
    "h36m32": tuple(f"h36m32_{i}" for i in range(32)),
    "coco17": COCO17_NAMES,
    "mpii16": MPII16_NAMES,
    "body25": BODY25_NAMES,
    "mediapipe33": MEDIAPIPE33_NAMES,
    "halpe26": HALPE26_NAMES,
}


def convert(
    keypoints: np.ndarray,
    layout: str,
    confidence: np.ndarray | None = None,
) -> ConvertedPose:
  """Maps keypoints of a source layout into H36M17.

  Args:
    keypoints: (..., S, D) 2D or 3D keypoints in any units, S the number of
      joints of `layout` (17, 32, 17, 16, 25, 33, 26 for h36m17, h36m32,
      coco17, mpii16, body25, mediapipe33, halpe26). MediaPipe landmarks must
      be in pixels first (`mediapipe_to_pixels`).
    layout: one of the keys of `LAYOUTS`.
    confidence: (..., S) per-joint confidence in [0, 1], or None for all ones.
      Joints with confidence 0 may hold any value, NaN included.

  Returns:
    A `ConvertedPose` with keypoints (..., 17, D), confidence (..., 17) and
    the (17,) mask of derived joints.
  """
  if layout not in LAYOUTS:
    raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(LAYOUTS)}")
  weights, estimated = LAYOUTS[layout]
  keypoints = np.asarray(keypoints)
  num_source = weights.shape[1]
  if keypoints.ndim < 2 or keypoints.shape[-2] != num_source:
    raise ValueError(
        f"layout {layout!r} expects keypoints (..., {num_source}, D), got {keypoints.shape}"
    )
  if confidence is None:
    confidence = np.ones(keypoints.shape[:-1], np.float32)
  confidence = np.asarray(confidence, np.float32)
  if confidence.shape != keypoints.shape[:-1]:
    raise ValueError(
        f"confidence shape {confidence.shape} does not match keypoints {keypoints.shape[:-1]}"
    )
  usable = (confidence > 0) & np.all(np.isfinite(keypoints), axis=-1)
  confidence = np.where(usable, confidence, 0.0)
  clean = np.where(usable[..., None], keypoints, 0.0)
  out = np.einsum("ts,...sd->...td", weights, clean)
  out = out.astype(np.result_type(keypoints.dtype, np.float32))
  # A target joint is as confident as the least confident joint it uses.
  used = weights != 0  # (17, S)
  conf_used = np.where(used, confidence[..., None, :], np.inf)
  out_conf = np.min(conf_used, axis=-1).astype(np.float32)
  out = np.where(out_conf[..., None] > 0, out, np.nan)
  return ConvertedPose(out, out_conf, estimated.copy())


def mediapipe_to_pixels(
    landmarks: np.ndarray, image_size: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray | None]:
  """MediaPipe pose landmarks (normalised image coordinates) to pixels.

  MediaPipe reports x and y as fractions of the image width and height (x
  right, y down, origin at the top-left corner), then z and, in its
  `landmark` lists, `visibility`.

  Args:
    landmarks: (..., 33, C) with C = 2 (x, y), 3 (x, y, z) or 4 or 5
      (x, y, z, visibility[, presence]), normalised coordinates.
    image_size: (width, height) of the image in pixels.

  Returns:
    (keypoints (..., 33, 2) pixels, y down, pixel centres at integers (the
    top-left pixel's centre is (0, 0), as everywhere in lift3d), visibility
    (..., 33) in [0, 1] or None when C < 4). Feed both to `convert(..., "mediapipe33", ...)`.
  """
  landmarks = np.asarray(landmarks, np.float64)
  if landmarks.ndim < 2 or landmarks.shape[-2] != 33 or not 2 <= landmarks.shape[-1] <= 5:
    raise ValueError(
        f"expected MediaPipe landmarks (..., 33, 2..5) [x, y, z, visibility, presence], got "
        f"{landmarks.shape}")
  width, height = (float(v) for v in image_size)
  if not (width > 0 and height > 0):
    raise ValueError(f"image_size must be a positive (width, height), got {image_size}")
  # Fractions of the image measure from its top-left corner; lift3d's pixel
  # coordinates put the top-left pixel's centre at (0, 0): half a pixel apart.
  pixels = landmarks[..., :2] * np.asarray([width, height]) - 0.5
  visibility = None
  if landmarks.shape[-1] >= 4:
    visibility = np.clip(landmarks[..., 3], 0.0, 1.0)
  return pixels, visibility
