"""Synthetic images of people, for training the CPM without a download (issue 7).

A person is a set of shaded capsules along the limbs of a 3D pose (a torso,
limbs, a head with a small "nose" that shows which way it faces), seen by a
pinhole (or weak-perspective) camera at a random yaw, elevation, distance and
image position, over a random background texture with clutter, and partly
hidden by random occluders. Each example carries its 2D labels, visibility and
3D truth, and is a pure function of (seed, index): example `i` of seed `s` is
the same whatever the order of access, so the source shards and shuffles
freely under grain.

Conventions (docs/method.md §0):
- 3D: metres, x right, y up. The camera frame is right-handed with the camera
  at the origin looking along -z, so z points towards the viewer: a proper
  rotation of the (right-handed, y-up) mocap frame, which is what makes the
  painter's order physically right. Weak-perspective lifting only sees x and
  y, so `lift3d.lift` reports poses in this same frame when given
  `camera_rotation` below, which is `lift3d.camera.elevation_rotation(φ)`.
- 2D: pixels, x right, y down; pixel centres sit at integer coordinates, so
  pixel (row i, column j) covers [j - 0.5, j + 0.5] x [i - 0.5, i + 0.5] and a
  keypoint is in the frame when -0.5 <= x <= W - 0.5 and -0.5 <= y <= H - 0.5.
- Rotations and projections are those of `lift3d.camera`: yaw θ about y is
  `yaw_rotation(θ)` (R_θ, docs/method.md §0); the camera pitch φ (positive
  when the camera looks down on the person) is `elevation_rotation(φ)`, so that
  pose_camera = R_x(φ) R_θ (pose - hip) + translation, with
  R_x(φ) = [[1, 0, 0], [0, cos φ, -sin φ], [0, sin φ, cos φ]].
- Visibility is 1 for a joint inside the frame and not behind an occluder;
  a joint hidden by the person's own limbs stays visible (as in Human3.6M's
  labels) unless `RenderOptions.self_occlusion` is on.

Options beyond the original capsule people (issue 17, all off by default so
that the default images are unchanged; `PRESETS["rich"]` turns them on):
body shapes (bone lengths and limb widths drawn per example), patterned
clothing, striped occluders, directional lighting with an illumination
gradient, and self-occlusion labels.

Belief-map targets are not made here (see `lift3d.models`).

Shape letters: L joints (17, H36M17), C capsules, H, W image height, width.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import types
from typing import Any

import numpy as np

from lift3d import camera
from lift3d.skeleton import H36M17, check_poses

_NUM_JOINTS = H36M17.num_joints
_J = {name: i for i, name in enumerate(H36M17.names)}

# Per-example random streams: Philox keyed by (seed, index), one counter
# block per stream, so that every example and stream is independent of the
# others and cheap to start (no hashing).
_SCENE_STREAM, _NOISE_STREAM = 0, 1
# The options added for issue 17 (body shapes, textures, lighting) draw from
# their own stream, so the scene stream, and so every image of the default
# options, is unchanged.
_STYLE_STREAM = 2

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
_NUM_CAPSULES = len(_PARTS) + 1  # the parts and the nose.

# incident[j, c]: capsule c is attached to joint j (the nose to the head's joints).
_INCIDENT = np.zeros((_NUM_JOINTS, _NUM_CAPSULES), bool)
_INCIDENT[_PART_A, np.arange(len(_PARTS))] = True
_INCIDENT[_PART_B, np.arange(len(_PARTS))] = True
_INCIDENT[[_J["Neck/Nose"], _J["Head"]], -1] = True
_INCIDENT.flags.writeable = False

# Bone kinds for `limb_length`, one per joint (its bone to its parent), the
# same on both sides; the root has none.
_BONE_KINDS = ("pelvis", "thigh", "shin", "lower spine", "upper spine", "neck", "head",
               "shoulder", "upper arm", "forearm")
_BONE_KIND_OF_JOINT = np.array([
    -1, 0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 7, 8, 9])
_PARENTS = np.array(H36M17.parents)

# Quantiles of N(0, 1) at the centres of 256 equal-probability bins.
_NORMAL_QUANTILES = np.array(
    [statistics.NormalDist().inv_cdf((k + 0.5) / 256) for k in range(256)], np.float32)
_NORMAL_QUANTILES.flags.writeable = False

_MAX_SIZE = 4096  # pixels, the longest image side.

_BACKGROUND_KINDS = ("flat", "gradient", "stripes", "noise", "checker")
_TEXTURE_KINDS = ("bands", "stripes", "checks")  # along, across the limb, both.


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
    person_size: the larger side of the 2D box around the projected joints,
      as a fraction of min(H, W) (smaller when the person would otherwise
      come closer to the camera than a body size).
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
    noise_std: standard deviation of per-pixel Gaussian grey noise (shared
      by the channels), grey levels.
    no_person_prob: probability of an image without a person (keypoints NaN,
      visibility 0).
    limb_length: each bone's length is multiplied by a factor drawn from this
      range (one factor per bone kind, the same on the left and the right:
      pelvis, thigh, shin, lower and upper spine, neck, head, shoulder, upper
      arm, forearm); the returned pose3d and labels include it.
    limb_width: each body part's radius is multiplied by a factor drawn from
      this range (on top of `thickness`).
    clothing_texture_prob: probability that a garment (shirt, trousers,
      sleeves) is patterned (bands, stripes or checks) rather than plain.
    occluder_texture_prob: probability that an occluder is striped.
    lighting: a directional light (Lambert shading of the limbs' surface
      normals, random direction and ambient level) and a smooth illumination
      gradient over the whole image, instead of the fixed cylinder shading.
    self_occlusion: a joint whose point is covered by a body part not attached
      to it (the last-drawn part covering it in the painter's order) is marked
      not visible. Off, such joints stay visible (Human3.6M's convention); the
      `self_occluded` label is returned either way.

  The defaults of the last six fields reproduce the original capsule renderer
  bit for bit; `PRESETS` names useful combinations.
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
  limb_length: tuple[float, float] = (1.0, 1.0)
  limb_width: tuple[float, float] = (1.0, 1.0)
  clothing_texture_prob: float = 0.0
  occluder_texture_prob: float = 0.0
  lighting: bool = False
  self_occlusion: bool = False

  def __post_init__(self):
    size = tuple(int(s) for s in self.image_size)
    if len(size) != 2 or min(size) < 8 or max(size) > _MAX_SIZE:
      raise ValueError(
          f"image_size must be (H, W) with both in [8, {_MAX_SIZE}], got {self.image_size}")
    object.__setattr__(self, "image_size", size)
    if self.camera not in ("perspective", "weak"):
      raise ValueError(f"camera must be 'perspective' or 'weak', got {self.camera!r}")
    for name in ("fov_deg", "yaw", "elevation_deg", "person_size", "body_scale", "thickness",
                 "occluder_size", "noise_std", "limb_length", "limb_width"):
      lo, hi = getattr(self, name)
      if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name} must be a finite (lo, hi) with lo <= hi, got {(lo, hi)}")
    if not (0 < self.fov_deg[0] and self.fov_deg[1] < 170):
      raise ValueError(f"fov_deg must lie in (0, 170), got {self.fov_deg}")
    if not 0 < self.person_size[0]:
      raise ValueError(f"person_size must be positive, got {self.person_size}")
    for name in ("body_scale", "thickness", "limb_length", "limb_width"):
      if not 0 < getattr(self, name)[0]:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
    for name in ("occluder_prob", "no_person_prob", "clothing_texture_prob",
                 "occluder_texture_prob"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
    if not 0.0 <= self.centre_jitter <= 0.5:
      raise ValueError(f"centre_jitter must lie in [0, 0.5], got {self.centre_jitter}")
    if self.min_radius_px < 0:
      raise ValueError(f"min_radius_px must be >= 0, got {self.min_radius_px}")
    if self.max_occluders < 0 or self.max_clutter < 0:
      raise ValueError("max_occluders and max_clutter must be >= 0")


_RICH = dict(limb_length=(0.85, 1.15), limb_width=(0.8, 1.25), clothing_texture_prob=0.6,
             occluder_texture_prob=0.5, lighting=True, self_occlusion=True)
PRESETS = types.MappingProxyType({
    # The original capsule renderer (the defaults).
    "capsule": types.MappingProxyType({}),
    # Body shapes, patterned clothing, lighting, self-occlusion labels; the
    # default rate of occluders.
    "rich": types.MappingProxyType(_RICH),
    # The same with two occluders in every image, mostly over joints (at
    # 128 px about 27% of the in-frame joints behind an occluder, 47% hidden
    # in all with self-occlusion).
    "rich_occluded": types.MappingProxyType(
        dict(_RICH, occluder_prob=1.0, max_occluders=2, occluder_size=(0.06, 0.16))),
    # The same without occluders (the body still hides itself).
    "rich_unoccluded": types.MappingProxyType(dict(_RICH, occluder_prob=0.0)),
})
"""Named `RenderOptions` overrides (`SyntheticPoseSource(..., preset=name)`)."""


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
    camera_height: metres, the camera's height above the pose's lowest joint.
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
    noise_key: (seed, index) of the pixel noise's random stream.
    capsule_texture: (C, 6) per capsule: amplitude, period (pixels), phase,
      and the weights of the bands / stripes / checks patterns; None: plain.
    light: (4,) unit direction towards the light (camera frame, x right, y
      up, z towards the viewer) and the ambient level; None: the fixed
      cylinder shading.
    illumination: (angle radians, gain): the image brightness varies
      linearly by ±gain/2 along that direction; None: uniform.
    self_occlusion: joints hidden by the body count as not visible.
  """

  image_size: tuple[int, int]
  has_person: bool
  pose_index: int
  pose3d: np.ndarray
  translation: np.ndarray
  camera_rotation: np.ndarray
  yaw: float
  camera_height: float
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
  noise_key: tuple[int, int]
  capsule_texture: np.ndarray | None = None
  light: np.ndarray | None = None
  illumination: tuple[float, float] | None = None
  self_occlusion: bool = False


def _project(points: np.ndarray, focal: float, principal: np.ndarray, kind: str,
             reference_depth: float) -> np.ndarray:
  """(..., 3) camera-frame metres -> (..., 2) pixels, by `lift3d.camera.pinhole` for
  "perspective" or `lift3d.camera.weak_perspective` at `reference_depth` for "weak"."""
  if kind == "perspective":
    return camera.pinhole(points, focal, principal)
  return camera.weak_perspective(points, focal / reference_depth, translation=principal)


def _generator(seed: int, index: int, stream: int) -> np.random.Generator:
  """The random stream `stream` of example `index` of `seed`."""
  key = np.array([seed, index], np.uint64)
  counter = np.array([0, 0, 0, stream], np.uint64)  # disjoint counter blocks per stream.
  return np.random.Generator(np.random.Philox(counter=counter, key=key))


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


def _person_capsules(pose_cam: np.ndarray, rng: np.random.Generator, thickness: float,
                     widths: np.ndarray | None = None):
  """3D capsules of a camera-frame pose.

  Returns ends (C, 2, 3) and radii (C, 2) metres, colours (C, 3), and whether
  the forearms wear sleeves (the shirt's colour) rather than bare skin.
  `widths` (C,) multiplies each capsule's radii (None: all 1).
  """
  ends = np.stack([pose_cam[_PART_A], pose_cam[_PART_B]], axis=1)
  radii = _PART_RADII * thickness
  if widths is not None:
    radii = radii * widths[:-1, None]
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
  nose_radius = _NOSE_RADIUS * thickness * (1.0 if widths is None else widths[-1])
  radii = np.concatenate([radii, np.full((1, 2), nose_radius)], axis=0)
  colours = np.concatenate([colours, (palette[_SKIN] * 0.6)[None]], axis=0)
  sleeves = bool(np.array_equal(palette[_SLEEVE], palette[_SHIRT]))
  return ends, radii, np.clip(colours, 0, 255), sleeves


def sample_scene(poses: np.ndarray, seed: int, index: int,
                 options: RenderOptions = RenderOptions(), *,
                 translation: np.ndarray | None = None) -> Scene:
  """Draws the random parameters of example `index` of `seed`.

  Args:
    poses: (N, L, 3) metres, y up (any horizontal position and heading),
      finite (`check_poses`; not re-checked here, per example).
    seed: the data set's seed.
    index: the example's index; (seed, index) fixes the scene.
    options: ranges of the random parameters.
    translation: optional (3,) metres, the hip in the camera frame (z < 0),
      instead of the framing that fits this pose's box to
      `options.person_size` (what `sample_video` holds fixed over a video).
      The random draws are the same either way.

  Returns:
    A `Scene`; `render` draws it.
  """
  seed, index = int(seed), int(index)
  if not (0 <= seed < 2**64 and 0 <= index < 2**64):
    raise ValueError(f"seed and index must be integers in [0, 2**64), got {seed}, {index}")
  # One stream, drawn in a fixed order and count whatever the options' values
  # (e.g. whether the person is drawn), so the background of an example does
  # not change when only the person does.
  rng = _generator(seed, index, _SCENE_STREAM)
  height, width = options.image_size
  short = min(height, width)

  has_person = bool(rng.random() >= options.no_person_prob)

  pose_index = int(rng.integers(len(poses)))
  body_scale = _uniform(rng, options.body_scale)
  pose = np.asarray(poses[pose_index], np.float64)
  pose = body_scale * (pose - pose[_J["Hip"]])
  style = _sample_style(seed, index, options)
  if options.limb_length != (1.0, 1.0):
    pose = scale_bones(pose, style["bones"])

  yaw = _uniform(rng, options.yaw)
  phi = math.radians(_uniform(rng, options.elevation_deg))
  fov = math.radians(_uniform(rng, options.fov_deg))
  size_frac = _uniform(rng, options.person_size)
  jitter = rng.uniform(-options.centre_jitter, options.centre_jitter, 2)
  focal = (width / 2) / math.tan(fov / 2)
  camera_rotation = camera.elevation_rotation(phi)
  pose3d = pose @ (camera_rotation @ camera.yaw_rotation(yaw)).T
  # Distance and position: the 2D box of the projected joints spans size_frac
  # of the short image side and is centred on the jittered image centre. Start
  # from the weak-perspective solution at the hip's depth and correct for
  # perspective by a few fixed-point steps (the box scales as 1 / depth).
  target_size = size_frac * short
  principal = np.array([(width - 1) / 2, (height - 1) / 2])
  # The wanted box-centre offset from the principal point, in camera x/y (y up).
  target_offset = jitter * (width, -height)
  lo, hi = pose3d.min(axis=0), pose3d.max(axis=0)
  extent = max(hi[0] - lo[0], hi[1] - lo[1], 1e-3)
  # Under perspective keep the nearest joint a body size (and 1 m) from the
  # camera, so that no limb reaching towards it is blown up; the weak camera
  # only needs every joint in front of it.
  if options.camera == "perspective":
    min_depth = hi[2] + max(1.0, float(np.max(hi - lo)))
  else:
    min_depth = hi[2] + 0.1
  if translation is None:
    depth = max(focal * extent / target_size, min_depth)
    shift = target_offset * depth / focal - 0.5 * (lo[:2] + hi[:2])
    # Exact in one step for the weak camera; under perspective each step
    # corrects the box for its measured size and centre (the box scales as 1 /
    # depth and moves by focal / depth per metre of shift).
    for _ in range(3 if options.camera == "perspective" else 1):
      points = _project(pose3d + np.array([shift[0], shift[1], -depth]), focal, principal,
                        options.camera, depth)
      box_lo, box_hi = points.min(axis=0), points.max(axis=0)
      size = max(box_hi[0] - box_lo[0], box_hi[1] - box_lo[1], 1e-3)
      box_offset = (0.5 * (box_lo + box_hi) - principal) * (1.0, -1.0)
      box_centre_3d = box_offset * depth / focal - shift  # the box centre, relative to the hip.
      depth = max(depth * size / target_size, min_depth)
      shift = target_offset * depth / focal - box_centre_3d
    translation = np.array([shift[0], shift[1], -depth])
  else:
    translation = np.asarray(translation, np.float64)
    if translation.shape != (3,) or not np.all(np.isfinite(translation)):
      raise ValueError(f"translation must be 3 finite numbers, got {translation!r}")
    depth = -float(translation[2])
    if depth <= hi[2]:
      raise ValueError(f"translation {translation.tolist()} puts a joint behind the camera "
                       f"(the hip {depth:.3g} m away, a joint {hi[2]:.3g} m in front of it)")
  pose_cam = pose3d + translation
  # The camera centre in the (hip-centred, y-up) world frame is -Eᵀ t.
  camera_height = float(-(camera_rotation.T @ translation)[1] - pose[:, 1].min())

  def to_pixels(points):
    return _project(points, focal, principal, options.camera, depth)

  thickness = _uniform(rng, options.thickness)
  ends, radii, colours, sleeves = _person_capsules(pose_cam, rng, thickness, style["widths"])
  ends_px = to_pixels(ends)
  # Painter's order always uses the true depths; the weak camera only changes
  # the projection (every point at the hip's depth).
  point_depth = -ends[..., 2]
  scale_depth = point_depth if options.camera == "perspective" else depth
  radii_px = np.maximum(focal * radii / scale_depth, options.min_radius_px)
  keypoints = to_pixels(pose_cam)

  # Clutter: person-coloured capsules anywhere, behind the person.
  num_clutter = int(rng.integers(options.max_clutter + 1))
  most = options.max_clutter  # draw for all, keep num_clutter: a fixed draw count.
  c_start = rng.uniform(0, 1, (most, 2))[:num_clutter] * (width, height)
  c_dir = rng.normal(size=(most, 2))[:num_clutter]
  c_len = rng.uniform(0.05, 0.4, (most, 1))[:num_clutter] * short
  c_dir = c_dir / np.maximum(np.linalg.norm(c_dir, axis=-1, keepdims=True), 1e-9)
  clutter_ends = np.stack([c_start, c_start + c_len * c_dir], axis=1)
  clutter_radii = np.repeat(rng.uniform(0.01, 0.06, (most, 1))[:num_clutter] * short, 2, axis=1)
  clutter_colours = rng.uniform(0, 255, (most, 3))[:num_clutter]

  background = _sample_background(rng)

  occluders = []
  for _ in range(options.max_occluders):
    present = rng.random() < options.occluder_prob
    kind = "rectangle" if rng.random() < 0.5 else "ellipse"
    near_joint = rng.random() < 0.7
    joint = int(rng.integers(_NUM_JOINTS))
    offset = rng.normal(0.0, 0.05 * short, 2)
    anywhere = rng.uniform(0, 1, 2) * (width, height)
    half = rng.uniform(*options.occluder_size, 2) * short
    angle = rng.uniform(0, math.pi)
    colour = rng.uniform(0, 255, 3)
    if not present:
      continue
    centre_px = keypoints[joint] + offset if (near_joint and has_person) else anywhere
    occluders.append(dict(kind=kind, centre=centre_px, half=half, angle=angle, colour=colour))

  noise_std = _uniform(rng, options.noise_std)

  texture = None
  if options.clothing_texture_prob > 0:
    # One pattern per garment; forearms share the shirt's when they share
    # its colour (sleeves), bare skin stays plain.
    garment = style["garments"][_PART_CLOTHING]  # (parts, 6)
    sleeve = _PART_CLOTHING == _SLEEVE
    garment[sleeve] = style["garments"][_SHIRT]
    garment[(_PART_CLOTHING == _SKIN) | (sleeve & (not sleeves)), 0] = 0.0
    texture = np.concatenate([garment, np.zeros((1, 6))], axis=0)  # the nose is plain.
  # Patterns are i.i.d.: the k-th drawn occluder takes the k-th (max_occluders >= k).
  for occluder, pattern in zip(occluders, style["occluder_textures"], strict=False):
    if pattern[0] > 0:
      occluder["texture"] = tuple(float(v) for v in pattern)

  return Scene(
      image_size=(height, width), has_person=has_person, pose_index=pose_index,
      pose3d=pose3d, translation=translation, camera_rotation=camera_rotation, yaw=yaw,
      camera_height=camera_height,
      focal=focal, keypoints2d=keypoints, capsules=ends_px, capsule_radii=radii_px,
      capsule_depth=point_depth.mean(axis=1), capsule_colours=colours,
      clutter=(clutter_ends, clutter_radii, clutter_colours), background=background,
      occluders=tuple(occluders), noise_std=noise_std, noise_key=(seed, index),
      capsule_texture=texture, light=style["light"] if options.lighting else None,
      illumination=style["illumination"] if options.lighting else None,
      self_occlusion=options.self_occlusion)


def sample_video(poses: np.ndarray, seed: int, index: int,
                 options: RenderOptions = RenderOptions()) -> list[Scene]:
  """The scenes of a video: poses in time order, one scene, one fixed camera.

  Every frame has example `index`'s random draws (the camera's elevation and
  field of view, the yaw, the body's scale and proportions, clothing,
  lighting, background, clutter, occluders and pixel noise) and one camera
  position, so that only the person moves. The hip stays at one point of the
  camera frame (a clip's root motion is removed, as in training): as far
  from the camera as the frame with the largest box needs (each frame's own
  framing fits its joints into `options.person_size` of the image's short
  side), in the median direction of the frames' own framings. The occluders
  stay where frame 0 puts them, and the pixel noise is one fixed pattern.

  Args:
    poses: (F, L, 3) metres, y up, in time order, finite.
    seed: the data set's seed.
    index: the video's index; (seed, index) fixes the scene.
    options: ranges of the random parameters.

  Returns:
    F `Scene`s (`render` draws each); `pose_index` is the frame's index.
  """
  poses = np.asarray(poses)
  check_poses(poses, batched=True)
  framed = [sample_scene(pose[None], seed, index, options) for pose in poses]
  depth = max(-float(scene.translation[2]) for scene in framed)
  direction = np.median([scene.translation[:2] / -scene.translation[2] for scene in framed],
                        axis=0)  # the hip's (x, y) per metre of depth
  translation = np.array([*(direction * depth), -depth])
  scenes = [sample_scene(pose[None], seed, index, options, translation=translation)
            for pose in poses]
  return [dataclasses.replace(scene, pose_index=f, occluders=scenes[0].occluders)
          for f, scene in enumerate(scenes)]


def scale_bones(pose: np.ndarray, factors: np.ndarray) -> np.ndarray:
  """Changes a pose's bone lengths, keeping every bone's direction.

  Args:
    pose: (L, 3) metres (H36M17 joints).
    factors: (10,) length factors of the bone kinds (`_BONE_KINDS`: pelvis,
      thigh, shin, lower spine, upper spine, neck, head, shoulder, upper arm,
      forearm), the same on both sides.

  Returns:
    (L, 3) the pose with bone j->parent(j) scaled by its kind's factor, the
    root in place.
  """
  pose = np.asarray(pose, np.float64)
  out = pose.copy()
  scale = np.asarray(factors, np.float64)[_BONE_KIND_OF_JOINT]
  for j in range(1, _NUM_JOINTS):  # parents come before children.
    parent = _PARENTS[j]
    out[j] = out[parent] + scale[j] * (pose[j] - pose[parent])
  return out


def _sample_style(seed: int, index: int, options: RenderOptions) -> dict[str, Any]:
  """The issue-17 appearance parameters of an example, from their own stream.

  Always the same draws in the same order (whatever the options), so turning
  one option on does not change what the others draw.
  """
  rng = _generator(seed, index, _STYLE_STREAM)
  height, width = options.image_size
  short = min(height, width)
  bones = options.limb_length[0] + np.diff(options.limb_length) * rng.random(len(_BONE_KINDS))
  widths = options.limb_width[0] + np.diff(options.limb_width) * rng.random(_NUM_CAPSULES)

  def patterns(num, prob, period):
    present = rng.random(num) < prob
    kind = rng.integers(len(_TEXTURE_KINDS), size=num)
    amplitude = rng.uniform(0.15, 0.45, num) * present
    periods = rng.uniform(*period, num) * short
    phase = rng.uniform(0, 2 * math.pi, num)
    return np.concatenate([np.stack([amplitude, periods, phase], 1),
                           np.eye(len(_TEXTURE_KINDS))[kind]], axis=1)  # (num, 6)

  garments = patterns(4, options.clothing_texture_prob, (0.02, 0.06))
  occluder_textures = patterns(options.max_occluders, options.occluder_texture_prob,
                               (0.03, 0.1))[:, :3]
  # Light from the camera's side of the person (z > 0), any direction around.
  towards = rng.uniform(0.3, 1.0)
  around = rng.uniform(-math.pi, math.pi)
  side = math.sqrt(1.0 - towards**2)
  light = np.array([side * math.cos(around), side * math.sin(around), towards,
                    rng.uniform(0.25, 0.6)])
  illumination = (float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0.0, 0.5)))
  return dict(bones=bones, widths=widths, garments=garments,
              occluder_textures=occluder_textures, light=light, illumination=illumination)


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
_COORDS = np.arange(_MAX_SIZE, dtype=np.float32)


def _patch_box(lo_x, hi_x, lo_y, hi_y, height, width):
  x0 = max(math.floor(lo_x), 0)
  x1 = min(math.ceil(hi_x) + 1, width)
  y0 = max(math.floor(lo_y), 0)
  y1 = min(math.ceil(hi_y) + 1, height)
  return x0, x1, y0, y1


def _draw_capsules(image: np.ndarray, ends: np.ndarray, radii: np.ndarray, colours: np.ndarray,
                   order: np.ndarray, shaded: bool = True, texture: np.ndarray | None = None,
                   light: np.ndarray | None = None) -> None:
  """Composites antialiased, tapering capsules in the given order, in place.

  The per-pixel fields of all capsules are computed at once, on the pixels of
  every capsule's bounding box laid end to end in one flat array (a few NumPy
  calls whatever the number of capsules, no padding); only the compositing,
  which must follow the painter's order, loops.

  Args:
    image: (3, H, W) float32, modified in place.
    ends: (C, 2, 2) end points, pixels (x, y).
    radii: (C, 2) radii at the ends, pixels.
    colours: (C, 3) RGB.
    order: indices of the capsules to draw, first drawn first.
    shaded: darken towards the silhouette like a lit cylinder.
    texture: (C, 6) patterns (see `Scene.capsule_texture`), or None.
    light: (4,) light direction and ambient level (see `Scene.light`): Lambert
      shading instead of `shaded`'s fixed one; or None.
  """
  height, width = image.shape[1:]
  if len(order) == 0:
    return
  ends = ends[order].astype(np.float32)
  radii = radii[order].astype(np.float32)
  colours = colours[order].astype(np.float32)
  if texture is not None:
    texture = texture[order].astype(np.float32)
  a, b = ends[:, 0], ends[:, 1]  # (C, 2)
  reach = radii.max(axis=1, keepdims=True) + 1.0
  lo = np.maximum(np.floor(np.minimum(a, b) - reach), 0).astype(np.int64)
  hi = np.minimum(np.ceil(np.maximum(a, b) + reach).astype(np.int64) + 1, (width, height))
  sizes = np.maximum(hi - lo, 0)  # (C, 2) as (w, h)
  areas = sizes[:, 0] * sizes[:, 1]
  total = int(areas.sum())
  if total == 0:
    return
  starts = np.cumsum(areas) - areas
  # Flat pixel list in row-major order per box: per-row, then per-pixel
  # coordinates relative to a, built with np.repeat (much cheaper than
  # fancy-index gathers or divmod on every pixel).
  num = len(order)
  offset = (lo - a).astype(np.float32)  # each box's corner pixel centre, relative to a.
  heights, widths = sizes[:, 1], sizes[:, 0]
  row_capsule = np.repeat(np.arange(num), heights)
  row_first = np.repeat(np.cumsum(heights) - heights, heights)
  row_y = (np.arange(len(row_capsule)) - row_first).astype(np.float32)
  row_y += offset[row_capsule, 1]
  row_width = widths[row_capsule]
  row_start = np.cumsum(row_width) - row_width
  xs = (np.arange(total) - np.repeat(row_start, row_width)).astype(np.float32)
  xs += np.repeat(offset[:, 0], areas)
  ys = np.repeat(row_y, row_width)

  def per_pixel(values):
    return np.repeat(values.astype(np.float32), areas)

  # Distance to each segment a-b, the radius interpolated along it.
  ab = b - a
  length2 = np.maximum(np.sum(ab * ab, axis=1), np.float32(1e-9))
  t = xs * per_pixel(ab[:, 0] / length2)
  t += ys * per_pixel(ab[:, 1] / length2)
  np.maximum(t, 0.0, out=t)
  np.minimum(t, 1.0, out=t)
  xs -= t * per_pixel(ab[:, 0])
  ys -= t * per_pixel(ab[:, 1])
  radius = t * per_pixel(radii[:, 1] - radii[:, 0])
  radius += per_pixel(radii[:, 0])
  dist = xs * xs
  dist += ys * ys
  np.sqrt(dist, out=dist)
  cover = radius - dist
  cover += 0.5
  np.maximum(cover, 0.0, out=cover)
  np.minimum(cover, 1.0, out=cover)
  if texture is not None:
    # Patterns in the limb's own coordinates: `along` its axis and `across`
    # it (pixels), so that they follow the limb.
    length = np.sqrt(length2)
    along = t * per_pixel(length)
    across = ys * per_pixel(ab[:, 0] / length)
    across -= xs * per_pixel(ab[:, 1] / length)
    frequency = per_pixel(2 * np.pi / np.maximum(texture[:, 1], 1.0))
    phase = per_pixel(texture[:, 2])
    along *= frequency
    along += phase
    wave_along = np.sin(along)
    across *= frequency
    across += phase
    wave_across = np.sin(across)
    pattern = wave_along * per_pixel(texture[:, 3])
    pattern += wave_across * per_pixel(texture[:, 4])
    wave_along *= wave_across
    wave_along *= per_pixel(texture[:, 5])
    pattern += wave_along
    pattern *= per_pixel(texture[:, 0])
    pattern += np.float32(1.0)
  if light is not None:
    # Lambert shading of the swept sphere's surface: its normal at a pixel is
    # the offset from the nearest axis point over the radius (x right, y up),
    # completed to unit length towards the viewer.
    inv_radius = 1.0 / np.maximum(radius, np.float32(1e-6))
    xs *= inv_radius
    ys *= inv_radius
    normal_z = 1.0 - xs * xs - ys * ys
    np.maximum(normal_z, 0.0, out=normal_z)
    np.sqrt(normal_z, out=normal_z)
    lit = xs * np.float32(light[0])
    lit -= ys * np.float32(light[1])
    lit += normal_z * np.float32(light[2])
    np.maximum(lit, 0.0, out=lit)
    ambient = np.float32(light[3])
    lit *= 1.0 - ambient
    lit += ambient
    paint = lit
    paint *= cover
  elif shaded:
    # Lit-cylinder shading, 1 on the axis falling to 0.55 at the silhouette:
    # 1 - 0.45 (d / r)^2.
    dist /= radius
    np.square(dist, out=dist)
    dist *= np.float32(-0.45)
    dist += np.float32(1.0)
    paint = dist
    paint *= cover
  else:
    paint = cover
  if texture is not None:
    paint = paint * pattern
  keep = 1.0 - cover
  paint = np.repeat(colours.T, areas, axis=1) * paint  # (3, total) premultiplied colour.
  # Python scalars: this loop runs once per capsule, two NumPy calls each.
  for x0, y0, w, h, start, area in zip(
      *lo.T.tolist(), *sizes.T.tolist(), starts.tolist(), areas.tolist(), strict=True):
    if area == 0:
      continue
    patch = image[:, y0:y0 + h, x0:x0 + w]
    patch *= keep[start:start + area].reshape(h, w)
    patch += paint[:, start:start + area].reshape(3, h, w)


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
  if "texture" in occluder:
    # Stripes across the occluder's first axis.
    amplitude, period, phase = occluder["texture"]
    along = (math.cos(occluder["angle"]) * (xs - cx) + math.sin(occluder["angle"]) * (ys - cy))
    cover = cover * (1.0 + amplitude * np.sin(along * (2 * math.pi / period) + phase))
  patch += occluder["colour"].astype(np.float32)[:, None, None] * cover


def occluded_joints(scene: Scene) -> np.ndarray:
  """(L,) bool: joints whose point lies inside an occluder (its coverage >= 1/2)."""
  occluded = np.zeros(_NUM_JOINTS, bool)
  for occluder in scene.occluders:
    occluded |= _occluder_sdf(occluder, scene.keypoints2d[:, 0], scene.keypoints2d[:, 1]) <= 0
  return occluded


def self_occluded_joints(scene: Scene) -> np.ndarray:
  """(L,) bool: joints whose point shows a body part not attached to them.

  At the joint's 2D point, the last capsule of the painter's order whose
  coverage is at least 1/2 (what the image shows there, before occluders) is
  not one of the joint's own capsules (those with the joint at an end; the
  nose belongs to Neck/Nose and Head). All False without a person.
  """
  if not scene.has_person:
    return np.zeros(_NUM_JOINTS, bool)
  order = np.argsort(-scene.capsule_depth, kind="stable")
  rank = np.empty(len(order), np.int64)
  rank[order] = np.arange(len(order))
  a, b = scene.capsules[:, 0], scene.capsules[:, 1]  # (C, 2)
  ab = b - a
  length2 = np.maximum(np.sum(ab * ab, axis=-1), 1e-9)
  rel = scene.keypoints2d[:, None, :] - a[None]  # (L, C, 2)
  t = np.clip(np.sum(rel * ab[None], axis=-1) / length2, 0.0, 1.0)
  dist = np.linalg.norm(rel - t[..., None] * ab[None], axis=-1)
  radius = scene.capsule_radii[:, 0] + t * (scene.capsule_radii[:, 1] - scene.capsule_radii[:, 0])
  covering = dist <= radius
  top = np.argmax(np.where(covering, rank[None], -1), axis=1)
  return covering.any(axis=1) & ~_INCIDENT[np.arange(_NUM_JOINTS), top]


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
  clutter_ends, clutter_radii, clutter_colours = scene.clutter
  _draw_capsules(image, clutter_ends, clutter_radii, clutter_colours,
                 np.arange(len(clutter_ends)), shaded=False)
  if draw_person:
    # Painter's algorithm: the farthest capsule first, so nearer limbs cover it.
    order = np.argsort(-scene.capsule_depth, kind="stable")
    _draw_capsules(image, scene.capsules, scene.capsule_radii, scene.capsule_colours, order,
                   texture=scene.capsule_texture, light=scene.light)
  for occluder in scene.occluders:
    _draw_occluder(image, occluder)
  if scene.illumination is not None:
    angle, gain = scene.illumination
    along = (math.cos(angle) * _COORDS[:width][None, :]
             + math.sin(angle) * _COORDS[:height][:, None])
    span = max(float(along.max() - along.min()), 1.0)
    image *= (np.float32(1.0 - gain / 2) + np.float32(gain / span) * (along - along.min()))
  if scene.noise_std > 0:
    # Grey (luminance) sensor noise, shared by the channels: one random byte
    # per pixel through a table of 256 normal quantiles (much cheaper than
    # drawing normals, and as good for sensor noise).
    rng = _generator(*scene.noise_key, _NOISE_STREAM)
    levels = np.frombuffer(rng.bytes(height * width), np.uint8).reshape(height, width)
    image += (np.float32(scene.noise_std) * _NORMAL_QUANTILES)[levels]
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
  self_occluded = self_occluded_joints(scene)
  if not scene.has_person:
    nan = np.float32(np.nan)
    return dict(
        image=image,
        keypoints2d=np.full((_NUM_JOINTS, 2), nan, np.float32),
        visibility=np.zeros(_NUM_JOINTS, np.float32),
        in_frame=np.zeros(_NUM_JOINTS, bool),
        occluded=np.zeros(_NUM_JOINTS, bool),
        self_occluded=np.zeros(_NUM_JOINTS, bool),
        pose3d=np.full((_NUM_JOINTS, 3), nan, np.float32),
        translation=np.full(3, nan, np.float32),
        camera_rotation=scene.camera_rotation.astype(np.float32),
        yaw=nan,
        camera_height=nan,
        focal=np.float32(scene.focal),
        has_person=np.bool_(False),
        pose_index=np.int32(-1),
    )
  return dict(
      image=image,
      keypoints2d=kp.astype(np.float32),
      visibility=(in_frame & ~occluded
                  & ~(self_occluded & scene.self_occlusion)).astype(np.float32),
      in_frame=in_frame,
      occluded=occluded,
      self_occluded=self_occluded,
      pose3d=scene.pose3d.astype(np.float32),
      translation=scene.translation.astype(np.float32),
      camera_rotation=scene.camera_rotation.astype(np.float32),
      yaw=np.float32(scene.yaw),
      camera_height=np.float32(scene.camera_height),
      focal=np.float32(scene.focal),
      has_person=np.bool_(True),
      pose_index=np.int32(scene.pose_index),
  )


class SyntheticPoseSource:
  """A grain random-access data source of rendered people.

  Works with `grain.MapDataset.source(...)` and `grain.python.DataLoader`.
  Item `index` is a pure function of (poses, options, seed, index).

  Each item is a dict of NumPy arrays:
    image: (H, W, 3) uint8 RGB.
    keypoints2d: (17, 2) float32 pixels, x right, y down (NaN without a
      person).
    visibility: (17,) float32, 1 for joints in the frame and not behind an
      occluder (nor, with `self_occlusion`, behind the body), else 0 (all 0
      without a person).
    in_frame, occluded: (17,) bool, the two parts of `visibility`.
    self_occluded: (17,) bool, joints hidden by the body itself
      (`self_occluded_joints`); part of `visibility` only with
      `RenderOptions.self_occlusion`.
    pose3d: (17, 3) float32 metres, y up, camera orientation, hip at the
      origin (add `translation` for the camera frame, camera at the origin
      looking along -z).
    translation: (3,) float32 metres, the hip in the camera frame.
    camera_rotation: (3, 3) float32, R_x(φ) (world y-up frame to camera
      orientation), `lift3d.camera.elevation_rotation(φ)`: the E to pass as
      `lift3d.lift(..., camera_rotation=...)`.
    yaw: () float32 radians, θ of R_θ applied to the corpus pose.
    camera_height: () float32 metres, the camera centre's height above the
      pose's lowest joint (the floor, for a standing pose).
    focal: () float32 pixels (principal point at the image centre).
    has_person: () bool.
    pose_index: () int32, the corpus pose used (-1 without a person).
  """

  def __init__(self, poses: np.ndarray, *, image_size: int | tuple[int, int] = 368,
               seed: int = 0, length: int = 1_000_000,
               options: RenderOptions | None = None, preset: str = "capsule", **overrides):
    """Builds the source.

    Args:
      poses: (N, 17, 3) metres, y up (e.g. `lift3d.data.mocap.load_embedded()
        .poses`).
      image_size: H = W, or (H, W), pixels.
      seed: fixes every example together with its index.
      length: number of examples.
      options: scene ranges (`RenderOptions`); `image_size`, the preset's
        fields and `overrides` (any `RenderOptions` field, e.g.
        no_person_prob=0.1), in this order, replace its fields.
      preset: a name of `PRESETS` ("capsule": the original renderer, "rich",
        "rich_occluded", "rich_unoccluded").
    """
    check_poses(poses, batched=True)
    self.poses = np.asarray(poses).astype(np.float32)
    if isinstance(image_size, int | np.integer):
      image_size = (int(image_size), int(image_size))
    options = options or RenderOptions()
    fields = {f.name for f in dataclasses.fields(RenderOptions)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
      raise ValueError(f"unknown RenderOptions fields {unknown}; expected some of {sorted(fields)}")
    if preset not in PRESETS:
      raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    self.options = dataclasses.replace(
        options, image_size=tuple(image_size), **{**PRESETS[preset], **overrides})
    if int(length) < 1:
      raise ValueError(f"length must be >= 1, got {length}")
    self.length = int(length)
    if not 0 <= int(seed) < 2**64:
      raise ValueError(f"seed must be an integer in [0, 2**64), got {seed}")
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

  def video(self, poses: np.ndarray, index: int = 0) -> list[Scene]:
    """The scenes of a video of `poses` (F, 17, 3) metres, y up, in time order,
    with this source's seed and options (`sample_video`; the source's own
    poses are not used). `[example_from_scene(s, render(s)) for s in ...]`
    gives the frames as items."""
    return sample_video(poses, self.seed, index, self.options)

  def __repr__(self) -> str:
    return (f"SyntheticPoseSource(num_poses={len(self.poses)}, length={self.length}, "
            f"seed={self.seed}, image_size={self.options.image_size})")
