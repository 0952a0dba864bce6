"""Human3.6M cameras: parameters, world <-> camera transforms, projection by `lift3d.camera`.

The parameters of the four cameras (intrinsics shared by all subjects,
extrinsics per subject) are read from `third_party/h36m/cameras.json`; see the
README there for their provenance and format.

Frames: the world frame of Human3.6M is in millimetres with z up. A camera
frame has x right, y down and z along the optical axis (forward), in
millimetres. Image coordinates are pixels, x right, y down.

Shape letters: L joints (any number of points per pose).
"""

from __future__ import annotations

import functools
import json
import pathlib
from typing import NamedTuple

import numpy as np

from lift3d import camera as camera_lib

CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
# The "frontal camera (cam 3)" of Protocol #3 (Bogo et al. 2016, followed by the
# paper): "cam 3" counts from 0 in the dataset's camera order, i.e. 60457274;
# it is also the one camera that public evaluation code of this protocol
# (e.g. SPIN's Human3.6M preprocessing) keeps. Change it here if your
# reading of "cam 3" differs (1-based counting would give 58860488).
FRONTAL_CAMERA = "60457274"
SUBJECTS_WITH_CAMERAS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")

# (x, y, z) world, z up -> (x, z, -y) model, y up: a proper rotation (docs/method.md §0).
WORLD_TO_MODEL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# Camera (x right, y down, z forward) -> lift frame (x right, y up, z to the viewer).
CAMERA_TO_LIFT = np.diag([1.0, -1.0, -1.0])

_DEFAULT_PATH = pathlib.Path(__file__).resolve().parents[3] / "third_party" / "h36m" / "cameras.json"


class Camera(NamedTuple):
  """One calibrated Human3.6M camera.

  Attributes:
    camera_id: e.g. "54138969".
    rotation: (3, 3) world-to-camera rotation R (x_cam = R (x_world - centre)).
    centre: (3,) camera centre in the world frame, mm.
    focal_length: (2,) fx, fy in pixels.
    principal_point: (2,) cx, cy in pixels.
    radial: (3,) k1, k2, k3.
    tangential: (2,) p1, p2.
    image_size: (2,) width, height in pixels.
  """

  camera_id: str
  rotation: np.ndarray
  centre: np.ndarray
  focal_length: np.ndarray
  principal_point: np.ndarray
  radial: np.ndarray
  tangential: np.ndarray
  image_size: np.ndarray


def quaternion_to_matrix(q) -> np.ndarray:
  """Rotation matrix of a unit quaternion.

  Args:
    q: (..., 4) quaternion (w, x, y, z); normalised here.

  Returns:
    (..., 3, 3) rotation matrix R with R v = q v q*.
  """
  q = np.asarray(q, np.float64)
  q = q / np.linalg.norm(q, axis=-1, keepdims=True)
  w, x, y, z = np.moveaxis(q, -1, 0)
  return np.stack([
      np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
      np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
      np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
  ], -2)


@functools.lru_cache(maxsize=4)
def _read(path: str) -> dict:
  p = pathlib.Path(path)
  if not p.is_file():
    raise FileNotFoundError(f"Human3.6M camera file not found: {p}")
  with open(p) as f:
    return json.load(f)


def load_cameras(path: str | pathlib.Path | None = None) -> dict[str, dict[str, Camera]]:
  """Reads the camera parameters of every subject.

  Args:
    path: the JSON file; default `third_party/h36m/cameras.json`.

  Returns:
    {subject: {camera_id: Camera}} for S1, S5, S6, S7, S8, S9, S11.
  """
  raw = _read(str(path or _DEFAULT_PATH))
  out = {}
  for subject, per_camera in raw["extrinsics"].items():
    out[subject] = {}
    for cid in raw["camera_ids"]:
      intr, extr = raw["intrinsics"][cid], per_camera[cid]
      # The stored quaternion is the camera-to-world rotation Q; R = Qᵀ.
      rotation = quaternion_to_matrix(extr["orientation_wxyz"]).T
      out[subject][cid] = Camera(
          camera_id=cid,
          rotation=rotation,
          centre=np.asarray(extr["camera_centre_mm"], np.float64),
          focal_length=np.asarray(intr["focal_length"], np.float64),
          principal_point=np.asarray(intr["center"], np.float64),
          radial=np.asarray(intr["radial_distortion"], np.float64),
          tangential=np.asarray(intr["tangential_distortion"], np.float64),
          image_size=np.asarray(intr["image_size"], np.int64),
      )
  return out


def get_camera(subject: str, camera_id: str, path=None) -> Camera:
  """One subject's calibrated camera.

  Args:
    subject: "S1", "S5", "S6", "S7", "S8", "S9" or "S11".
    camera_id: one of `CAMERA_IDS`, e.g. "54138969".
    path: the camera JSON file; default `third_party/h36m/cameras.json`.

  Returns:
    The `Camera` (rotation (3, 3), centre (3,) world mm, intrinsics in pixels).

  Raises:
    ValueError: naming the known subjects or cameras when either is unknown.
  """
  cams = load_cameras(path)
  if subject not in cams:
    raise ValueError(f"no cameras for subject {subject!r}; known: {sorted(cams)}")
  if camera_id not in cams[subject]:
    raise ValueError(f"unknown camera {camera_id!r}; known: {list(cams[subject])}")
  return cams[subject][camera_id]


def _check_points(points, what: str) -> np.ndarray:
  points = np.asarray(points, np.float64)
  if points.ndim < 1 or points.shape[-1] != 3:
    raise ValueError(f"{what}: expected points (..., 3), got {points.shape}")
  return points


def world_to_camera(points, camera: Camera) -> np.ndarray:
  """Moves world points into the camera frame.

  Args:
    points: (..., 3) world coordinates, mm (z up).
    camera: the camera.

  Returns:
    (..., 3) camera coordinates, mm (x right, y down, z forward).
  """
  points = _check_points(points, "world_to_camera")
  return (points - camera.centre) @ camera.rotation.T


def camera_to_world(points, camera: Camera) -> np.ndarray:
  """Inverse of `world_to_camera`: (..., 3) camera mm -> (..., 3) world mm."""
  points = _check_points(points, "camera_to_world")
  return points @ camera.rotation + camera.centre


def project(points_camera, camera: Camera, *, distortion: bool = True) -> np.ndarray:
  """Projects camera-frame points to pixels with `lift3d.camera.pinhole`.

  Args:
    points_camera: (..., 3) camera coordinates, mm, z > 0 in front.
    camera: the camera.
    distortion: apply the lens distortion (True, as the dataset's 2D ground
      truth does; `lift3d.camera.distort` is the dataset's own model) or use
      the plain pinhole model.

  Returns:
    (..., 2) pixels, x right, y down.
  """
  points = camera_to_lift(_check_points(points_camera, "project"))
  lens = dict(radial=camera.radial, tangential=camera.tangential) if distortion else {}
  return camera_lib.pinhole(points, camera.focal_length, camera.principal_point, **lens)


def project_world(points_world, camera: Camera, *, distortion: bool = True) -> np.ndarray:
  """Projects world points to pixels: `project(world_to_camera(points_world, camera))`.

  Args:
    points_world: (..., 3) world coordinates, mm (z up), in front of the camera.
    camera: the camera.
    distortion: apply the lens distortion (True, as the dataset's 2D ground
      truth does) or use the plain pinhole model.

  Returns:
    (..., 2) float64 pixels, x right, y down.
  """
  return project(world_to_camera(points_world, camera), camera, distortion=distortion)


def camera_to_lift(points) -> np.ndarray:
  """Camera frame (x right, y down, z forward) -> lift frame (x right, y up, z to the viewer).

  The lift frame is the frame of `lift3d.lift`'s output: y up, right-handed,
  z pointing from the scene towards the camera. It is the camera frame turned
  by 180° about x (a rotation, so left and right are kept).

  Args:
    points: (..., 3) camera coordinates.

  Returns:
    (..., 3) the same points in the lift frame, same units.
  """
  return _check_points(points, "camera_to_lift") @ CAMERA_TO_LIFT.T


def world_to_model(points) -> np.ndarray:
  """World frame (z up) -> y-up model frame: (x, y, z) -> (x, z, -y), a rotation.

  The same map as `lift3d.data.mocap.Z_UP_TO_Y_UP`, so Human3.6M training poses
  match the embedded mocap corpus.

  Args:
    points: (..., 3) world coordinates.

  Returns:
    (..., 3) y-up coordinates, same units.
  """
  return _check_points(points, "world_to_model") @ WORLD_TO_MODEL.T


def lift_rotation(camera: Camera) -> np.ndarray:
  """Rotation E from the y-up model frame into the camera's lift frame (docs/method.md §4).

  E = F R Pᵀ with P = `WORLD_TO_MODEL`, R the camera's rotation and
  F = `CAMERA_TO_LIFT`: a level camera gives the identity (up to a yaw, which
  the lifting searches over anyway); Human3.6M's cameras look down a little,
  and E carries that pitch and roll.

  Returns:
    (3, 3) rotation, det +1.
  """
  return CAMERA_TO_LIFT @ camera.rotation @ WORLD_TO_MODEL.T
