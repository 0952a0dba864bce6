"""Applying a trained CPM to pictures: crops, scales, maps to pixels, lifting (issue 14).

`predict(network, pose_model, images, boxes)` runs the whole method on
pictures of any size, as the CPM papers do at test time:

1. For every person box, a square crop of `network.input_size` pixels
   centred on the box, so that the box's larger side fills
   `network.person_size` of it (the framing of the training images); one such
   crop per scale m (side divided by m: m > 1 zooms in). Parts of a crop
   outside the picture are mid-grey (0 after the network's centring).
2. The network's forward pass on every crop (per-stage lifting, projected
   maps, fusion; `lift3d.models.cpm`).
3. The last stage's fused landmark maps of every scale, resampled onto the
   grid of the scale-1 crop and averaged (each cell over the scales whose crop
   covers it).
4. Arg-max with sub-pixel refinement (`belief_maps.maps_to_points`), then
   from grid cells to crop pixels to picture pixels.
5. `lift3d.lift` of those landmarks (weights: their map values) for the 3D
   pose.

A person is `valid` only when the mean map value at its landmarks reaches
`min_confidence` and the lift succeeded; otherwise `reason` says why and no
pose is reported.

The CPM takes the image only (no person-centre map input channel): the
person is selected by the crop, which is centred on the box.

Coordinates. Picture pixels: x right, y down, pixel centres at integers (as
everywhere in lift3d). Boxes `(x, y, w, h)` follow COCO: `(x, y)` is the
top-left corner with the picture's top-left corner at (0, 0), so a pixel
centre `p` sits at box coordinate `p + 0.5`.

Networks are loaded with `load_network` from a training workdir (orbax
checkpoint, `network.json`, `pose_model.npz`) or from one file written by
`export_network` (flax.serialization msgpack: parameters, network config, pose
model), which needs neither orbax nor the workdir.

Shape letters: B pictures, P people (boxes), S scales, N crop side (pixels),
G map side (cells), L landmarks.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from lift3d import lifting
from lift3d.data import augment
from lift3d.models import belief_maps, cpm
from lift3d.pose_model import io as pose_model_io
from lift3d.pose_model.model import PoseModel

NETWORK_FILE = "network.json"
POSE_MODEL_FILE = "pose_model.npz"
EXPORT_KIND = "lift3d.Network"
EXPORT_VERSION = 1
DEFAULT_SCALES = (0.8, 1.0, 1.25)
# People per jitted call are padded up to a power of two no larger than this:
# few compilations, little wasted work for one or two people.
_MAX_CHUNK = 8
_PAD_GREY = 0.5
_POSE_MODEL_FIELDS = ("mean", "basis", "variances", "noise", "weights", "limb_scale")
# The calibrated lifting prior (σ_obs, β): stored when set, None otherwise.
_POSE_MODEL_OPTIONAL = ("obs_noise", "prior_weight")


@dataclasses.dataclass(frozen=True)
class Network:
  """A trained CPM with what inference needs to frame its input.

  Attributes:
    model: the `lift3d.models.cpm.CPM` module (architecture and options).
    params: its parameters (a pytree of arrays).
    input_size: side of the square crops the network sees, pixels (the
      training image size; a multiple of `model.stride`).
    person_size: fraction of the crop side taken by the larger side of a
      person's box (the training images' framing).
    scales: default scales averaged by `predict`.
    min_confidence: default threshold on the mean landmark map value.
    pose_model: the pose model it was trained with, or None.
    centre_sigma: for a network with the centre-map input channel
      (`model.centre_map`): the map's standard deviation, pixels of the crop
      (`lift3d.data.augment.AugmentOptions.centre_sigma` of its training).
  """

  model: cpm.CPM
  params: Any
  input_size: int
  person_size: float = 0.7
  scales: tuple[float, ...] = DEFAULT_SCALES
  min_confidence: float = 0.2
  pose_model: PoseModel | None = None
  centre_sigma: float = augment.CENTRE_SIGMA_PX

  def config(self) -> dict:
    """The JSON-able network config (everything but params and pose model)."""
    fields = {f.name: getattr(self.model, f.name) for f in dataclasses.fields(cpm.CPM)
              if f.name not in ("parent", "name")}
    fields["trunk_features"] = [int(f) for f in fields["trunk_features"]]
    # The computation dtype (e.g. jnp.bfloat16) by name; `network_from_config` maps it back.
    fields["dtype"] = np.dtype(fields["dtype"]).name
    return {
        "model": fields,
        "input_size": int(self.input_size),
        "person_size": float(self.person_size),
        "scales": [float(s) for s in self.scales],
        "min_confidence": float(self.min_confidence),
        "centre_sigma": float(self.centre_sigma),
    }


@dataclasses.dataclass(frozen=True)
class Person:
  """One person's prediction (NumPy arrays).

  Attributes:
    box: (4,) x, y, w, h pixels (COCO convention, see the module docstring).
    keypoints: (L, 2) landmarks, picture pixels (x right, y down); NaN for a
      zero-size box.
    confidence: (L,) belief-map values at the landmarks (about 1: confident,
      about 0: nothing there).
    lifted: the unbatched `lift3d.LiftResult` of the final maps' landmarks:
      pose3d (L, 3) millimetres in the camera frame (x right, y up, z towards
      the viewer, root at 0), yaw, scale (pixels per mm), reprojected (L, 2)
      picture pixels, ...; NaN where the lift failed.
    valid: whether this is a pose (confident maps and a successful lift).
    reason: why not, when not valid ("" when valid).
  """

  box: np.ndarray
  keypoints: np.ndarray
  confidence: np.ndarray
  lifted: lifting.LiftResult
  valid: bool
  reason: str = ""


def network_config(model: cpm.CPM, *, input_size: int, person_size: float = 0.7,
                   scales: Sequence[float] = DEFAULT_SCALES,
                   min_confidence: float = 0.2,
                   centre_sigma: float = augment.CENTRE_SIGMA_PX) -> dict:
  """The JSON-able config of a network (what `save_network_config` writes).

  Args:
    model: the `CPM` module.
    input_size: training image side, pixels.
    person_size: fraction of the image side taken by a person's box side.
    scales: default inference scales.
    min_confidence: default validity threshold.
    centre_sigma: the centre map's standard deviation, crop pixels (used
      only when `model.centre_map`).

  Returns:
    A dict of plain Python values.
  """
  return Network(model, None, int(input_size), float(person_size), tuple(scales),
                 float(min_confidence), centre_sigma=float(centre_sigma)).config()


def save_network_config(workdir: str, config: Mapping[str, Any]) -> str:
  """Writes `<workdir>/network.json` (atomically), which `load_network` reads.

  Args:
    workdir: the training workdir (must exist).
    config: the dict of `network_config`.

  Returns:
    The path written.
  """
  path = os.path.join(workdir, NETWORK_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(dict(config), f, indent=2)
  os.replace(tmp, path)
  return path


def network_from_config(config: Mapping[str, Any], params, pose_model: PoseModel | None = None,
                        *, where: str = "network config") -> Network:
  """A `Network` from its config (`network_config`), parameters and pose model.

  Args:
    config: the dict `network_config` returns (e.g. read from network.json).
    params: the CPM's parameters.
    pose_model: the pose model, or None.
    where: names the config's origin in error messages.

  Returns:
    The `Network`.

  Raises:
    ValueError: a malformed or inconsistent config.
  """
  try:
    fields = dict(config["model"])
    fields["trunk_features"] = tuple(int(f) for f in fields["trunk_features"])
    if "dtype" in fields:
      fields["dtype"] = jnp.dtype(fields["dtype"])
    model = cpm.CPM(**fields)
    network = Network(
        model=model, params=params, input_size=int(config["input_size"]),
        person_size=float(config.get("person_size", 0.7)),
        scales=tuple(float(s) for s in config.get("scales", DEFAULT_SCALES)),
        min_confidence=float(config.get("min_confidence", 0.2)), pose_model=pose_model,
        centre_sigma=float(config.get("centre_sigma", augment.CENTRE_SIGMA_PX)),
    )
  except (KeyError, TypeError) as e:
    raise ValueError(f"{where}: malformed network config ({type(e).__name__}: {e})") from None
  _check_network(network)
  return network


def _check_network(network: Network) -> None:
  model = network.model
  if network.input_size < model.stride or network.input_size % model.stride:
    raise ValueError(f"input_size {network.input_size} is not a positive multiple of the "
                     f"network stride {model.stride}")
  if not 0 < network.person_size <= 1.5:
    raise ValueError(f"person_size must lie in (0, 1.5], got {network.person_size}")
  _check_scales(network.scales)
  if not (math.isfinite(network.centre_sigma) and network.centre_sigma > 0):
    raise ValueError(f"centre_sigma must be a positive number of pixels, got "
                     f"{network.centre_sigma}")
  if network.pose_model is not None:
    cpm.check_pose_model(network.pose_model, model)


def _check_scales(scales) -> tuple[float, ...]:
  scales = tuple(float(s) for s in scales)
  if not scales or not all(math.isfinite(s) and 0.25 <= s <= 4.0 for s in scales):
    raise ValueError(f"scales must be a non-empty sequence of values in [0.25, 4], got {scales}")
  return scales


def load_network(path: str) -> Network:
  """Loads a trained network from a training workdir or an exported file.

  Args:
    path: either a workdir of the CPM job (`checkpoints/` written by
      `lift3d.train.train`, `network.json`, and `pose_model.npz` if present)
      or a `.msgpack` file written by `export_network` (read without orbax).

  Returns:
    The `Network` (with its pose model when the source holds one).

  Raises:
    ValueError: with what is missing and what to do.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    config_path = os.path.join(path, NETWORK_FILE)
    if not os.path.isfile(config_path):
      raise ValueError(
          f"{path!r} has no {NETWORK_FILE} (the network config the CPM job writes next to its "
          "checkpoints); rerun the job on this workdir (it resumes) or write one with "
          "lift3d.inference.save_network_config")
    with open(config_path) as f:
      try:
        config = json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(f"{config_path!r} is not valid JSON: {e}") from None
    from lift3d import train  # orbax is needed for workdirs only

    params = train.restore_params(path)
    model_path = os.path.join(path, POSE_MODEL_FILE)
    pose_model = pose_model_io.load(model_path) if os.path.isfile(model_path) else None
    return network_from_config(config, params, pose_model, where=path)
  if not os.path.isfile(path):
    raise ValueError(f"no network at {path!r}: expected a training workdir or a file written "
                     "by `lift3d export`")
  with open(path, "rb") as f:
    data = f.read()
  try:
    state = flax.serialization.msgpack_restore(data)
  except Exception as e:  # msgpack raises several unrelated types
    raise ValueError(f"{path!r} is not a lift3d network file ({type(e).__name__}: {e})") from None
  if not isinstance(state, dict) or state.get("kind") != EXPORT_KIND:
    raise ValueError(f"{path!r} is not a lift3d network file (written by `lift3d export`)")
  if int(state.get("format_version", -1)) != EXPORT_VERSION:
    raise ValueError(f"{path!r} has format version {state.get('format_version')}; this lift3d "
                     f"reads version {EXPORT_VERSION}")
  pose_model = None
  if state.get("pose_model"):
    stored = state["pose_model"]
    pose_model = PoseModel(
        **{k: jnp.asarray(stored[k], jnp.float32) for k in _POSE_MODEL_FIELDS},
        **{k: jnp.asarray(stored[k], jnp.float32) for k in _POSE_MODEL_OPTIONAL if k in stored})
  config = json.loads(state["config"])
  params = jax.tree.map(jnp.asarray, state["params"])
  return network_from_config(config, params, pose_model, where=path)


def export_network(network: Network, path: str) -> None:
  """Writes `network` (params, config, pose model) to one msgpack file, atomically.

  Args:
    network: the `Network` (its pose model is stored when not None).
    path: output file (conventionally `.msgpack`); its directory must exist.
  """
  state = {
      "kind": EXPORT_KIND,
      "format_version": EXPORT_VERSION,
      "config": json.dumps(network.config()),
      "params": jax.tree.map(np.asarray, flax.serialization.to_state_dict(network.params)),
      "pose_model": {} if network.pose_model is None else {
          k: np.asarray(getattr(network.pose_model, k), np.float32)
          for k in _POSE_MODEL_FIELDS + _POSE_MODEL_OPTIONAL
          if getattr(network.pose_model, k) is not None},
  }
  tmp = f"{os.fspath(path)}.tmp"
  with open(tmp, "wb") as f:
    f.write(flax.serialization.msgpack_serialize(state))
  os.replace(tmp, path)


def box_from_keypoints(keypoints, confidence=None, *, min_confidence: float = 0.0) -> np.ndarray:
  """The box (x, y, w, h) around the landmarks (COCO convention), for tracking.

  Args:
    keypoints: (L, 2) picture pixels.
    confidence: optional (L,) map values; landmarks at or below
      `min_confidence` are left out.
    min_confidence: see above.

  Returns:
    (4,) float64; NaN if no landmark qualifies.
  """
  keypoints = np.asarray(keypoints, np.float64)
  keep = np.all(np.isfinite(keypoints), axis=-1)
  if confidence is not None:
    keep &= np.asarray(confidence) > min_confidence
  if not keep.any():
    return np.full(4, np.nan)
  lo, hi = keypoints[keep].min(0), keypoints[keep].max(0)
  return np.array([lo[0] + 0.5, lo[1] + 0.5, hi[0] - lo[0], hi[1] - lo[1]])


def confidence_threshold(people, empty) -> float:
  """The `min_confidence` that best tells people from empty boxes, from examples.

  A network's landmark confidences depend on its training (how peaked its
  maps are) and on the inference path (scales, boxes), so a fixed threshold
  rejects real people for one network and accepts empty boxes for another.
  This chooses it from a network's own mean landmark confidences on boxes
  known to hold a person and on boxes known to hold none (e.g. held-out
  renders with and without a person, predicted as users would): the
  threshold minimising the balanced error, the fraction of people below it
  plus the fraction of empty boxes at or above it. Among equally good
  thresholds it takes the middle of the widest gap between the sorted values
  (geometric middle: confidences are positive and spread over decades).

  Args:
    people: (N,) mean landmark confidences of boxes with a person (N >= 1).
    empty: (M,) the same for boxes without one (M >= 1).

  Returns:
    The threshold (a person is valid if its mean confidence is >= it).

  Raises:
    ValueError: on empty or non-finite inputs.
  """
  people = np.asarray(people, np.float64).ravel()
  empty = np.asarray(empty, np.float64).ravel()
  if people.size == 0 or empty.size == 0:
    raise ValueError(f"need confidences of both people and empty boxes, got {people.size} and "
                     f"{empty.size}")
  if not (np.all(np.isfinite(people)) and np.all(np.isfinite(empty))):
    raise ValueError("confidences must be finite")
  values = np.unique(np.concatenate([people, empty]))
  floor = max(float(values[0]), 1e-6)
  # Candidate thresholds: between consecutive distinct values, and beyond both ends.
  lows = np.concatenate([[values[0] / 2 if values[0] > 0 else -1.0], values])
  highs = np.concatenate([values, [values[-1] * 2 if values[-1] > 0 else 1.0]])
  rejected = np.searchsorted(np.sort(people), highs, side="left") / people.size
  accepted = 1.0 - np.searchsorted(np.sort(empty), highs, side="left") / empty.size
  error = rejected + accepted
  best = np.flatnonzero(error <= error.min() + 1e-12)
  low, high = np.maximum(lows[best], floor), np.maximum(highs[best], floor)
  widest = np.argmax(np.log(high) - np.log(low))
  return float(np.sqrt(low[widest] * high[widest]))


# ---------------------------------------------------------------------------
# The jitted parts.


def _crop(image, centre, side, *, size: int):
  """(N, N, 3) crop of side `side` pixels centred at `centre` (x, y box coordinates)."""
  scale = size / side
  # scale_and_translate maps input to output coordinates (corner-based, as
  # our box coordinates): out = in · scale + translation.
  offset = (centre - 0.5 * side) * scale  # (x, y)
  scales = jnp.stack([scale, scale])
  translation = -offset[::-1]  # (row, column)
  crop = jax.image.scale_and_translate(image, (size, size, 3), (0, 1), scales, translation,
                                       "linear", antialias=True)
  ones = jnp.ones((*image.shape[:2], 1), image.dtype)
  coverage = jax.image.scale_and_translate(ones, (size, size, 1), (0, 1), scales, translation,
                                           "linear", antialias=True)
  return crop + (1.0 - jnp.clip(coverage, 0.0, 1.0)) * _PAD_GREY


@functools.partial(jax.jit, static_argnames=("size", "scales"))
def _crops(image, centres, sides, *, size: int, scales: tuple[float, ...]):
  """(P, S, N, N, 3) float32 crops in [0, 1] of one (H, W, 3) picture."""
  if jnp.issubdtype(image.dtype, jnp.integer):
    image = image.astype(jnp.float32) / 255.0
  image = image.astype(jnp.float32)
  per_scale = jnp.asarray(scales, jnp.float32)
  crop = functools.partial(_crop, image, size=size)
  return jax.vmap(jax.vmap(crop, in_axes=(None, 0)))(centres, sides[:, None] / per_scale)


def _average_scales(maps, scales: tuple[float, ...]):
  """(P, S, G, G, L) maps of every scale -> (P, G, G, L) on the scale-1 grid.

  A crop at scale m shares the scale-1 crop's centre, so its grid maps to the
  scale-1 grid by a fixed affine map: corner-based grid coordinates g obey
  g₁ = (g_m − G/2)/m + G/2.
  """
  grid = maps.shape[2]
  total = jnp.zeros_like(maps[:, 0])
  weight = jnp.zeros((*total.shape[1:3], 1), maps.dtype)
  for s, m in enumerate(scales):
    if m == 1.0:
      total, weight = total + maps[:, s], weight + 1.0
      continue
    factors = jnp.full((2,), 1.0 / m)
    shift = jnp.full((2,), 0.5 * grid * (1.0 - 1.0 / m))
    total = total + jax.image.scale_and_translate(
        maps[:, s], total.shape, (1, 2), factors, shift, "linear", antialias=False)
    weight = weight + jax.image.scale_and_translate(
        jnp.ones((grid, grid, 1), maps.dtype), weight.shape, (0, 1), factors, shift, "linear",
        antialias=False)
  return total / jnp.maximum(weight, 1e-6)


@functools.partial(jax.jit,
                   static_argnames=("model", "size", "scales", "num_yaws", "centre_sigma"))
def _infer(params, crops, centres, sides, pose_model, refine, *, model: cpm.CPM, size: int,
           scales: tuple[float, ...], num_yaws: int, centre_sigma: float):
  """Network, scale averaging, landmarks in picture pixels and their lift.

  `refine` is a traced bool (quadratic sub-pixel refinement or the arg-max
  cell), so that both share one compilation.
  """
  num_people, num_scales = crops.shape[:2]
  if model.centre_map:
    # The fourth input channel of training (`augment.with_centre_map`): a
    # Gaussian at the crop's centre, where the person's box is centred.
    g = jnp.exp(-0.5 * ((jnp.arange(size) - (size - 1) / 2) / centre_sigma) ** 2)
    channel = jnp.broadcast_to(jnp.outer(g, g)[..., None], (*crops.shape[:-1], 1))
    crops = jnp.concatenate([crops, channel.astype(crops.dtype)], axis=-1)
  output = model.apply({"params": params}, crops.reshape(-1, *crops.shape[2:]), pose_model)
  maps = output.fused[-1][..., : model.num_landmarks]
  maps = maps.reshape(num_people, num_scales, *maps.shape[1:])
  maps = _average_scales(maps, scales)
  coarse, confidence = belief_maps.maps_to_points(maps, "argmax")
  if model.fusion:
    # As `cpm.CPM`: the confidences are the last CNN maps' values at the fused
    # arg-max, not the fused peaks, which the projected maps hold near 1 − ω.
    cnn = output.belief[-1][..., : model.num_landmarks]
    cnn = _average_scales(cnn.reshape(num_people, num_scales, *cnn.shape[1:]), scales)
    confidence = belief_maps.sample_cells(cnn, coarse)
  fine, _ = belief_maps.maps_to_points(maps, "quadratic")
  points = jnp.where(refine, fine, coarse)
  in_crop = belief_maps.grid_to_pixels(points, model.stride) + 0.5  # corner-based
  corner = centres - 0.5 * sides[:, None]
  keypoints = corner[:, None] + in_crop * (sides / size)[:, None, None] - 0.5
  lifted = lifting.lift(pose_model, keypoints, jnp.clip(confidence, 0.0, 1.0),
                        num_yaws=num_yaws)
  return keypoints, confidence, lifted


# ---------------------------------------------------------------------------
# The public entry point.


def _check_image(image, index: int) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
    raise ValueError(f"image {index} is grey {image.shape}; expected (H, W, 3) RGB "
                     "(repeat the channel: np.repeat(image[..., None], 3, -1))")
  if image.ndim != 3 or image.shape[-1] not in (3, 4) or min(image.shape[:2]) < 1:
    raise ValueError(f"image {index}: expected (H, W, 3) RGB, got {image.shape}")
  if image.shape[-1] == 4:
    image = image[..., :3]  # RGBA: drop alpha
  if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
    raise ValueError(f"image {index}: expected uint8 (0..255) or float (0..1), got {image.dtype}")
  if np.issubdtype(image.dtype, np.floating):
    low, high = float(np.min(image)), float(np.max(image))
    if not (np.isfinite(low) and np.isfinite(high)):
      raise ValueError(f"image {index} has NaN or infinite pixels")
    if low < -1e-3 or high > 1 + 1e-3:
      raise ValueError(f"image {index}: float pixels must lie in 0..1, got {low:g}..{high:g} "
                       "(divide 0..255 images by 255, or pass them as uint8)")
  return image


def _image_boxes(boxes, index: int, image_shape, person_size: float) -> np.ndarray:
  if boxes is None:
    # One person roughly centred: the crop is the square around the whole
    # picture (for a picture of the training size, the picture itself).
    height, width = image_shape
    side = max(height, width) * person_size
    return np.array([[0.5 * (width - side), 0.5 * (height - side), side, side]])
  array = np.asarray(boxes, np.float64)
  if array.size == 0:
    return np.zeros((0, 4))
  if array.ndim == 1:
    array = array[None]
  if array.ndim != 2 or array.shape[-1] != 4:
    raise ValueError(f"boxes of image {index}: expected (P, 4) rows of x, y, w, h pixels, "
                     f"got shape {np.shape(boxes)}")
  return array


def _bucket(count: int) -> int:
  return lifting.api._bucket(count, _MAX_CHUNK)


def predict(
    network: Network,
    pose_model: PoseModel | None,
    images,
    boxes=None,
    *,
    scales: Sequence[float] | None = None,
    num_yaws: int = 100,
    subpixel: str = "quadratic",
    min_confidence: float | None = None,
) -> list[list[Person]]:
  """2D landmarks and 3D poses of the people in pictures of any size.

  Args:
    network: a trained `Network` (`load_network`).
    pose_model: the pose model for lifting (L joints); None takes
      `network.pose_model`.
    images: (B, H, W, 3) uint8 (or float in [0, 1]), or a list of B such
      (H, W, 3) arrays of different sizes.
    boxes: None (one person roughly centred in each picture, as in the
      paper's demo), or per picture an array (P, 4) of person boxes
      (x, y, w, h) in pixels (COCO convention), P >= 0, or None for that
      picture's centred person.
    scales: crop scales whose maps are averaged (m > 1 zooms in); None takes
      `network.scales`. (1.0,) is a single pass.
    num_yaws: yaws of the final lift's search.
    subpixel: "quadratic" (peak refined by a parabola per axis) or "argmax".
    min_confidence: a person is valid only if the mean landmark map value is
      at least this; None takes `network.min_confidence`.

  Returns:
    Per picture, a list with one `Person` per box (in the order given).
    Zero-size or non-finite boxes and pictures without a person give
    `valid=False` with a `reason`, never a pose.

  Raises:
    ValueError: for malformed pictures, boxes or options (before any
      computation).
  """
  pose_model = network.pose_model if pose_model is None else pose_model
  if pose_model is None:
    raise ValueError("no pose model: pass one, or load a network exported with its pose model")
  _check_network(network)
  cpm.check_pose_model(pose_model, network.model)
  scales = _check_scales(network.scales if scales is None else scales)
  if subpixel not in belief_maps.SUBPIXEL_METHODS:
    raise ValueError(f"subpixel must be one of {belief_maps.SUBPIXEL_METHODS}, got {subpixel!r}")
  if int(num_yaws) < 1:
    raise ValueError(f"num_yaws must be >= 1, got {num_yaws}")
  min_confidence = network.min_confidence if min_confidence is None else float(min_confidence)
  if isinstance(images, np.ndarray | jax.Array):
    if images.ndim != 4:
      raise ValueError(f"expected images (B, H, W, 3) or a list of (H, W, 3), got {images.shape}")
  images = [_check_image(image, i) for i, image in enumerate(images)]
  if boxes is not None and len(boxes) != len(images):
    raise ValueError(f"got boxes for {len(boxes)} pictures but {len(images)} pictures")
  per_image = [_image_boxes(None if boxes is None else boxes[i], i, image.shape[:2],
                            network.person_size) for i, image in enumerate(images)]

  size = int(network.input_size)
  num_landmarks = network.model.num_landmarks
  results: list[list[Person | None]] = [[None] * len(b) for b in per_image]
  # Crops picture by picture (one compilation per picture size and bucket);
  # the network runs on buckets of up to _MAX_CHUNK people as they fill up,
  # so memory stays bounded whatever the number of pictures.
  pending: list[tuple[int, int, np.ndarray, float, float]] = []  # (i, j, crops, centre, side)

  def flush():
    count = len(pending)
    take = list(range(count)) + [0] * (_bucket(count) - count)
    keypoints, confidence, lifted = jax.device_get(_infer(
        network.params, np.stack([pending[t][2] for t in take]),
        np.stack([pending[t][3] for t in take]).astype(np.float32),
        np.array([pending[t][4] for t in take], np.float32), pose_model,
        np.bool_(subpixel == "quadratic"), model=network.model, size=size, scales=scales,
        num_yaws=int(num_yaws), centre_sigma=float(network.centre_sigma)))
    for n, (i, j, *_) in enumerate(pending):
      results[i][j] = _person(per_image[i][j], keypoints[n], confidence[n],
                              jax.tree.map(lambda x, n=n: np.asarray(x)[n], lifted),
                              min_confidence)
    pending.clear()

  for i, (image, image_boxes) in enumerate(zip(images, per_image, strict=True)):
    usable = [j for j, box in enumerate(image_boxes)
              if np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0]
    for j in sorted(set(range(len(image_boxes))) - set(usable)):
      results[i][j] = _invalid_person(image_boxes[j], num_landmarks, pose_model.num_basis,
                                      "zero-size or non-finite box (w, h must be > 0)")
    for start in range(0, len(usable), _MAX_CHUNK):
      chosen = usable[start : start + _MAX_CHUNK]
      chosen_boxes = image_boxes[chosen]
      centre = chosen_boxes[:, :2] + 0.5 * chosen_boxes[:, 2:]
      side = chosen_boxes[:, 2:].max(-1) / network.person_size
      pad = _bucket(len(chosen)) - len(chosen)
      centre_p = np.concatenate([centre, np.repeat(centre[:1], pad, 0)]).astype(np.float32)
      side_p = np.concatenate([side, np.repeat(side[:1], pad, 0)]).astype(np.float32)
      crops = np.asarray(_crops(jnp.asarray(image), centre_p, side_p, size=size, scales=scales))
      for n, j in enumerate(chosen):
        pending.append((i, j, crops[n], centre[n], side[n]))
        if len(pending) == _MAX_CHUNK:
          flush()
  if pending:
    flush()
  return [list(r) for r in results]


def _person(box, keypoints, confidence, lifted, min_confidence: float) -> Person:
  mean_confidence = float(np.mean(confidence))
  reason = ""
  if not mean_confidence >= min_confidence:
    reason = (f"no person: mean landmark confidence {mean_confidence:.3f} is below "
              f"{min_confidence:g}")
  elif int(lifted.component) < 0 or not np.all(np.isfinite(lifted.pose3d)):
    reason = "the lift failed (too few confident landmarks)"
  elif not bool(lifted.valid):
    reason = (f"implausible 3D pose (size {float(lifted.size):.2f} of the training size, "
              f"Mahalanobis norm {float(lifted.mahalanobis):.1f}, reprojection residual "
              f"{float(lifted.residual):.2f}; docs/method.md §4.5)")
  return Person(box=np.asarray(box, np.float64), keypoints=np.asarray(keypoints),
                confidence=np.asarray(confidence), lifted=lifted, valid=not reason,
                reason=reason)


def _invalid_person(box, num_landmarks: int, num_basis: int, reason: str) -> Person:
  nan = lambda *shape: np.full(shape, np.nan, np.float32)  # noqa: E731
  lifted = lifting.LiftResult(
      pose3d=nan(num_landmarks, 3), yaw=nan(), scale=nan(), coeffs=nan(num_basis), component=np.int32(-1),
      cost=nan(), reprojected=nan(num_landmarks, 2), size=nan(), mahalanobis=nan(),
      residual=nan(), plausible=np.bool_(False), valid=np.bool_(False))
  return Person(box=np.asarray(box, np.float64), keypoints=nan(num_landmarks, 2),
                confidence=np.zeros(num_landmarks, np.float32), lifted=lifted, valid=False,
                reason=reason)
