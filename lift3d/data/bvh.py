"""BVH motion files: parser, forward kinematics and the map to H36M17.

BVH is the form in which the CMU motion-capture database (and much else)
circulates. A file has a HIERARCHY of joints, each with an OFFSET from its
parent and CHANNELS (positions and Euler angles in degrees, in the order given),
and a MOTION section of frames of channel values.

Conventions used here (those of the common readers):
- A joint's local rotation is the product of its rotation channels in the
  order listed: "Zrotation Xrotation Yrotation" means R = Rz @ Rx @ Ry, acting
  on column vectors of the child frame.
- A joint with position channels takes its local translation from them (the
  OFFSET is then only the rest pose), component by component; otherwise the
  translation is the OFFSET.
- world_rot[j] = world_rot[parent] @ R_j, world_pos[j] = world_pos[parent] +
  world_rot[parent] @ translation_j.
- Every "End Site" becomes a joint named "<parent>_end" without channels; the
  End Site of the head gives the head top.

Shape letters: F frames, J joints of the file (end sites included), C channels.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lift3d.data import mocap
from lift3d.skeleton import H36M17

_AXES = {"X": 0, "Y": 1, "Z": 2}
_CHANNEL = re.compile(r"^([XYZ])(position|rotation)$", re.IGNORECASE)


class Bvh(NamedTuple):
  """The contents of a BVH file.

  Attributes:
    names: (J,) joint names in file order, end sites as "<parent>_end".
    parents: (J,) parent index of each joint, -1 for the root.
    offsets: (J, 3) float64 offset of each joint from its parent, file units.
    channels: (J,) tuple of channel names per joint, e.g. ("Zrotation",
      "Xrotation", "Yrotation"); () for end sites.
    frame_time: seconds per frame.
    motion: (F, C) float64 channel values, C = total number of channels, in
      the order of `channels`; positions in file units, angles in degrees.
  """

  names: tuple[str, ...]
  parents: tuple[int, ...]
  offsets: np.ndarray
  channels: tuple[tuple[str, ...], ...]
  frame_time: float
  motion: np.ndarray


def parse_bvh(text: str) -> Bvh:
  """Parses the text of a BVH file.

  Args:
    text: the whole file.

  Returns:
    A `Bvh`. ValueError, naming the line, for malformed files.
  """
  # Braces may share a line with other tokens: give them lines of their own.
  text = text.replace("{", "\n{\n").replace("}", "\n}\n")
  lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
  if not lines or lines[0][1].upper() != "HIERARCHY":
    raise ValueError("not a BVH file: it must start with HIERARCHY")
  names, parents, offsets, channels = [], [], [], []
  end_sites = set()
  stack: list[int] = []  # joints whose blocks are open
  pending: int | None = None  # joint whose "{" comes next
  i = 1
  while i < len(lines):
    n, line = lines[i]
    head, _, rest = line.partition(" ")
    key = head.upper()
    is_end = line.upper().replace(" ", "") == "ENDSITE"
    if key == "MOTION":
      break
    if pending is not None and line != "{":
      raise ValueError(f"line {n}: expected '{{' after {names[pending]!r}, got {line!r}")
    if key in ("ROOT", "JOINT") or is_end:
      if key == "ROOT" and stack:
        raise ValueError(f"line {n}: ROOT inside another joint")
      if key != "ROOT" and not stack:
        raise ValueError(f"line {n}: {line!r} outside any joint")
      if stack and stack[-1] in end_sites:
        raise ValueError(f"line {n}: a joint inside an End Site")
      if is_end:
        name = f"{names[stack[-1]]}_end"
        end_sites.add(len(names))
      else:
        name = rest.strip()
        if not name:
          raise ValueError(f"line {n}: {head} without a name")
      names.append(name)
      parents.append(stack[-1] if stack else -1)
      offsets.append(None)
      channels.append(())
      pending = len(names) - 1
    elif line == "{":
      if pending is None:
        raise ValueError(f"line {n}: '{{' without a joint")
      stack.append(pending)
      pending = None
    elif line == "}":
      if not stack:
        raise ValueError(f"line {n}: unmatched '}}'")
      stack.pop()
    elif key in ("OFFSET", "CHANNELS"):
      if not stack:
        raise ValueError(f"line {n}: {line!r} outside any joint")
      joint = stack[-1]
      parts = rest.split()
      if key == "OFFSET":
        if len(parts) != 3:
          raise ValueError(f"line {n}: OFFSET needs 3 numbers, got {line!r}")
        offsets[joint] = [float(v) for v in parts]
      else:
        if joint in end_sites:
          raise ValueError(f"line {n}: an End Site has no CHANNELS")
        if not parts or not parts[0].isdigit() or int(parts[0]) != len(parts) - 1:
          raise ValueError(f"line {n}: CHANNELS count does not match the names: {line!r}")
        for c in parts[1:]:
          if not _CHANNEL.match(c):
            raise ValueError(f"line {n}: unknown channel {c!r}")
        channels[joint] = tuple(parts[1:])
    else:
      raise ValueError(f"line {n}: unexpected {line!r}")
    i += 1
  if stack or pending is not None:
    raise ValueError("unbalanced braces in HIERARCHY")
  if not names:
    raise ValueError("BVH file has no joints")
  missing = [names[j] for j, o in enumerate(offsets) if o is None]
  if missing:
    raise ValueError(f"joints without OFFSET: {missing}")
  if parents.count(-1) != 1:
    raise ValueError(f"expected one ROOT, got {parents.count(-1)}")
  if i >= len(lines):
    raise ValueError("BVH file has no MOTION section")
  frames, frame_time, i = _motion_header(lines, i + 1)
  try:
    numbers = np.array(" ".join(line for _, line in lines[i:]).split(), dtype=np.float64)
  except ValueError as e:
    raise ValueError(f"MOTION holds a non-number: {e}") from None
  num_channels = sum(len(c) for c in channels)
  if numbers.size != frames * num_channels:
    raise ValueError(
        f"MOTION holds {numbers.size} numbers; expected {frames} frames x {num_channels} channels"
    )
  if not np.all(np.isfinite(numbers)):
    raise ValueError("MOTION holds non-finite values")
  return Bvh(
      names=tuple(names),
      parents=tuple(parents),
      offsets=np.asarray(offsets, np.float64),
      channels=tuple(channels),
      frame_time=frame_time,
      motion=numbers.reshape(frames, num_channels),
  )


def _motion_header(lines, i) -> tuple[int, float, int]:
  """Reads "Frames: N" and "Frame Time: t"; returns (N, t, index of the first frame line)."""
  try:
    n, line = lines[i]
    if not line.lower().startswith("frames:"):
      raise ValueError(f"line {n}: expected 'Frames: N', got {line!r}")
    frames = int(line.split(":", 1)[1])
    n, line = lines[i + 1]
    if not line.lower().startswith("frame time:"):
      raise ValueError(f"line {n}: expected 'Frame Time: t', got {line!r}")
    frame_time = float(line.split(":", 1)[1])
  except IndexError:
    raise ValueError("MOTION section ends before 'Frames' and 'Frame Time'") from None
  if frames < 1:
    raise ValueError(f"BVH file has {frames} frames")
  if not frame_time > 0:
    raise ValueError(f"Frame Time must be positive, got {frame_time}")
  return frames, frame_time, i + 2


def read_bvh(path: str | os.PathLike) -> Bvh:
  """Reads and parses a BVH file (ValueError if missing or malformed)."""
  path = Path(path)
  if not path.is_file():
    raise ValueError(f"no BVH file at {path}")
  try:
    return parse_bvh(path.read_text())
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None


def euler_matrix(angles: np.ndarray, order: str) -> np.ndarray:
  """Rotation matrices of intrinsic Euler angles applied in `order`.

  Args:
    angles: (..., K) angles in degrees, K = len(order).
    order: axes, e.g. "ZXY", meaning R = Rz(a0) @ Rx(a1) @ Ry(a2).

  Returns:
    (..., 3, 3) rotation matrices.
  """
  angles = np.radians(np.asarray(angles, np.float64))
  out = np.broadcast_to(np.eye(3), (*angles.shape[:-1], 3, 3))
  for k, axis in enumerate(order.upper()):
    c, s = np.cos(angles[..., k]), np.sin(angles[..., k])
    rot = np.zeros((*angles.shape[:-1], 3, 3))
    a = _AXES[axis]
    b, d = (a + 1) % 3, (a + 2) % 3
    rot[..., a, a] = 1.0
    rot[..., b, b] = c
    rot[..., d, d] = c
    rot[..., b, d] = -s
    rot[..., d, b] = s
    out = out @ rot
  return out


def forward_kinematics(bvh: Bvh) -> np.ndarray:
  """World positions of every joint in every frame.

  Args:
    bvh: a parsed file.

  Returns:
    (F, J, 3) float64 positions in file units, in the file's axes.
  """
  frames = bvh.motion.shape[0]
  world_rot = np.zeros((frames, len(bvh.names), 3, 3))
  world_pos = np.zeros((frames, len(bvh.names), 3))
  column = 0
  for j, (parent, channels) in enumerate(zip(bvh.parents, bvh.channels, strict=True)):
    translation = np.broadcast_to(bvh.offsets[j], (frames, 3)).copy()
    order, rot_columns = "", []
    for c in channels:
      axis, kind = _CHANNEL.match(c).groups()
      if kind.lower() == "position":
        translation[:, _AXES[axis.upper()]] = bvh.motion[:, column]
      else:
        order += axis.upper()
        rot_columns.append(column)
      column += 1
    local = euler_matrix(bvh.motion[:, rot_columns], order) if order else np.eye(3)
    if parent < 0:
      world_pos[:, j] = translation
      world_rot[:, j] = local
    else:
      world_pos[:, j] = world_pos[:, parent] + np.einsum(
          "fij,fj->fi", world_rot[:, parent], translation)
      world_rot[:, j] = world_rot[:, parent] @ local
  return world_pos


# H36M17 joint -> alternatives, first match wins; an alternative that is a
# tuple of names means the mean of those joints. Names match without case and
# without a namespace prefix ("mixamorig:Hips" matches "Hips"). Fits the CMU
# BVH naming (Hips, LeftUpLeg, LeftLeg, LeftFoot, Spine, Spine1, Neck, Neck1,
# Head, LeftShoulder, LeftArm, LeftForeArm, LeftHand, ...) and Mixamo's.
CMU_TO_H36M17: dict[str, tuple[str | tuple[str, ...], ...]] = {
    "Hip": ("Hips",),
    "RHip": ("RightUpLeg",),
    "RKnee": ("RightLeg",),
    "RFoot": ("RightFoot",),
    "LHip": ("LeftUpLeg",),
    "LKnee": ("LeftLeg",),
    "LFoot": ("LeftFoot",),
    # H36M's spine joint lies about half way from pelvis to thorax; the spine
    # joints of BVH skeletons sit at different heights, so take the midpoint.
    "Spine": (("Hips", "Neck"),),
    "Thorax": ("Neck",),
    # Neck/Nose: the middle of the head, between the head joint (skull base)
    # and the head top.
    "Neck/Nose": (("Head", "Head_end"), ("Head", "HeadTop_End")),
    "Head": ("Head_end", "HeadTop_End"),
    "LShoulder": ("LeftArm",),  # the shoulder joint; "LeftShoulder" is the clavicle
    "LElbow": ("LeftForeArm",),
    "LWrist": ("LeftHand",),
    "RShoulder": ("RightArm",),
    "RElbow": ("RightForeArm",),
    "RWrist": ("RightHand",),
}


def _normalise_name(name: str) -> str:
  return name.rsplit(":", 1)[-1].strip().lower()


def to_h36m17(
    names: Sequence[str],
    positions: np.ndarray,
    joint_map: Mapping[str, Sequence[str | Sequence[str]]] | None = None,
) -> np.ndarray:
  """Picks (or averages) BVH joints into H36M17.

  Args:
    names: (J,) joint names of the file.
    positions: (F, J, 3) joint positions.
    joint_map: H36M17 name -> alternatives (a joint name, or a sequence of
      names to average), first present one used; default `CMU_TO_H36M17`.
      Must cover all 17 joints.

  Returns:
    (F, 17, 3) positions in the units and axes of `positions`.
  """
  joint_map = CMU_TO_H36M17 if joint_map is None else joint_map
  positions = np.asarray(positions)
  if positions.ndim != 3 or positions.shape[1:] != (len(names), 3):
    raise ValueError(f"expected positions (F, {len(names)}, 3), got {positions.shape}")
  lookup = {}
  for j, name in enumerate(names):
    lookup.setdefault(_normalise_name(name), j)
  out, missing = [], []
  for target in H36M17.names:
    if target not in joint_map:
      raise ValueError(f"joint_map lacks H36M17 joint {target!r}")
    for alternative in joint_map[target]:
      group = (alternative,) if isinstance(alternative, str) else tuple(alternative)
      found = [lookup.get(_normalise_name(g)) for g in group]
      if all(f is not None for f in found):
        out.append(positions[:, found].mean(axis=1))
        break
    else:
      missing.append(f"{target} (tried {list(joint_map[target])})")
  if missing:
    raise ValueError(
        f"BVH joints missing for {missing}; the file has {list(names)}; "
        "pass a joint_map naming its joints"
    )
  return np.stack(out, axis=1)


def load_bvh(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    units: float = 1.0,
    up_axis: str = "y",
    joint_map: Mapping[str, Sequence[str | Sequence[str]]] | None = None,
    clip_names: Sequence[str] | None = None,
) -> mocap.MocapCorpus:
  """Reads BVH files into a `MocapCorpus` of H36M17 poses, one clip per file.

  Args:
    paths: a BVH file or a sequence of them.
    units: metres per BVH unit. Files differ: 0.01 for centimetres, 0.0254
      for inches; the CMU database's ASF/AMC skeletons use 1/0.45 inch
      (0.05644 m) per unit — check the resulting height.
    up_axis: "y" (most BVH files) or "z"; z-up files are turned to y up by
      the rotation (x, y, z) -> (x, z, -y) (`mocap.Z_UP_TO_Y_UP`).
    joint_map: see `to_h36m17`; default `CMU_TO_H36M17`.
    clip_names: one name per file; default the file names without extension.

  Returns:
    The corpus: poses (N, 17, 3) float32 metres, y up; frame rate 1 / Frame Time.
  """
  if isinstance(paths, str | os.PathLike):
    paths = [paths]
  paths = [Path(p) for p in paths]
  if not paths:
    raise ValueError("no BVH files given")
  if not (np.isfinite(units) and units > 0):
    raise ValueError(f"units (metres per BVH unit) must be positive, got {units}")
  if up_axis not in ("y", "z"):
    raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
  if clip_names is None:
    clip_names = [p.stem for p in paths]
  if len(clip_names) != len(paths):
    raise ValueError(f"{len(clip_names)} clip names for {len(paths)} files")
  clips, rates = [], []
  for name, path in zip(clip_names, paths, strict=True):
    bvh = read_bvh(path)
    poses = to_h36m17(bvh.names, forward_kinematics(bvh), joint_map) * units
    if up_axis == "z":
      poses = poses @ mocap.Z_UP_TO_Y_UP.T
    clips.append((name, poses))
    rates.append(1.0 / bvh.frame_time)
  return mocap.from_clips(clips, rates)
