"""Tiny fake copies of Human3.6M in both input layouts, for tests.

The same planted world poses are written as (1) the preprocessed npz files and
(2) the original release's CDF folders (camera-frame 3D and 2D, via cdflib), so
tests can check every field end to end against the planted values.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from lift3d.data.h36m import cameras as cams
from lift3d.data.h36m.sources import ALL_SUBJECTS
from lift3d.skeleton import H36M32_TO_17

# Raw action names as in the real files (S1 uses "TakingPhoto", others "Photo").
RAW_ACTIONS = ("Directions", "Directions 1", "TakingPhoto 1")
DETECTION_OFFSET = np.array([3.0, -4.0])  # px added to the GT 2D to fake detections
EXTRA_DETECTION_FRAMES = 2  # detections longer than the mocap, as happens


def num_frames(subject: str, raw_action: str) -> int:
  return 70 if raw_action == "Directions" else 66


@functools.lru_cache(maxsize=1)
def _corpus() -> np.ndarray:
  from lift3d.data import mocap

  return mocap.load_embedded(sources=("deepmimic",)).poses


def world_poses(subject: str, raw_action: str) -> np.ndarray:
  """(N, 32, 3) float32 metres, world frame (z up): mocap poses near the room centre.

  Consecutive frames of the embedded mocap corpus (y up) turned z up, at a
  random yaw, with the joints H36M17 lacks set to the hip.
  """
  seed = ALL_SUBJECTS.index(subject) * 10 + RAW_ACTIONS.index(raw_action)
  rng = np.random.default_rng(seed)
  n = num_frames(subject, raw_action)
  corpus = _corpus()
  start = rng.integers(0, len(corpus) - n)
  poses = corpus[start:start + n].astype(np.float64)  # (n, 17, 3) y up
  poses[..., [0, 2]] -= poses[:1, :1, [0, 2]]  # hip of the first frame over the origin
  yaw = rng.uniform(0, 2 * np.pi)
  c, s = np.cos(yaw), np.sin(yaw)
  poses = poses @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T
  world = poses @ cams.WORLD_TO_MODEL  # y up -> z up (inverse of world_to_model)
  out = np.repeat(world[:, :1], 32, axis=1)
  out[:, list(H36M32_TO_17)] = world
  return out.astype(np.float32)


def projections(subject: str, raw_action: str, joints32: bool):
  """Per camera: (camera-frame mm (N,J,3), pixels (N,J,2)) of the planted poses."""
  world = world_poses(subject, raw_action).astype(np.float64) * 1000.0
  if not joints32:
    world = world[:, list(H36M32_TO_17)]
  out = []
  for cid in cams.CAMERA_IDS:
    camera = cams.get_camera(subject, cid)
    pc = cams.world_to_camera(world, camera)
    out.append((pc, cams.project(pc, camera)))
  return out


def write_npz(root: str, subjects=ALL_SUBJECTS, detections: bool = True) -> str:
  os.makedirs(root, exist_ok=True)
  pos3d, pos2d, det2d = {}, {}, {}
  for s in subjects:
    pos3d[s], pos2d[s], det2d[s] = {}, {}, {}
    for raw in RAW_ACTIONS:
      name = raw if s == "S1" else raw.replace("TakingPhoto", "Photo")
      pos3d[s][name] = world_poses(s, raw)
      proj = projections(s, raw, joints32=False)
      pos2d[s][name] = [px.astype(np.float32) for _, px in proj]
      det2d[s][name] = [
          np.concatenate([px, px[-EXTRA_DETECTION_FRAMES:]]).astype(np.float32) + DETECTION_OFFSET
          for _, px in proj
      ]
  np.savez_compressed(os.path.join(root, "data_3d_h36m.npz"), positions_3d=pos3d)
  np.savez_compressed(os.path.join(root, "data_2d_h36m_gt.npz"), positions_2d=pos2d)
  if detections:
    np.savez_compressed(os.path.join(root, "data_2d_h36m_cpn_ft_h36m_dbb.npz"),
                        positions_2d=det2d)
  return root


def _write_cdf(path: str, data: np.ndarray):
  import cdflib

  if os.path.exists(path):
    os.remove(path)
  n, width = data.shape
  writer = cdflib.cdfwrite.CDF(path, cdf_spec={"Compressed": False})
  spec = {"Variable": "Pose", "Data_Type": 44, "Num_Elements": 1, "Rec_Vary": True,
          "Dim_Sizes": [n, width]}  # 44 = CDF_FLOAT, as in the release
  writer.write_var(spec, var_data=data[None].astype(np.float32))
  writer.close()


def write_cdf(root: str, subjects=ALL_SUBJECTS, with_2d: bool = True) -> str:
  for s in subjects:
    d3 = os.path.join(root, s, "MyPoseFeatures", "D3_Positions_mono")
    d2 = os.path.join(root, s, "MyPoseFeatures", "D2_Positions")
    os.makedirs(d3, exist_ok=True)
    os.makedirs(d2, exist_ok=True)
    for raw in RAW_ACTIONS:
      for cid, (pc, px) in zip(cams.CAMERA_IDS, projections(s, raw, joints32=True), strict=True):
        _write_cdf(os.path.join(d3, f"{raw}.{cid}.cdf"), pc.reshape(len(pc), -1))
        if with_2d:
          _write_cdf(os.path.join(d2, f"{raw}.{cid}.cdf"), px.reshape(len(px), -1))
  return root
