"""Training crops of a person: scale, rotation, flip, colour jitter, the centre map (CPM).

As in the CPM papers (Wei et al. 2016, §4 and their training code): around
the person's centre, a random scale (about 0.7–1.3), rotation (about ±40°) and
horizontal flip (with the left/right joints swapped), cropped to the
network's input (368×368 for the paper), colour jitter, and the person-centre
map, a Gaussian at the person's centre, as an extra input channel.

One affine map takes image pixels to crop pixels; the keypoints go through
the same map as the image, so labels stay on the joints (tested by drawing
markers at the joints). Pixel centres sit at integers everywhere (x right,
y down); PIL's affine warp uses pixel corners, `warp_image` converts.

Everything here is a pure function of its arguments: the random parameters
come from an explicit `numpy.random.Generator` (`sample_params`), which the
pipeline seeds from (seed, index).

Shape letters: L joints (17, H36M17), S the crop side, pixels.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from lift3d.skeleton import H36M17

# CPM's centre map: a Gaussian of 21 px at the 368 px input.
CENTRE_SIGMA_PX = 21.0


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
  """Ranges of the random crop parameters.

  Attributes:
    input_size: S, the crop side, pixels (paper: 368).
    person_fraction: the person's box side (the longer of w, h) covers this
      fraction of the crop at scale 1 (**(choice)** 0.6, the CPM training
      code's person-height-to-crop ratio).
    scale: (lo, hi) random zoom on top of that.
    rotation_deg: rotations uniform in ±this, degrees.
    flip_prob: probability of a horizontal flip.
    shift: the person's centre lands uniformly within ±shift·S of the crop
      centre (each axis).
    brightness: multiply by 1 + uniform(±brightness).
    contrast: scale the deviation from the mean grey by 1 + uniform(±contrast).
    saturation: scale the deviation from each pixel's grey by 1 + uniform(±saturation).
    centre_sigma: the centre map's standard deviation, pixels of the crop.
    fill: grey level of the crop outside the image.
  """

  input_size: int = 368
  person_fraction: float = 0.6
  scale: tuple[float, float] = (0.7, 1.3)
  rotation_deg: float = 40.0
  flip_prob: float = 0.5
  shift: float = 0.05
  brightness: float = 0.2
  contrast: float = 0.2
  saturation: float = 0.2
  centre_sigma: float = CENTRE_SIGMA_PX
  fill: int = 128

  def __post_init__(self):
    if int(self.input_size) < 8:
      raise ValueError(f"input_size must be >= 8 pixels, got {self.input_size}")
    lo, hi = self.scale
    if not 0 < lo <= hi:
      raise ValueError(f"scale must be (lo, hi) with 0 < lo <= hi, got {self.scale}")
    if not 0 < self.person_fraction:
      raise ValueError(f"person_fraction must be positive, got {self.person_fraction}")
    if not 0 <= self.flip_prob <= 1:
      raise ValueError(f"flip_prob must lie in [0, 1], got {self.flip_prob}")
    for name in ("rotation_deg", "shift", "brightness", "contrast", "saturation"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

  @classmethod
  def centred(cls, input_size: int = 368, **overrides) -> AugmentOptions:
    """No augmentation: the person centred at scale 1 (evaluation crops)."""
    fixed = dict(scale=(1.0, 1.0), rotation_deg=0.0, flip_prob=0.0, shift=0.0, brightness=0.0,
                 contrast=0.0, saturation=0.0)
    return cls(input_size=input_size, **{**fixed, **overrides})


@dataclasses.dataclass(frozen=True)
class AugmentParams:
  """One draw of the crop parameters.

  Attributes:
    scale: zoom factor (1 = `person_fraction`).
    angle: rotation, radians (positive turns the image content clockwise on
      screen, y down).
    flip: mirror horizontally (and swap left/right joints).
    shift: (2,) the centre's offset from the crop centre, pixels.
    brightness, contrast, saturation: the colour factors (1 = unchanged).
  """

  scale: float = 1.0
  angle: float = 0.0
  flip: bool = False
  shift: tuple[float, float] = (0.0, 0.0)
  brightness: float = 1.0
  contrast: float = 1.0
  saturation: float = 1.0


def sample_params(rng: np.random.Generator, options: AugmentOptions) -> AugmentParams:
  """Draws `AugmentParams` from `rng` within the ranges of `options`.

  Each parameter is uniform in its range (the flip a Bernoulli draw); nine
  uniforms are drawn per call, so a generator seeded per example gives the
  same crop whatever the options.

  Args:
    rng: the example's generator (seeded from (seed, index) by the pipeline);
      advanced by the call.
    options: the ranges.

  Returns:
    `AugmentParams`: scale (factor in `options.scale`), angle (radians, within
    ±`rotation_deg`), flip (bool), shift ((2,) crop pixels, within
    ±`shift`·S per axis) and the colour factors (1 ± their option).
  """
  u = rng.uniform(size=9)
  lo, hi = options.scale
  half = options.shift * options.input_size
  return AugmentParams(
      scale=float(lo + (hi - lo) * u[0]),
      angle=float(math.radians(options.rotation_deg) * (2 * u[1] - 1)),
      flip=bool(u[2] < options.flip_prob),
      shift=(float(half * (2 * u[3] - 1)), float(half * (2 * u[4] - 1))),
      brightness=float(1 + options.brightness * (2 * u[5] - 1)),
      contrast=float(1 + options.contrast * (2 * u[6] - 1)),
      saturation=float(1 + options.saturation * (2 * u[7] - 1)),
  )


def crop_matrix(centre, box_size: float, params: AugmentParams,
                options: AugmentOptions) -> np.ndarray:
  """The affine map from image pixels to crop pixels.

  Args:
    centre: (2,) the person's centre, image pixels.
    box_size: the person's size (longer box side), image pixels.
    params: the random draw.
    options: sizes.

  Returns:
    (2, 3) float64 matrix M: crop = M[:, :2] @ image + M[:, 2].
  """
  if not (np.isfinite(box_size) and box_size > 0):
    raise ValueError(f"box_size must be positive and finite, got {box_size}")
  zoom = options.person_fraction * options.input_size / box_size * params.scale
  c, s = math.cos(params.angle), math.sin(params.angle)
  linear = zoom * np.array([[c, -s], [s, c]])
  if params.flip:
    linear = np.diag([-1.0, 1.0]) @ linear
  target = (options.input_size - 1) / 2 + np.asarray(params.shift, np.float64)
  offset = target - linear @ np.asarray(centre, np.float64)
  return np.concatenate([linear, offset[:, None]], axis=1)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """Maps points through an affine map (e.g. image pixels to crop pixels).

  Args:
    points: (..., 2) pixels (x right, y down), NaN where unknown.
    matrix: (2, 3) affine map M, e.g. from `crop_matrix`: out = M[:, :2] @ p + M[:, 2].

  Returns:
    (..., 2) float64 pixels of the map's output; NaN stays NaN.
  """
  points = np.asarray(points, np.float64)
  return points @ matrix[:, :2].T + matrix[:, 2]


def warp_image(image, matrix: np.ndarray, size: int, *, fill: int = 128, as_pil: bool = False):
  """The (size, size) crop of an image through an affine map (bilinear).

  Args:
    image: (H, W, 3) uint8 array or a PIL image.
    matrix: (2, 3) image pixels -> crop pixels (pixel centres at integers).
    size: S.
    fill: grey level outside the image.
    as_pil: return the PIL image instead of an array.

  Returns:
    (S, S, 3) uint8 (or the PIL image).
  """
  from PIL import Image

  if isinstance(image, np.ndarray):
    image = Image.fromarray(image)
  inverse = np.linalg.inv(matrix[:, :2])
  offset = -inverse @ matrix[:, 2]
  # PIL samples the source at inverse(output corner coordinates): with pixel
  # corners at c = x + 1/2 on both sides, the offset changes by
  # 1/2 - inverse @ (1/2, 1/2).
  offset = offset + 0.5 - inverse @ np.array([0.5, 0.5])
  data = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
  out = image.transform((size, size), Image.Transform.AFFINE, data,
                        resample=Image.Resampling.BILINEAR, fillcolor=(fill,) * 3)
  return out if as_pil else np.asarray(out)


def colour_jitter(image, params: AugmentParams) -> np.ndarray:
  """Saturation, contrast, then brightness of an RGB image (PIL's `ImageEnhance`).

  Saturation blends each pixel with its grey (ITU-R 601 luma), contrast with
  the image's mean grey, brightness with black (a factor 1 leaves it as is).

  Args:
    image: (H, W, 3) uint8 array or RGB PIL image.
    params: the factors.

  Returns:
    (H, W, 3) uint8.
  """
  from PIL import Image, ImageEnhance

  if params.brightness == params.contrast == params.saturation == 1.0:
    return np.asarray(image)
  if isinstance(image, np.ndarray):
    image = Image.fromarray(image)
  for enhance, factor in ((ImageEnhance.Color, params.saturation),
                          (ImageEnhance.Contrast, params.contrast),
                          (ImageEnhance.Brightness, params.brightness)):
    if factor != 1.0:
      image = enhance(image).enhance(factor)
  return np.asarray(image)


def centre_map(centre, height: int, width: int, sigma: float = CENTRE_SIGMA_PX) -> np.ndarray:
  """The CPM's person-centre map: a Gaussian at `centre`, peak 1.

  Args:
    centre: (2,) pixels (x right, y down, pixel centres at integers).
    height, width: map size, pixels.
    sigma: standard deviation, pixels.

  Returns:
    (height, width) float32 in [0, 1].
  """
  cx, cy = (float(v) for v in centre)
  gx = np.exp(-0.5 * ((np.arange(width) - cx) / sigma) ** 2)
  gy = np.exp(-0.5 * ((np.arange(height) - cy) / sigma) ** 2)
  return np.outer(gy, gx).astype(np.float32)


def with_centre_map(image: np.ndarray, centre, sigma: float = CENTRE_SIGMA_PX) -> np.ndarray:
  """Appends the CPM's person-centre map to an image as a fourth channel.

  Args:
    image: (H, W, 3) uint8 RGB.
    centre: (2,) the person's centre, pixels of `image` (x right, y down).
    sigma: the Gaussian's standard deviation, pixels.

  Returns:
    (H, W, 4) uint8: RGB, then `centre_map` scaled to 0..255 (255 at the centre).
  """
  height, width = image.shape[:2]
  out = np.empty((height, width, 4), np.uint8)
  out[..., :3] = image
  out[..., 3] = np.rint(255.0 * centre_map(centre, height, width, sigma))
  return out


def flip_joints(values: np.ndarray) -> np.ndarray:
  """Swaps left and right joints of (L, ...) H36M17 values (after a mirror image)."""
  return np.asarray(values)[list(H36M17.mirror_permutation)]


def augment(image, keypoints: np.ndarray, visibility: np.ndarray, centre, box_size: float,
            params: AugmentParams, options: AugmentOptions) -> dict[str, np.ndarray]:
  """The training crop of one person.

  Args:
    image: (H, W, 3) uint8 array or PIL image.
    keypoints: (17, 2) H36M17 pixels of `image`, NaN where unlabelled.
    visibility: (17,) in [0, 1].
    centre: (2,) the person's centre, pixels.
    box_size: the person's size, pixels.
    params: from `sample_params` (or `AugmentParams()` for a centred crop).
    options: sizes and ranges.

  Returns:
    "image": (S, S, 4) uint8, RGB then the centre map (255 at the centre);
    "keypoints2d": (17, 2) float32 crop pixels (left/right swapped when
      flipped), NaN where unlabelled; "visibility": (17,) float32, 0 for
      joints outside the crop as well; "matrix": (2, 3) float32 image ->
      crop pixels.
  """
  size = int(options.input_size)
  matrix = crop_matrix(centre, box_size, params, options)
  crop = colour_jitter(warp_image(image, matrix, size, fill=options.fill, as_pil=True), params)
  points = transform_points(keypoints, matrix)
  inside = np.all((points >= -0.5) & (points <= size - 0.5), axis=-1)
  visibility = np.where(inside, visibility, 0.0)
  if params.flip:
    points, visibility = flip_joints(points), flip_joints(visibility)
  target = (size - 1) / 2 + np.asarray(params.shift)
  return {
      "image": with_centre_map(crop, target, options.centre_sigma),
      "keypoints2d": points.astype(np.float32),
      "visibility": visibility.astype(np.float32),
      "matrix": matrix.astype(np.float32),
  }


def belief_targets(keypoints: np.ndarray, height: int, width: int, *, stride: int,
                   sigma: float) -> np.ndarray:
  """Belief-map targets at the network's stride (NumPy twin of `lift3d.train.target_maps`).

  Args:
    keypoints: (L, 2) crop pixels, NaN where unlabelled.
    height, width: map grid size H, W (crop size / stride).
    stride: crop pixels per map cell.
    sigma: Gaussian standard deviation, map cells.

  Returns:
    (H, W, L+1) float32: a Gaussian per labelled joint (zeros where
    unlabelled), then the background 1 − max.
  """
  keypoints = np.asarray(keypoints, np.float64)
  labelled = np.all(np.isfinite(keypoints), axis=-1)
  grid = (np.where(labelled[:, None], keypoints, 0.0) - 0.5 * (stride - 1)) / stride
  gx = np.exp(-0.5 * ((np.arange(width)[None] - grid[:, :1]) / sigma) ** 2)  # (L, W)
  gy = np.exp(-0.5 * ((np.arange(height)[None] - grid[:, 1:]) / sigma) ** 2)  # (L, H)
  maps = np.einsum("lh,lw->hwl", gy, gx) * labelled
  background = 1.0 - maps.max(axis=-1, keepdims=True)
  return np.concatenate([maps, background], axis=-1).astype(np.float32)
