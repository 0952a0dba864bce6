"""Builds `poses_h36m17.npz` from DeepMimic's humanoid clips shipped with pybullet.

Run from the repository root (needs the `mocap` extra, i.e. pybullet):

  pip install -e ".[mocap]"
  python third_party/deepmimic/convert.py            # writes third_party/deepmimic/poses_h36m17.npz

Each clip `pybullet_data/data/motions/humanoid3d_<name>.txt` is JSON with a list
"Frames" of 44 floats: duration (s), root position (3), root rotation (w,x,y,z),
chest (w,x,y,z), neck (w,x,y,z), right hip (w,x,y,z), right knee (angle, rad),
right ankle (w,x,y,z), right shoulder (w,x,y,z), right elbow (angle), then left
hip, knee, ankle, shoulder and elbow in the same form. y is up, +x forward.

Forward kinematics is our own (numpy, vectorised over frames) on the joint
offsets of `pybullet_data/humanoid/humanoid.urdf` at globalScaling 0.25; every
joint origin there has rpy = 0, so a link's frame is its parent's frame
rotated by the joint rotation and moved by the joint offset. Every frame (or a
random sample, --check_frames) is checked against pybullet's own forward
kinematics (the URDF loaded in DIRECT mode, base pose set, joints set with
resetJointStateMultiDof, link frame positions read back); the script fails if
they differ by more than 1e-5 m.

The output holds, for N frames of C clips:
  poses        (N, 17, 3) float32, metres, y up, H36M17 joint order, world frame
                (the clip's own root trajectory, not root-centred)
  clip_ids     (N,) int32, index into clip_names
  clip_names   (C,) str, e.g. "humanoid3d_walk"
  frame_rate   (C,) float32, frames per second of each clip (1 / its median keyframe
               duration, rounded to 0.01: the files write 1/60 s as 0.016666)
  frame_times  (N,) float32, seconds from the start of the clip
  loop         (C,) str, the clip's "Loop" field ("wrap" or "none")
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import re
import sys

import numpy as np

SCALE = 0.25  # globalScaling used by pybullet's DeepMimic examples (URDF is at 4x).

# Joints of the URDF in pybullet's order (joint index = position in this list),
# with their parent link, type and origin (URDF units, before SCALE).
_URDF_JOINTS = (
    # name, parent, type, origin xyz
    ("root", "base", "fixed", (0.0, 0.0, 0.0)),
    ("chest", "root", "spherical", (0.0, 0.944604, 0.0)),
    ("neck", "chest", "spherical", (0.0, 0.895576, 0.0)),
    ("right_hip", "root", "spherical", (0.0, 0.0, 0.339548)),
    ("right_knee", "right_hip", "revolute", (0.0, -1.686184, 0.0)),
    ("right_ankle", "right_knee", "spherical", (0.0, -1.639480, 0.0)),
    ("right_shoulder", "chest", "spherical", (-0.096200, 0.974000, 0.732440)),
    ("right_elbow", "right_shoulder", "revolute", (0.0, -1.099152, 0.0)),
    ("right_wrist", "right_elbow", "fixed", (0.0, -1.035788, 0.0)),
    ("left_hip", "root", "spherical", (0.0, 0.0, -0.339548)),
    ("left_knee", "left_hip", "revolute", (0.0, -1.686184, 0.0)),
    ("left_ankle", "left_knee", "spherical", (0.0, -1.639480, 0.0)),
    ("left_shoulder", "chest", "spherical", (-0.096200, 0.974000, -0.732440)),
    ("left_elbow", "left_shoulder", "revolute", (0.0, -1.099152, 0.0)),
    ("left_wrist", "left_elbow", "fixed", (0.0, -1.035788, 0.0)),
)
# Head sphere of the "neck" link: centre (0, 0.7, 0), radius 0.41 (URDF units).
_HEAD_CENTRE = (0.0, 0.70, 0.0)
_HEAD_RADIUS = 0.41

# Layout of a frame: (joint name, number of floats) after duration, root pos, root rot.
_FRAME_LAYOUT = (
    ("chest", 4), ("neck", 4),
    ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4), ("right_shoulder", 4), ("right_elbow", 1),
    ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4), ("left_shoulder", 4), ("left_elbow", 1),
)
_FRAME_SIZE = 8 + sum(n for _, n in _FRAME_LAYOUT)  # 44

# H36M17 joint -> point of the humanoid. Joints map to URDF joint origins
# (link frames) except the two head points, taken from the head sphere.
H36M17_SOURCES = (
    ("Hip", "root"),
    ("RHip", "right_hip"),
    ("RKnee", "right_knee"),
    ("RFoot", "right_ankle"),
    ("LHip", "left_hip"),
    ("LKnee", "left_knee"),
    ("LFoot", "left_ankle"),
    ("Spine", "chest"),  # the chest joint, ~half way from pelvis to neck base
    ("Thorax", "neck"),  # the neck joint, at the base of the neck between the shoulders
    ("Neck/Nose", "head_centre"),  # approximated: centre of the head sphere
    ("Head", "head_top"),  # top of the head sphere
    ("LShoulder", "left_shoulder"),
    ("LElbow", "left_elbow"),
    ("LWrist", "left_wrist"),
    ("RShoulder", "right_shoulder"),
    ("RElbow", "right_elbow"),
    ("RWrist", "right_wrist"),
)


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
  """Rotation matrices of quaternions.

  Args:
    quat: (..., 4) quaternions (w, x, y, z), any norm (normalised here).

  Returns:
    (..., 3, 3) rotation matrices.
  """
  quat = np.asarray(quat, np.float64)
  quat = quat / np.linalg.norm(quat, axis=-1, keepdims=True)
  w, x, y, z = np.moveaxis(quat, -1, 0)
  return np.stack(
      [
          np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
          np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
          np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
      ],
      -2,
  )


def _rot_z(angle: np.ndarray) -> np.ndarray:
  c, s = np.cos(angle), np.sin(angle)
  zero, one = np.zeros_like(angle), np.ones_like(angle)
  return np.stack(
      [np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], -2
  )


def parse_frames(frames: np.ndarray) -> dict[str, np.ndarray]:
  """Splits (F, 44) DeepMimic frames into named parts.

  Returns:
    dict with "duration" (F,), "root_pos" (F, 3), "root_rot" (F, 4) and one entry per
    joint of `_FRAME_LAYOUT`: (F, 4) quaternions (w, x, y, z) or (F,) angles (rad).
  """
  frames = np.asarray(frames, np.float64)
  if frames.ndim != 2 or frames.shape[1] != _FRAME_SIZE:
    raise ValueError(f"expected frames (F, {_FRAME_SIZE}), got {frames.shape}")
  parts = {"duration": frames[:, 0], "root_pos": frames[:, 1:4], "root_rot": frames[:, 4:8]}
  at = 8
  for name, size in _FRAME_LAYOUT:
    parts[name] = frames[:, at] if size == 1 else frames[:, at : at + size]
    at += size
  return parts


def forward_kinematics(frames: np.ndarray) -> dict[str, np.ndarray]:
  """World positions of every URDF joint origin and of the two head points.

  Args:
    frames: (F, 44) DeepMimic frames.

  Returns:
    dict name -> (F, 3) world positions in metres (y up), for every joint of
    `_URDF_JOINTS` plus "head_centre" and "head_top".
  """
  parts = parse_frames(frames)
  rot = {"base": quat_to_matrix(parts["root_rot"])}
  pos = {"base": parts["root_pos"]}
  for name, parent, kind, offset in _URDF_JOINTS:
    offset = SCALE * np.asarray(offset)
    pos[name] = pos[parent] + np.einsum("fij,j->fi", rot[parent], offset)
    if kind == "spherical":
      local = quat_to_matrix(parts[name])
    elif kind == "revolute":  # every revolute joint of the humanoid turns about its z axis
      local = _rot_z(parts[name])
    else:
      local = np.eye(3)
    rot[name] = rot[parent] @ local
  head_rot = rot["neck"]
  pos["head_centre"] = pos["neck"] + np.einsum("fij,j->fi", head_rot, SCALE * np.asarray(_HEAD_CENTRE))
  top = np.asarray(_HEAD_CENTRE) + np.array([0.0, _HEAD_RADIUS, 0.0])
  pos["head_top"] = pos["neck"] + np.einsum("fij,j->fi", head_rot, SCALE * top)
  return {k: v for k, v in pos.items() if k != "base"}


def to_h36m17(points: dict[str, np.ndarray]) -> np.ndarray:
  """(F, 17, 3) H36M17 poses from the named points of `forward_kinematics`."""
  return np.stack([points[source] for _, source in H36M17_SOURCES], axis=1)


def load_pybullet_humanoid(urdf_path: str):
  """Connects a DIRECT pybullet client and loads the humanoid; returns (client, body)."""
  import pybullet as pb  # the `mocap` extra; only needed to check the FK

  client = pb.connect(pb.DIRECT)
  body = pb.loadURDF(
      urdf_path, [0, 0, 0], globalScaling=SCALE, useFixedBase=True,
      flags=pb.URDF_MAINTAIN_LINK_ORDER, physicsClientId=client,
  )
  names = [pb.getJointInfo(body, j, physicsClientId=client)[1].decode()
           for j in range(pb.getNumJoints(body, physicsClientId=client))]
  if tuple(names) != tuple(j[0] for j in _URDF_JOINTS):
    pb.disconnect(client)
    raise RuntimeError(f"unexpected URDF joint order {names}")
  return client, body


def pybullet_link_positions(frames: np.ndarray, client: int, body: int) -> np.ndarray:
  """pybullet's own forward kinematics: (F, 15, 3) link-frame world positions.

  Link i is the child of joint i of `_URDF_JOINTS`; the link frame sits at the
  joint origin, so these equal our joint positions.
  """
  import pybullet as pb

  def xyzw(q):
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q)
    return [q[1], q[2], q[3], q[0]]

  parts = parse_frames(frames)
  out = np.zeros((len(frames), len(_URDF_JOINTS), 3))
  for f in range(len(frames)):
    pb.resetBasePositionAndOrientation(
        body, parts["root_pos"][f].tolist(), xyzw(parts["root_rot"][f]), physicsClientId=client)
    for j, (name, _, kind, _) in enumerate(_URDF_JOINTS):
      if kind == "spherical":
        pb.resetJointStateMultiDof(body, j, xyzw(parts[name][f]), physicsClientId=client)
      elif kind == "revolute":
        pb.resetJointStateMultiDof(body, j, [float(parts[name][f])], physicsClientId=client)
    for j in range(len(_URDF_JOINTS)):
      state = pb.getLinkState(body, j, computeForwardKinematics=True, physicsClientId=client)
      out[f, j] = state[4]  # worldLinkFramePosition (state[0] is the centre of mass)
  return out


def _yaw_aligned(pose: np.ndarray) -> np.ndarray:
  """Root-centred (17, 3) pose turned about y so that its hips lie along z."""
  pose = pose - pose[0]
  across = pose[1] - pose[4]  # RHip - LHip
  angle = np.arctan2(across[0], across[2])
  c, s = np.cos(angle), np.sin(angle)
  rot = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
  return pose @ rot.T


def load_clip(path: str) -> tuple[np.ndarray, str]:
  """Frames (F, 44) and the "Loop" field of one clip file."""
  with open(path) as f:
    data = json.load(f)
  frames = np.asarray(data["Frames"], np.float64)
  if frames.ndim != 2 or frames.shape[1] != _FRAME_SIZE:
    raise ValueError(f"{path}: expected frames of {_FRAME_SIZE} floats, got {frames.shape}")
  return frames, str(data.get("Loop", "none"))


def convert(data_dir: str, check_frames: int, seed: int = 0) -> dict[str, np.ndarray]:
  """Converts every humanoid3d_*.txt clip under `data_dir` (a pybullet_data folder)."""
  paths = sorted(glob.glob(os.path.join(data_dir, "data", "motions", "humanoid3d_*.txt")))
  if not paths:
    raise FileNotFoundError(f"no humanoid3d_*.txt clips under {data_dir}/data/motions")
  urdf = os.path.join(data_dir, "humanoid", "humanoid.urdf")
  rng = np.random.default_rng(seed)
  import pybullet as pb  # the `mocap` extra

  client, body = load_pybullet_humanoid(urdf)
  try:
    return _convert_clips(paths, client, body, rng, check_frames)
  finally:
    pb.disconnect(client)


def _convert_clips(paths, client, body, rng, check_frames):
  poses, clip_ids, times, names, rates, loops = [], [], [], [], [], []
  worst_fk = 0.0
  for c, path in enumerate(paths):
    name = re.sub(r"\.txt$", "", os.path.basename(path))
    frames, loop = load_clip(path)
    points = forward_kinematics(frames)
    pose = to_h36m17(points)
    # Check our FK against pybullet's on the picked frames (all 15 link frames).
    pick = rng.choice(len(frames), size=min(check_frames, len(frames)), replace=False)
    ours = np.stack([points[j[0]] for j in _URDF_JOINTS], axis=1)[pick]
    theirs = pybullet_link_positions(frames[pick], client, body)
    err = float(np.abs(ours - theirs).max())
    worst_fk = max(worst_fk, err)
    if err > 1e-5:
      raise RuntimeError(f"{name}: our FK differs from pybullet's by {err} m")
    # The last keyframe has duration 0: it only ends the clip. In a "wrap" clip
    # it is the first pose again (moved along the root trajectory); keep it
    # only if its body pose differs from the first frame's.
    duration = frames[:, 0]
    repeat = float(np.linalg.norm(_yaw_aligned(pose[-1]) - _yaw_aligned(pose[0]), axis=-1).mean())
    drop_last = loop == "wrap" and repeat < 0.01
    nonzero = duration[:-1][duration[:-1] > 0]
    step = float(np.median(nonzero))
    t = np.concatenate([[0.0], np.cumsum(duration[:-1])])
    if drop_last:
      pose, t = pose[:-1], t[:-1]
    logging.info(
        "%-30s %4d keyframes, loop=%s, %5.1f fps%s, last vs first frame %.1f mm -> %s, %d frames kept",
        name, len(frames), loop, 1.0 / step,
        "" if np.allclose(nonzero, step, atol=1e-4) else f" (durations {sorted(set(np.round(nonzero, 5).tolist()))} s)",
        1000 * repeat, "dropped" if drop_last else "kept", len(pose),
    )
    poses.append(pose)
    clip_ids.append(np.full(len(pose), c, np.int32))
    times.append(t)
    names.append(name)
    # Durations are written truncated (0.016666 for 1/60 s): round the rate.
    rates.append(round(1.0 / step, 2))
    loops.append(loop)
  logging.info("our FK vs pybullet: largest difference %.2e m", worst_fk)
  return {
      "poses": np.concatenate(poses).astype(np.float32),
      "clip_ids": np.concatenate(clip_ids),
      "clip_names": np.asarray(names),
      "frame_rate": np.asarray(rates, np.float32),
      "frame_times": np.concatenate(times).astype(np.float32),
      "loop": np.asarray(loops),
  }


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=None, help="pybullet_data folder (default: pybullet's)")
  parser.add_argument(
      "--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "poses_h36m17.npz"))
  parser.add_argument("--check_frames", type=int, default=100000,
                      help="frames per clip cross-checked against pybullet's FK (default: all)")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  data_dir = args.data_dir
  if data_dir is None:
    import pybullet_data

    data_dir = pybullet_data.getDataPath()
  out = convert(data_dir, args.check_frames)
  np.savez_compressed(args.out, **out)
  logging.info(
      "wrote %s: %d frames, %d clips, %.0f kB", args.out, len(out["poses"]),
      len(out["clip_names"]), os.path.getsize(args.out) / 1024,
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
