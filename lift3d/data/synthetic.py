"""Synthetic images of people, for training the CPM without a download (issue 7).

A person is a set of shaded capsules along the limbs of a 3D pose (a torso,
limbs, a head with a small "nose" that shows which way it faces), seen by a
pinhole (or weak-perspective) camera at a random yaw, elevation, distance and
image position, over a random background texture with clutter, and partly
hidden by random occluders. Each example carries its 2D labels, visibility and
3D truth, and is a pure function of (seed, index): example `i` of seed `s` is
the same whatever the order of access, so the source shards and shuffles
freely under grain.

Conventions (METHOD §0):
- 3D: metres, x right, y up. The camera frame is right-handed with the camera
  at the origin looking along -z, so z points towards the viewer (a proper
  rotation of the y-up mocap frame: the frame `lift3d.lift` reports poses in
  when its camera rotation is `camera_rotation` below).
- 2D: pixels, x right, y down; pixel centres sit at integer coordinates, so
  pixel (row i, column j) covers [j - 0.5, j + 0.5] x [i - 0.5, i + 0.5] and a
  keypoint is in the frame when -0.5 <= x <= W - 0.5 and -0.5 <= y <= H - 0.5.
- Rotations: yaw θ about y is `R_θ` of METHOD §0; the camera pitch φ (positive
  when the camera looks down on the person) is a rotation about x, so that
  pose_camera = R_x(φ) R_θ (pose - hip) + translation.

Belief-map targets are not made here (see `lift3d.models`).

Shape letters: L joints (17, H36M17), C capsules, H, W image height, width.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from lift3d.skeleton import H36M17

_NUM_JOINTS = H36M17.num_joints
_J = {name: i for i, name in enumerate(H36M17.names)}

# Stream names of the per-example random generators (one SeedSequence child
# each, so that e.g. the background does not change when the person does).
_STREAMS = ("flag", "pose", "camera", "body", "background", "occluders", "noise")

# Body parts: (joint a, joint b, radius at a, radius at b in metres, clothing
# part). Radii are for an average adult; `thickness` scales them.
_SKIN, _SHIRT, _TROUSERS, _SLEEVE = 0, 1, 2, 3
_PARTS = (
    # Torso: a thick spine and two flanks fill the trunk.
    ("Hip", "Spine", 0.12, 0.12, _SHIRT),
    ("Spine", "Thorax", 0.12, 0.11, _SHIRT),
    ("LHip", "LShoulder", 0.07, 0.065, _SHIRT),
    ("RHip", "RShoulder", 0.07, 0.065, _SHIRT),
    ("Hip", "LHip", 0.09, 0.085, _TROUSERS),
    ("Hip", "RHip", 0.09, 0.085, _TROUSERS),
    ("Thorax", "LShoulder", 0.06, 0.055, _SHIRT),
    ("Thorax", "RShoulder", 0.06, 0.055, _SHIRT),
    # Legs.
    ("LHip", "LKnee", 0.075, 0.055, _TROUSERS),
    ("LKnee", "LFoot", 0.055, 0.045, _TROUSERS),
    ("RHip", "RKnee", 0.075, 0.055, _TROUSERS),
    ("RKnee", "RFoot", 0.055, 0.045, _TROUSERS),
    # Arms.
    ("LShoulder", "LElbow", 0.05, 0.042, _SHIRT),
    ("LElbow", "LWrist", 0.04, 0.032, _SLEEVE),
    ("RShoulder", "RElbow", 0.05, 0.042, _SHIRT),
    ("RElbow", "RWrist", 0.04, 0.032, _SLEEVE),
    # Neck and head.
    ("Thorax", "Neck/Nose", 0.05, 0.05, _SKIN),
    ("Neck/Nose", "Head", 0.09, 0.09, _SKIN),
)
_PART_A = np.array([_J[a] for a, *_ in _PARTS])
_PART_B = np.array([_J[b] for _, b, *_ in _PARTS])
_PART_RADII = np.array([(ra, rb) for _, _, ra, rb, _ in _PARTS], np.float64)
_PART_CLOTHING = np.array([c for *_, c in _PARTS])
_NOSE_OFFSET, _NOSE_RADIUS = 0.08, 0.025  # metres, from the head's centre.

_BACKGROUND_KINDS = ("flat", "gradient", "stripes", "noise", "checker")


@dataclasses.dataclass(frozen=True)
class RenderOptions:
  """Ranges of the random scene parameters; a (lo, hi) pair is drawn uniformly.

  Attributes:
    image_size: (H, W) pixels.
    camera: "perspective" (pinhole) or "weak" (weak perspective at the hip's
      depth).
    fov_deg: horizontal field of view, degrees; sets the focal length (and
      so the distance and the strength of the perspective). The default is
      that of a crop around a person a few metres away.
    yaw: person yaw θ about the vertical, radians.
    elevation_deg: camera pitch φ, degrees, positive looking down.
    person_size: the larger side of the pose's 3D bounding box (in the camera
      orientation), as a fraction of min(H, W) at the hip's depth.
    centre_jitter: the box centre lands within ±jitter·(W, H) of the image
      centre.
    body_scale: multiplies the 3D pose (people of other heights); the returned
      pose3d includes it.
    thickness: multiplies every limb radius.
    min_radius_px: no limb is drawn thinner than this radius, pixels.
    occluder_prob: probability of each of `max_occluders` occluders.
    max_occluders: most occluders (rectangles/ellipses) in front of the person.
    occluder_size: occluder half-size as a fraction of min(H, W).
    max_clutter: most person-like capsules drawn behind the person.
    noise_std: per-pixel Gaussian noise, grey levels.
    no_person_prob: probability of an image without a person (keypoints NaN,
      visibility 0).
  """

  image_size: tuple[int, int] = (368, 368)
  camera: str = "perspective"
  fov_deg: tuple[float, float] = (20.0, 50.0)
  yaw: tuple[float, float] = (-math.pi, math.pi)
  elevation_deg: tuple[float, float] = (-10.0, 30.0)
  person_size: tuple[float, float] = (0.5, 0.9)
  centre_jitter: float = 0.1
  body_scale: tuple[float, float] = (1.0, 1.0)
  thickness: tuple[float, float] = (0.75, 1.3)
  min_radius_px: float = 0.8
  occluder_prob: float = 0.3
  max_occluders: int = 2
  occluder_size: tuple[float, float] = (0.05, 0.2)
  max_clutter: int = 3
  noise_std: tuple[float, float] = (0.0, 6.0)
  no_person_prob: float = 0.0

  def __post_init__(self):
    size = tuple(int(s) for s in self.image_size)
    if len(size) != 2 or min(size) < 8:
      raise ValueError(f"image_size must be (H, W) with both >= 8, got {self.image_size}")
    object.__setattr__(self, "image_size", size)
    if self.camera not in ("perspective", "weak"):
      raise ValueError(f"camera must be 'perspective' or 'weak', got {self.camera!r}")
    for name in ("fov_deg", "yaw", "elevation_deg", "person_size", "body_scale", "thickness",
                 "occluder_size", "noise_std"):
      lo, hi = getattr(self, name)
      if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name} must be a finite (lo, hi) with lo <= hi, got {(lo, hi)}")
    if not (0 < self.fov_deg[0] and self.fov_deg[1] < 170):
      raise ValueError(f"fov_deg must lie in (0, 170), got {self.fov_deg}")
    if not 0 < self.person_size[0]:
      raise ValueError(f"person_size must be positive, got {self.person_size}")
    if not 0 < self.body_scale[0] or not 0 < self.thickness[0]:
      raise ValueError("body_scale and thickness must be positive")
    for name in ("occluder_prob", "no_person_prob"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
    if self.max_occluders < 0 or self.max_clutter < 0:
      raise ValueError("max_occluders and max_clutter must be >= 0")


@dataclasses.dataclass(frozen=True)
class Scene:
  """Everything needed to draw one example (see `sample_scene`).

  Attributes:
    image_size: (H, W) pixels.
    has_person: whether the person is drawn and labelled.
    pose_index: which pose of the corpus was used.
    pose3d: (L, 3) metres, camera orientation, root (hip) at the origin.
    translation: (3,) metres, the hip in the camera frame.
    camera_rotation: (3, 3) R_x(φ), world (y up) to camera orientation.
    yaw: radians, the yaw θ applied to the pose.
    focal: focal length, pixels.
    keypoints2d: (L, 2) pixels, x right, y down.
    capsules: (C, 2, 2) pixel end points of the person's capsules.
    capsule_radii: (C, 2) pixels.
    capsule_depth: (C,) metres from the camera, for painter's order.
    capsule_colours: (C, 3) RGB in [0, 255].
    clutter: (M, 2, 2), (M, 2), (M, 3) capsules drawn behind the person.
    background: kind name and its parameters.
    occluders: tuple of dicts (kind, centre, half sizes, angle, colour).
    noise_std: grey levels.
    noise_seed: SeedSequence of the pixel noise.
  """

  image_size: tuple[int, int]
  has_person: bool
  pose_index: int
  pose3d: np.ndarray
  translation: np.ndarray
  camera_rotation: np.ndarray
  yaw: float
  focal: float
  keypoints2d: np.ndarray
  capsules: np.ndarray
  capsule_radii: np.ndarray
  capsule_depth: np.ndarray
  capsule_colours: np.ndarray
  clutter: tuple[np.ndarray, np.ndarray, np.ndarray]
  background: tuple[str, dict[str, Any]]
  occluders: tuple[dict[str, Any], ...]
  noise_std: float
  noise_seed: np.random.SeedSequence


def yaw_rotation(theta: float) -> np.ndarray:
  """R_θ of METHOD §0: rotation by `theta` radians about the y (up) axis, (3, 3)."""
  c, s = math.cos(theta), math.sin(theta)
  return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def pitch_rotation(phi: float) -> np.ndarray:
  """R_x(φ), (3, 3): the camera rotation of a camera pitched down by `phi` radians.

  In the camera frame the world's up axis becomes (0, cos φ, sin φ): tilted
  towards a camera that looks down on the scene.
  """
  c, s = math.cos(phi), math.sin(phi)
  return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def project(points: np.ndarray, focal: float, image_size: tuple[int, int], *,
            camera: str = "perspective", reference_depth: float | None = None) -> np.ndarray:
  """Projects camera-frame points to pixels.

  Args:
    points: (..., 3) metres, camera frame (x right, y up, camera looking
      along -z), all with z < 0 for "perspective".
    focal: focal length, pixels.
    image_size: (H, W); the principal point is the image centre
      ((W - 1) / 2, (H - 1) / 2).
    camera: "perspective" (divide by each point's depth -z) or "weak" (divide
      by `reference_depth` for all points).
    reference_depth: metres, required for "weak".

  Returns:
    (..., 2) pixels, x right, y down.
  """
  points = np.asarray(points, np.float64)
  height, width = image_size
  if camera == "perspective":
    depth = -points[..., 2]
  elif camera == "weak":
    if reference_depth is None:
      raise ValueError("camera='weak' needs reference_depth")
    depth = np.full(points.shape[:-1], float(reference_depth))
  else:
    raise ValueError(f"camera must be 'perspective' or 'weak', got {camera!r}")
  u = (width - 1) / 2 + focal * points[..., 0] / depth
  v = (height - 1) / 2 - focal * points[..., 1] / depth
  return np.stack([u, v], axis=-1)


def _streams(seed: int, index: int) -> dict[str, np.random.SeedSequence]:
  """Independent per-example seed sequences keyed by (seed, index)."""
  root = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),))
  return dict(zip(_STREAMS, root.spawn(len(_STREAMS)), strict=True))


def _generator(seq: np.random.SeedSequence) -> np.random.Generator:
  return np.random.Generator(np.random.PCG64(seq))


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
  lo, hi = bounds
  return float(lo + (hi - lo) * rng.random())


def _palette(rng: np.random.Generator) -> np.ndarray:
  """(4, 3) RGB colours for skin, shirt, trousers and forearms."""
  tone = rng.random()
  skin = (1 - tone) * np.array([235.0, 200.0, 170.0]) + tone * np.array([80.0, 50.0, 35.0])
  skin = np.clip(skin + rng.normal(0.0, 12.0, 3), 0, 255)
  shirt = rng.uniform(0, 255, 3)
  trousers = rng.uniform(0, 255, 3)
  sleeve = shirt if rng.random() < 0.5 else skin
  return np.stack([skin, shirt, trousers, sleeve])


def _person_capsules(pose_cam: np.ndarray, rng: np.random.Generator, thickness: float):
  """3D capsules of a camera-frame pose: ends (C, 2, 3), radii (C, 2) m, colours (C, 3)."""
  ends = np.stack([pose_cam[_PART_A], pose_cam[_PART_B]], axis=1)
  radii = _PART_RADII * thickness
  palette = _palette(rng)
  # Per-person clothing, per-limb small lightness changes; one limb in ten in
  # an arbitrary colour so that the network does not rely on clothing.
  colours = palette[_PART_CLOTHING] * rng.uniform(0.85, 1.15, (len(_PARTS), 1))
  odd = rng.random(len(_PARTS)) < 0.1
  colours = np.where(odd[:, None], rng.uniform(0, 255, (len(_PARTS), 3)), colours)
  # A nose in front of the head shows which way the person faces: forward is
  # up x right (y up, right-handed), right = from left to right hip/shoulder.
  up = pose_cam[_J["Thorax"]] - pose_cam[_J["Hip"]]
  right = (pose_cam[_J["RHip"]] - pose_cam[_J["LHip"]]
           + pose_cam[_J["RShoulder"]] - pose_cam[_J["LShoulder"]])
  forward = np.cross(up, right)
  forward /= max(np.linalg.norm(forward), 1e-9)
  head = 0.5 * (pose_cam[_J["Neck/Nose"]] + pose_cam[_J["Head"]])
  nose = head + _NOSE_OFFSET * thickness * forward
  ends = np.concatenate([ends, np.stack([nose, nose])[None]], axis=0)
  radii = np.concatenate([radii, np.full((1, 2), _NOSE_RADIUS * thickness)], axis=0)
  colours = np.concatenate([colours, (palette[_SKIN] * 0.6)[None]], axis=0)
  return ends, radii, np.clip(colours, 0, 255)


def sample_scene(poses: np.ndarray, seed: int, index: int,
                 options: RenderOptions = RenderOptions()) -> Scene:
  """Draws the random parameters of example `index` of `seed`.

  Args:
    poses: (N, L, 3) metres, y up (any horizontal position and heading).
    seed: the data set's seed.
    index: the example's index; (seed, index) fixes the scene.
    options: ranges of the random parameters.

  Returns:
    A `Scene`; `render` draws it.
  """
  streams = _streams(seed, index)
  height, width = options.image_size
  short = min(height, width)

  flag_rng = _generator(streams["flag"])
  has_person = bool(flag_rng.random() >= options.no_person_prob)

  pose_rng = _generator(streams["pose"])
  pose_index = int(pose_rng.integers(len(poses)))
  body_scale = _uniform(pose_rng, options.body_scale)
  pose = np.asarray(poses[pose_index], np.float64)
  pose = body_scale * (pose - pose[_J["Hip"]])

  cam_rng = _generator(streams["camera"])
  yaw = _uniform(cam_rng, options.yaw)
  phi = math.radians(_uniform(cam_rng, options.elevation_deg))
  fov = math.radians(_uniform(cam_rng, options.fov_deg))
  size_frac = _uniform(cam_rng, options.person_size)
  jitter = cam_rng.uniform(-options.centre_jitter, options.centre_jitter, 2)
  focal = (width / 2) / math.tan(fov / 2)
  camera_rotation = pitch_rotation(phi)
  pose3d = pose @ (camera_rotation @ yaw_rotation(yaw)).T
  # Distance and position: the 2D box of the projected joints spans size_frac
  # of the short image side and is centred on the jittered image centre. Start
  # from the weak-perspective solution at the hip's depth and correct for
  # perspective by a few fixed-point steps (the box scales as 1 / depth).
  target_size = size_frac * short
  target_centre = np.array([(width - 1) / 2 + jitter[0] * width,
                            (height - 1) / 2 + jitter[1] * height])
  lo, hi = pose3d.min(axis=0), pose3d.max(axis=0)
  extent = max(hi[0] - lo[0], hi[1] - lo[1], 1e-3)
  # Keep the nearest joint a body size (and 1 m) from the camera, so that no
  # limb reaching towards it is blown up by the perspective.
  min_depth = hi[2] + max(1.0, float(np.max(hi - lo)))
  depth = max(focal * extent / target_size, min_depth)
  shift = -0.5 * (lo[:2] + hi[:2]) + (target_centre - ((width - 1) / 2, (height - 1) / 2)) * (
      1.0, -1.0) * depth / focal
  def box(shift, depth):
    points = project(pose3d + np.array([shift[0], shift[1], -depth]), focal, (height, width),
                     camera=options.camera, reference_depth=depth)
    box_lo, box_hi = points.min(axis=0), points.max(axis=0)
    return max(box_hi[0] - box_lo[0], box_hi[1] - box_lo[1], 1e-3), 0.5 * (box_lo + box_hi)

  for _ in range(4):
    size, _ = box(shift, depth)
    new_depth = max(depth * size / target_size, min_depth)
    shift = shift * new_depth / depth  # keeps the hip's image position.
    depth = new_depth
    for _ in range(2):
      _, box_centre = box(shift, depth)
      shift = shift + (target_centre - box_centre) * (1.0, -1.0) * depth / focal
  translation = np.array([shift[0], shift[1], -depth])
  pose_cam = pose3d + translation

  def to_pixels(points):
    return project(points, focal, (height, width), camera=options.camera, reference_depth=depth)

  body_rng = _generator(streams["body"])
  thickness = _uniform(body_rng, options.thickness)
  ends, radii, colours = _person_capsules(pose_cam, body_rng, thickness)
  ends_px = to_pixels(ends)
  # Painter's order always uses the true depths; the weak camera only changes
  # the projection (every point at the hip's depth).
  point_depth = -ends[..., 2]
  scale_depth = point_depth if options.camera == "perspective" else depth
  radii_px = np.maximum(focal * radii / scale_depth, options.min_radius_px)
  keypoints = to_pixels(pose_cam)

  # Clutter: person-coloured capsules anywhere, behind the person.
  num_clutter = int(body_rng.integers(options.max_clutter + 1))
  c_start = body_rng.uniform(0, 1, (num_clutter, 2)) * (width, height)
  c_dir = body_rng.normal(size=(num_clutter, 2))
  c_len = body_rng.uniform(0.05, 0.4, (num_clutter, 1)) * short
  c_dir = c_dir / np.maximum(np.linalg.norm(c_dir, axis=-1, keepdims=True), 1e-9)
  clutter_ends = np.stack([c_start, c_start + c_len * c_dir], axis=1)
  clutter_radii = np.repeat(body_rng.uniform(0.01, 0.06, (num_clutter, 1)) * short, 2, axis=1)
  clutter_colours = body_rng.uniform(0, 255, (num_clutter, 3))

  background = _sample_background(_generator(streams["background"]))

  occ_rng = _generator(streams["occluders"])
  occluders = []
  for _ in range(options.max_occluders):
    present = occ_rng.random() < options.occluder_prob
    kind = "rectangle" if occ_rng.random() < 0.5 else "ellipse"
    near_joint = occ_rng.random() < 0.7
    joint = int(occ_rng.integers(_NUM_JOINTS))
    offset = occ_rng.normal(0.0, 0.05 * short, 2)
    anywhere = occ_rng.uniform(0, 1, 2) * (width, height)
    half = occ_rng.uniform(*options.occluder_size, 2) * short
    angle = occ_rng.uniform(0, math.pi)
    colour = occ_rng.uniform(0, 255, 3)
    if not present:
      continue
    centre_px = keypoints[joint] + offset if (near_joint and has_person) else anywhere
    occluders.append(dict(kind=kind, centre=centre_px, half=half, angle=angle, colour=colour))

  noise_rng = _generator(streams["noise"])
  noise_std = _uniform(noise_rng, options.noise_std)

  return Scene(
      image_size=(height, width), has_person=has_person, pose_index=pose_index,
      pose3d=pose3d, translation=translation, camera_rotation=camera_rotation, yaw=yaw,
      focal=focal, keypoints2d=keypoints, capsules=ends_px, capsule_radii=radii_px,
      capsule_depth=point_depth.mean(axis=1), capsule_colours=colours,
      clutter=(clutter_ends, clutter_radii, clutter_colours), background=background,
      occluders=tuple(occluders), noise_std=noise_std, noise_seed=streams["noise"])


def _sample_background(rng: np.random.Generator) -> tuple[str, dict[str, Any]]:
  kind = _BACKGROUND_KINDS[int(rng.integers(len(_BACKGROUND_KINDS)))]
  params = dict(
      colour_a=rng.uniform(0, 255, 3), colour_b=rng.uniform(0, 255, 3),
      angle=rng.uniform(0, 2 * math.pi), period=rng.uniform(4.0, 40.0),
      grid=rng.uniform(0, 1, (1, 6, 6)), grid_colour=rng.uniform(0, 1, (3, 6, 6)),
      noise_cells=int(rng.integers(2, 6)), texture_gain=rng.uniform(0.0, 40.0),
  )
  return kind, params


def _interpolation_weights(n: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
  """Linear interpolation from cells+1 knots to n samples: (n,) lower knots, (n,) fractions."""
  pos = np.linspace(0, cells, n, dtype=np.float32)
  lo = np.minimum(pos.astype(int), cells - 1)
  return lo, pos - lo


def _bilinear(grid: np.ndarray, cells: int, height: int, width: int) -> np.ndarray:
  """Upsamples the first (cells+1)^2 knots of `grid` (D, G, G) to (D, H, W) float32."""
  # Rows by a tiny product, then columns by a gather: small-K matrix products
  # of full images are slow in NumPy.
  lo, frac = _interpolation_weights(height, cells)
  sub = grid[:, : cells + 1, : cells + 1].astype(np.float32)
  rows = sub[:, lo] * (1 - frac)[:, None] + sub[:, lo + 1] * frac[:, None]  # (D, H, G)
  lo, frac = _interpolation_weights(width, cells)
  out = rows[:, :, lo]
  upper = rows[:, :, lo + 1]
  upper -= out
  upper *= frac
  out += upper
  return out


def _draw_background(kind: str, p: dict[str, Any], height: int, width: int) -> np.ndarray:
  """(3, H, W) float32 background; planar so that per-pixel ops run on contiguous rows."""
  ys = np.arange(height, dtype=np.float32)[:, None]
  xs = np.arange(width, dtype=np.float32)[None, :]
  along = math.cos(p["angle"]) * xs + math.sin(p["angle"]) * ys
  a = p["colour_a"].astype(np.float32)[:, None, None]
  b = p["colour_b"].astype(np.float32)[:, None, None]
  if kind == "flat":
    mix = None
  elif kind == "gradient":
    mix = (along - along.min()) / max(float(along.max() - along.min()), 1.0)
  elif kind == "stripes":
    mix = 0.5 + 0.5 * np.sin(along * np.float32(2 * math.pi / p["period"]))
  elif kind == "noise":
    mix = _bilinear(p["grid"], p["noise_cells"], height, width)[0]
  else:  # checker
    across = -math.sin(p["angle"]) * xs + math.cos(p["angle"]) * ys
    period = np.float32(p["period"])
    mix = ((np.floor(along / period) + np.floor(across / period)) % 2).astype(np.float32)
  # A smooth colour texture on top of every kind.
  image = _bilinear(p["grid_colour"] - 0.5, p["noise_cells"], height, width)
  image *= np.float32(p["texture_gain"])
  image += a
  if mix is not None:
    image += mix * (b - a)
  return image


# Pixel-centre coordinates, sliced for each patch (saves an arange per capsule).
_COORDS = np.arange(4096, dtype=np.float32)


def _patch_box(lo_x, hi_x, lo_y, hi_y, height, width):
  x0 = max(math.floor(lo_x), 0)
  x1 = min(math.ceil(hi_x) + 1, width)
  y0 = max(math.floor(lo_y), 0)
  y1 = min(math.ceil(hi_y) + 1, height)
  return x0, x1, y0, y1


def _draw_capsule(image: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float,
                  colour: np.ndarray, shaded: bool = True) -> None:
  """Composites one antialiased capsule (tapering from ra to rb pixels) in place.

  Args:
    image: (3, H, W) float32, modified in place.
    a, b: (2,) end points, pixels (x, y).
    ra, rb: radii at the ends, pixels.
    colour: (3,) RGB.
    shaded: darken towards the silhouette like a lit cylinder.
  """
  height, width = image.shape[1:]
  ax, ay, bx, by = float(a[0]), float(a[1]), float(b[0]), float(b[1])
  reach = max(ra, rb) + 1.0
  x0, x1, y0, y1 = _patch_box(min(ax, bx) - reach, max(ax, bx) + reach,
                              min(ay, by) - reach, max(ay, by) + reach, height, width)
  if x0 >= x1 or y0 >= y1:
    return
  # The distance to the segment a-b, with the radius interpolated along it;
  # few, in-place NumPy calls, since most patches are small.
  xs = _COORDS[x0:x1] - np.float32(ax)
  ys = (_COORDS[y0:y1] - np.float32(ay))[:, None]
  abx, aby = bx - ax, by - ay
  length2 = abx * abx + aby * aby
  if length2 > 1e-9:
    t = xs * np.float32(abx / length2) + ys * np.float32(aby / length2)
    np.clip(t, 0.0, 1.0, out=t)
    dx = xs - t * np.float32(abx)
    dy = ys - t * np.float32(aby)
    radius = t * np.float32(rb - ra)
    radius += np.float32(ra)
  else:
    dx = np.broadcast_to(xs, (y1 - y0, x1 - x0))
    dy = ys
    radius = np.float32(ra)
  dist = dx * dx
  dist += dy * dy
  np.sqrt(dist, out=dist)
  cover = radius - dist
  cover += 0.5
  np.clip(cover, 0.0, 1.0, out=cover)
  if shaded:
    # Cylinder-like shading: the cosine of the surface normal to the viewer.
    dist /= radius
    np.square(dist, out=dist)
    np.subtract(1.0, dist, out=dist)
    np.maximum(dist, 0.0, out=dist)
    np.sqrt(dist, out=dist)
    level = dist
    level *= np.float32(0.45)
    level += np.float32(0.55)
    level *= cover
  else:
    level = cover
  patch = image[:, y0:y1, x0:x1]
  patch *= 1.0 - cover
  patch += colour.astype(np.float32)[:, None, None] * level


def _occluder_sdf(occluder: dict[str, Any], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
  """Signed distance in pixels (negative inside) of an occluder at points (xs, ys)."""
  c, s = math.cos(occluder["angle"]), math.sin(occluder["angle"])
  dx = xs - occluder["centre"][0]
  dy = ys - occluder["centre"][1]
  p, q = c * dx + s * dy, -s * dx + c * dy
  a, b = occluder["half"]
  if occluder["kind"] == "rectangle":
    return np.maximum(np.abs(p) - a, np.abs(q) - b)
  return (np.sqrt((p / a) ** 2 + (q / b) ** 2) - 1.0) * min(a, b)


def _draw_occluder(image: np.ndarray, occluder: dict[str, Any]) -> None:
  """Composites an occluder into the (3, H, W) float32 `image` in place."""
  height, width = image.shape[1:]
  reach = float(np.hypot(*occluder["half"])) + 1.0
  cx, cy = occluder["centre"]
  x0, x1, y0, y1 = _patch_box(cx - reach, cx + reach, cy - reach, cy + reach, height, width)
  if x0 >= x1 or y0 >= y1:
    return
  xs = _COORDS[x0:x1][None, :]
  ys = _COORDS[y0:y1][:, None]
  cover = np.clip(0.5 - _occluder_sdf(occluder, xs, ys), 0.0, 1.0).astype(np.float32)
  patch = image[:, y0:y1, x0:x1]
  patch *= 1.0 - cover
  patch += occluder["colour"].astype(np.float32)[:, None, None] * cover


def occluded_joints(scene: Scene) -> np.ndarray:
  """(L,) bool: joints whose point lies inside an occluder (its coverage >= 1/2)."""
  occluded = np.zeros(_NUM_JOINTS, bool)
  for occluder in scene.occluders:
    occluded |= _occluder_sdf(occluder, scene.keypoints2d[:, 0], scene.keypoints2d[:, 1]) <= 0
  return occluded


def render(scene: Scene, *, draw_person: bool | None = None) -> np.ndarray:
  """Draws a scene: background, clutter, the person back to front, occluders, noise.

  Args:
    scene: from `sample_scene`.
    draw_person: overrides `scene.has_person` (e.g. False renders the same
      image without the person).

  Returns:
    (H, W, 3) uint8 RGB image.
  """
  height, width = scene.image_size
  if max(height, width) > len(_COORDS):
    raise ValueError(f"image_size {scene.image_size} exceeds {len(_COORDS)} pixels")
  draw_person = scene.has_person if draw_person is None else draw_person
  image = _draw_background(*scene.background, height, width)
  for ends, radii, colour in zip(*scene.clutter, strict=True):
    _draw_capsule(image, ends[0], ends[1], radii[0], radii[1], colour, shaded=False)
  if draw_person:
    # Painter's algorithm: the farthest capsule first, so nearer limbs cover it.
    for c in np.argsort(-scene.capsule_depth, kind="stable"):
      ends, radii = scene.capsules[c], scene.capsule_radii[c]
      _draw_capsule(image, ends[0], ends[1], radii[0], radii[1], scene.capsule_colours[c])
  for occluder in scene.occluders:
    _draw_occluder(image, occluder)
  if scene.noise_std > 0:
    # Grey (luminance) sensor noise: one draw per pixel, shared by the channels.
    rng = _generator(scene.noise_seed)
    image += np.float32(scene.noise_std) * rng.standard_normal((height, width), dtype=np.float32)
  np.rint(image, out=image)
  np.clip(image, 0, 255, out=image)
  return np.ascontiguousarray(image.astype(np.uint8).transpose(1, 2, 0))


def example_from_scene(scene: Scene, image: np.ndarray) -> dict[str, np.ndarray]:
  """The labelled example of a rendered scene (see `SyntheticPoseSource`)."""
  height, width = scene.image_size
  kp = scene.keypoints2d
  in_frame = ((kp[:, 0] >= -0.5) & (kp[:, 0] <= width - 0.5)
              & (kp[:, 1] >= -0.5) & (kp[:, 1] <= height - 0.5))
  occluded = occluded_joints(scene)
  if not scene.has_person:
    nan = np.float32(np.nan)
    return dict(
        image=image,
        keypoints2d=np.full((_NUM_JOINTS, 2), nan, np.float32),
        visibility=np.zeros(_NUM_JOINTS, np.float32),
        in_frame=np.zeros(_NUM_JOINTS, bool),
        occluded=np.zeros(_NUM_JOINTS, bool),
        pose3d=np.full((_NUM_JOINTS, 3), nan, np.float32),
        translation=np.full(3, nan, np.float32),
        camera_rotation=scene.camera_rotation.astype(np.float32),
        yaw=nan,
        focal=np.float32(scene.focal),
        has_person=np.bool_(False),
        pose_index=np.int32(-1),
    )
  return dict(
      image=image,
      keypoints2d=kp.astype(np.float32),
      visibility=(in_frame & ~occluded).astype(np.float32),
      in_frame=in_frame,
      occluded=occluded,
      pose3d=scene.pose3d.astype(np.float32),
      translation=scene.translation.astype(np.float32),
      camera_rotation=scene.camera_rotation.astype(np.float32),
      yaw=np.float32(scene.yaw),
      focal=np.float32(scene.focal),
      has_person=np.bool_(True),
      pose_index=np.int32(scene.pose_index),
  )


def check_poses(poses: np.ndarray) -> np.ndarray:
  """Validates a pose corpus: (N, 17, 3) finite metres; returns it as float32."""
  poses = np.asarray(poses)
  if poses.ndim != 3 or poses.shape[1:] != (_NUM_JOINTS, 3) or poses.shape[0] == 0:
    raise ValueError(
        f"expected poses (N, {_NUM_JOINTS}, 3) metres y up with N >= 1, got {poses.shape}; "
        "map other skeletons with lift3d.skeleton.convert first")
  if not np.all(np.isfinite(poses)):
    raise ValueError("poses contain NaN or inf values")
  return poses.astype(np.float32)


class SyntheticPoseSource:
  """A grain random-access data source of rendered people.

  Works with `grain.MapDataset.source(...)` and `grain.python.DataLoader`.
  Item `index` is a pure function of (poses, options, seed, index).

  Each item is a dict of NumPy arrays:
    image: (H, W, 3) uint8 RGB.
    keypoints2d: (17, 2) float32 pixels, x right, y down (NaN without a
      person).
    visibility: (17,) float32, 1 for joints in the frame and not behind an
      occluder, else 0 (all 0 without a person).
    in_frame, occluded: (17,) bool, the two parts of `visibility`.
    pose3d: (17, 3) float32 metres, y up, camera orientation, hip at the
      origin (add `translation` for the camera frame, camera at the origin
      looking along -z).
    translation: (3,) float32 metres, the hip in the camera frame.
    camera_rotation: (3, 3) float32, R_x(φ) (world y-up frame to camera
      orientation), i.e. `lift3d.lift(..., camera_rotation=...)`.
    yaw: () float32 radians, θ of R_θ applied to the corpus pose.
    focal: () float32 pixels (principal point at the image centre).
    has_person: () bool.
    pose_index: () int32, the corpus pose used (-1 without a person).
  """

  def __init__(self, poses: np.ndarray, *, image_size: int | tuple[int, int] = 368,
               seed: int = 0, length: int = 1_000_000,
               options: RenderOptions | None = None, **overrides):
    """Builds the source.

    Args:
      poses: (N, 17, 3) metres, y up (e.g. `lift3d.data.mocap.load_embedded()
        .poses`).
      image_size: H = W, or (H, W), pixels.
      seed: fixes every example together with its index.
      length: number of examples.
      options: scene ranges (`RenderOptions`); `image_size` and `overrides`
        (any `RenderOptions` field, e.g. no_person_prob=0.1) replace its
        fields.
    """
    self.poses = check_poses(poses)
    if isinstance(image_size, int | np.integer):
      image_size = (int(image_size), int(image_size))
    options = options or RenderOptions()
    self.options = dataclasses.replace(options, image_size=tuple(image_size), **overrides)
    if int(length) < 1:
      raise ValueError(f"length must be >= 1, got {length}")
    self.length = int(length)
    self.seed = int(seed)

  def __len__(self) -> int:
    return self.length

  def scene(self, index: int) -> Scene:
    """The `Scene` of item `index`."""
    index = int(index)
    if not 0 <= index < self.length:
      raise IndexError(f"index {index} out of range for a source of length {self.length}")
    return sample_scene(self.poses, self.seed, index, self.options)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    scene = self.scene(index)
    return example_from_scene(scene, render(scene))

  def __repr__(self) -> str:
    return (f"SyntheticPoseSource(num_poses={len(self.poses)}, length={self.length}, "
            f"seed={self.seed}, image_size={self.options.image_size})")
