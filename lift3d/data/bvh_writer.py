"""Writing lifted H36M17 pose sequences as BVH motion (for animation tools).

The skeleton is H36M17 with fixed bone lengths. Each bone's direction is
reproduced exactly in every frame: a joint with one child turns to point its
bone at the child (the smallest rotation from the rest direction, so no
spurious twist), and a joint with several children (Hip, Thorax) gets a
zero-length branch joint per child, named "<joint>_<child>", so that its
children's bones turn independently; the joint itself takes the rotation
that best aligns its children (Kabsch). Read back with the same bone
lengths, the positions are those of the input's bone directions.

Conventions (those of `lift3d.data.bvh` and Blender's importer): y up, x
right, z towards the viewer; rotation channels "Zrotation Xrotation
Yrotation" (R = Rz Rx Ry), degrees; the root has position channels. Lengths
in the unit chosen (default centimetres; BVH files do not record it).

Shape letters: F frames, L = 17 joints, B bones of the BVH hierarchy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from lift3d.data.bvh import Bvh
from lift3d.skeleton import H36M17

UNITS_PER_MM = {"mm": 1.0, "cm": 0.1, "m": 0.001}
ROTATION_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")


def _bvh_name(name: str) -> str:
  return name.replace("/", "")  # "Neck/Nose" -> "NeckNose"


# H36M17 joint -> its joint in the written BVH (for `lift3d.data.bvh.to_h36m17`).
H36M17_FROM_BVH: dict[str, tuple[str]] = {n: (_bvh_name(n),) for n in H36M17.names}


def _children(parents: Sequence[int]) -> list[list[int]]:
  children = [[] for _ in parents]
  for j, p in enumerate(parents):
    if p >= 0:
      children[p].append(j)
  return children


def bone_lengths(poses: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
  """Median length of every bone over the valid frames.

  Args:
    poses: (F, 17, 3) joint positions (any unit).
    valid: optional (F,) bool.

  Returns:
    (17,) length of the bone from each joint's parent to it (0 for the root).
  """
  poses = np.asarray(poses, np.float64)
  parents = np.asarray(H36M17.parents)
  if valid is not None:
    poses = poses[np.asarray(valid, bool)]
  poses = poses[np.all(np.isfinite(poses), axis=(1, 2))]
  if poses.shape[0] == 0:
    raise ValueError("no valid frame to measure bone lengths from")
  lengths = np.linalg.norm(poses - poses[:, np.maximum(parents, 0)], axis=-1)
  return np.median(lengths, axis=0)


def model_bone_lengths(model) -> np.ndarray:
  """Bone lengths (17,) in millimetres of a pose model's mixture-weighted mean pose.

  Args:
    model: a `lift3d.PoseModel` of the H36M17 skeleton (the units of
      `LiftResult.pose3d`: model units times limb_scale, in mm).
  """
  means = np.asarray(model.mean, np.float64)  # (K, 17, 3)
  weights = np.asarray(model.weights, np.float64)
  if means.shape[1:] != (17, 3):
    raise ValueError(f"expected a model of 17 joints, got mean {means.shape}")
  mean = np.einsum("k,klc->lc", weights / weights.sum(), means)
  parents = np.maximum(np.asarray(H36M17.parents), 0)
  return np.linalg.norm(mean - mean[parents], axis=-1) * float(model.limb_scale) * 1000.0


def fix_bone_lengths(poses: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """The poses with every bone rescaled to `lengths`, directions and root kept.

  Args:
    poses: (F, 17, 3) positions.
    lengths: (17,) bone lengths (entry of the root ignored).

  Returns:
    (F, 17, 3) positions: what a BVH of these lengths reproduces.
  """
  poses = np.asarray(poses, np.float64)
  out = poses.copy()
  for j, p in enumerate(H36M17.parents):  # parents come before children
    if p >= 0:
      bone = poses[:, j] - poses[:, p]
      out[:, j] = out[:, p] + lengths[j] * bone / np.linalg.norm(bone, axis=-1, keepdims=True)
  return out


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Smallest rotations taking unit vectors a to b: (F, 3), (F, 3) -> (F, 3, 3)."""
  a = np.broadcast_to(a, b.shape)
  axis = np.cross(a, b)
  sin = np.linalg.norm(axis, axis=-1)
  cos = np.sum(a * b, axis=-1)
  # Opposite vectors: turn by π about any axis perpendicular to a.
  helper = np.where(np.abs(a[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
  perpendicular = np.cross(a, helper)
  perpendicular /= np.linalg.norm(perpendicular, axis=-1, keepdims=True)
  axis = np.where((sin < 1e-12)[:, None], perpendicular * (cos < 0)[:, None],
                  axis / np.maximum(sin, 1e-300)[:, None])
  angle = np.arctan2(sin, cos)
  k = np.zeros((len(b), 3, 3))
  k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
  k = k - np.swapaxes(k, 1, 2)
  s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
  return np.eye(3) + s * k + (1 - c) * (k @ k)


def _kabsch(rest: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Rotations R (F, 3, 3) minimising Σ_c |R rest_c − target_fc|²; rest (C, 3), target (F, C, 3)."""
  cov = np.einsum("fci,cj->fij", target, rest)
  u, _, vt = np.linalg.svd(cov)
  d = np.sign(np.linalg.det(u @ vt))
  fix = np.ones((len(target), 3))
  fix[:, 2] = d
  return (u * fix[:, None, :]) @ vt


def _euler_zxy(rot: np.ndarray) -> np.ndarray:
  """(F, 3, 3) -> (F, 3) degrees (z, x, y) with R = Rz(z) Rx(x) Ry(y)."""
  x = np.arcsin(np.clip(rot[:, 2, 1], -1.0, 1.0))
  y = np.arctan2(-rot[:, 2, 0], rot[:, 2, 2])
  z = np.arctan2(-rot[:, 0, 1], rot[:, 1, 1])
  return np.degrees(np.stack([z, x, y], axis=-1))


def poses_to_bvh(poses: np.ndarray, lengths: np.ndarray, *, frame_time: float,
                 units: str = "cm", root_positions: np.ndarray | None = None) -> Bvh:
  """A BVH of the H36M17 skeleton that reproduces the poses' bone directions.

  Args:
    poses: (F, 17, 3) millimetres, y up (e.g. `LiftResult.pose3d`); every
      frame finite (fill or drop invalid frames first).
    lengths: (17,) bone lengths in millimetres (`bone_lengths`, or a model's).
    frame_time: seconds per frame.
    units: "mm", "cm" or "m" for the file's lengths.
    root_positions: optional (F, 3) millimetres, the root's path (default:
      the poses' root joint, 0 for root-centred lifts).

  Returns:
    A `Bvh` (write it with `format_bvh`).
  """
  poses = np.asarray(poses, np.float64)
  if poses.ndim != 3 or poses.shape[1:] != (17, 3) or poses.shape[0] < 1:
    raise ValueError(f"expected poses (F, 17, 3) in mm, got {poses.shape}")
  if not np.all(np.isfinite(poses)):
    raise ValueError("poses hold non-finite values; drop or fill invalid frames first")
  if units not in UNITS_PER_MM:
    raise ValueError(f"units must be one of {sorted(UNITS_PER_MM)}, got {units!r}")
  lengths = np.asarray(lengths, np.float64)
  if lengths.shape != (17,) or not np.all(lengths[1:] > 0):
    raise ValueError(f"expected 17 positive bone lengths, got {lengths}")
  if not frame_time > 0:
    raise ValueError(f"frame_time must be positive, got {frame_time}")
  scale = UNITS_PER_MM[units]
  parents = H36M17.parents
  children = _children(parents)
  num_frames = poses.shape[0]
  directions = poses - poses[:, np.maximum(parents, 0)]
  norms = np.linalg.norm(directions, axis=-1, keepdims=True)
  if np.any(norms[:, 1:] <= 0):
    raise ValueError("a bone has zero length in some frame")
  directions = directions / np.where(norms > 0, norms, 1.0)
  # Rest pose: each bone along its mean direction over the sequence.
  rest = directions.mean(axis=0)
  rest /= np.maximum(np.linalg.norm(rest, axis=-1, keepdims=True), 1e-12)
  rest[np.linalg.norm(rest, axis=-1) < 0.5] = (0.0, 1.0, 0.0)

  names, bvh_parents, offsets, channels, rotations = [], [], [], [], []
  world = {}  # BVH joint index -> (F, 3, 3) world rotation

  def add(name, parent, offset, chans, local):
    names.append(name)
    bvh_parents.append(parent)
    offsets.append(offset)
    channels.append(chans)
    rotations.append(local)
    index = len(names) - 1
    if local is not None:
      world[index] = local if parent < 0 else world[parent] @ local
    return index

  def visit(joint, bvh_parent, offset):
    kids = children[joint]
    parent_world = np.broadcast_to(np.eye(3), (num_frames, 3, 3)) if bvh_parent < 0 \
        else world[bvh_parent]
    if len(kids) == 1:
      target = np.einsum("fji,fj->fi", parent_world, directions[:, kids[0]])  # Wᵀ d
      local = _rotation_between(rest[kids[0]], target)
    elif len(kids) > 1:
      w = _kabsch(rest[kids], directions[:, kids])
      local = np.swapaxes(parent_world, 1, 2) @ w
    else:
      local = np.broadcast_to(np.eye(3), (num_frames, 3, 3)).copy()
    chans = (("Xposition", "Yposition", "Zposition") if bvh_parent < 0 else ()) + \
        ROTATION_CHANNELS
    me = add(_bvh_name(H36M17.names[joint]), bvh_parent, offset, chans, local)
    if not kids:  # End Site a fifth of the bone further on
      add(f"{names[me]}_end", me, 0.2 * lengths[joint] * scale * rest[joint], (), None)
    elif len(kids) == 1:
      visit(kids[0], me, lengths[kids[0]] * scale * rest[kids[0]])
    else:
      for kid in kids:
        target = np.einsum("fji,fj->fi", world[me], directions[:, kid])
        branch = add(f"{names[me]}_{_bvh_name(H36M17.names[kid])}", me, np.zeros(3),
                     ROTATION_CHANNELS, _rotation_between(rest[kid], target))
        visit(kid, branch, lengths[kid] * scale * rest[kid])

  root = parents.index(-1)
  visit(root, -1, np.zeros(3))
  root_path = poses[:, root] if root_positions is None else np.asarray(root_positions, float)
  columns = []
  for chans, local in zip(channels, rotations, strict=True):
    if not chans:
      continue
    if chans[0] == "Xposition":
      columns.append(root_path * scale)
    columns.append(_euler_zxy(local))
  return Bvh(names=tuple(names), parents=tuple(bvh_parents),
             offsets=np.asarray(offsets, np.float64), channels=tuple(channels),
             frame_time=float(frame_time), motion=np.concatenate(columns, axis=1))


def format_bvh(bvh: Bvh) -> str:
  """The text of a BVH file (joints named "<parent>_end" without channels are End Sites)."""
  children = _children(bvh.parents)
  lines = ["HIERARCHY"]

  def emit(j, depth):
    pad = "  " * depth
    off = " ".join(f"{v:.6f}" for v in bvh.offsets[j])
    if not bvh.channels[j] and not children[j] and bvh.parents[j] >= 0:
      lines.extend([f"{pad}End Site", f"{pad}{{", f"{pad}  OFFSET {off}", f"{pad}}}"])
      return
    head = "ROOT" if bvh.parents[j] < 0 else "JOINT"
    lines.extend([f"{pad}{head} {bvh.names[j]}", f"{pad}{{", f"{pad}  OFFSET {off}",
                  f"{pad}  CHANNELS {len(bvh.channels[j])} {' '.join(bvh.channels[j])}".rstrip()])
    for c in children[j]:
      emit(c, depth + 1)
    lines.append(f"{pad}}}")

  emit(bvh.parents.index(-1), 0)
  lines.extend(["MOTION", f"Frames: {bvh.motion.shape[0]}", f"Frame Time: {bvh.frame_time:.8f}"])
  lines.extend(" ".join(f"{v:.6f}" for v in row) for row in bvh.motion)
  return "\n".join(lines) + "\n"


def write_bvh(path: str | os.PathLike, bvh: Bvh) -> None:
  """Writes `format_bvh(bvh)` to `path` (atomically: a temporary file, then a rename)."""
  text = format_bvh(bvh)
  tmp = f"{os.fspath(path)}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)
