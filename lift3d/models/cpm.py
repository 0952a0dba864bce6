"""A multi-stage Convolutional Pose Machine with projected belief maps and fusion.

Paper §5, docs/method.md §5–§6. An image trunk computes features at stride `s`; stage 1
predicts L+1 belief maps (L landmarks and the background) from them; every
later stage sees the trunk features and the previous stage's *fused* maps.
At every stage (when `fusion` is on):

  CNN maps b -> 2D landmarks and confidences (arg-max, optional sub-pixel)
  -> `lift3d.lift` with the mixture-of-PPCA pose model -> reprojected landmarks
  -> projected maps b̂ (Gaussians at them) -> f = ω b + (1 − ω) b̂,

with ω = sigmoid(free parameter) per stage and landmark. After the last stage
the fused maps are lifted once more for the 3D output. `fusion=False` is the
plain multi-stage CPM (the paper's baseline): f = b, and only the final lift.

The final landmarks are the arg-max cells of the last fused maps, but their
confidences (the final lift's weights, and what `predict` thresholds) are the
last stage's *CNN* maps b at those cells, not the fused maps' peaks: b̂ peaks
at 1 wherever the lift puts a joint, so f's peak is at least (1 − ω) whatever
the image shows, and would make a faint or absent person look confident and
weight hidden joints like visible ones (issue 17). For the plain CPM the two
are the same.

The pose model is an argument of `apply`, never a Flax parameter. Gradients do
not flow through the lifting unless `differentiable_lift` (supplementary §1:
same results without them).

Where a lift fails (`valid` False, e.g. no person in the image) the projected
maps are replaced by the CNN maps, so the fused maps equal the CNN maps and no
NaN reaches the loss. The background channel is not lifted: its fused map is
the CNN's.

Shape letters: B batch, S stages, H, W map grid, L landmarks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from lift3d.models import belief_maps
from lift3d.pose_model.model import PoseModel


def _lift(pose_model, keypoints, visibility, *, num_yaws, differentiable):
  # Imported here so that the network parts work (and are testable) without
  # the lifting module's import cost at import time of this module.
  from lift3d import lifting

  return lifting.lift(
      pose_model, keypoints, visibility, num_yaws=num_yaws, differentiable=differentiable
  )


@flax.struct.dataclass
class CPMOutput:
  """Everything one forward pass computes.

  Attributes:
    belief: (S, B, H, W, L+1) the CNN's maps at every stage (landmarks, then
      background).
    projected: (S, B, H, W, L) projected belief maps b̂; equal to the CNN's
      landmark maps where the stage's lift is invalid, and zeros for the plain
      CPM (no per-stage lift).
    fused: (S, B, H, W, L+1) fused maps f (= belief for the plain CPM).
    reprojected: (S, B, L, 2) each stage's reprojected landmarks, grid
      coordinates (NaN where the lift is invalid, and for the plain CPM).
    stage_valid: (S, B) bool, whether each stage's lift was valid (False for
      the plain CPM).
    fusion_weight: (S, L) ω in [0, 1] (ones for the plain CPM).
    keypoints: (B, L, 2) landmarks from the last fused maps, grid coordinates
      (column, row).
    confidence: (B, L) the last stage's CNN landmark maps b at their arg-max
      cells (for the plain CPM: the maps' peaks).
    lifted: the `lift3d.lift` result of the last fused maps (pose3d in mm,
      reprojected in grid coordinates, valid).
  """

  belief: jax.Array
  projected: jax.Array
  fused: jax.Array
  reprojected: jax.Array
  stage_valid: jax.Array
  fusion_weight: jax.Array
  keypoints: jax.Array
  confidence: jax.Array
  lifted: Any


class _Stage(nn.Module):
  """One CPM stage: convolutions -> L+1 belief maps."""

  num_maps: int
  features: int
  kernel: int
  num_convs: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(nn.Conv, dtype=self.dtype)
    for _ in range(self.num_convs):
      x = nn.relu(conv(self.features, (self.kernel, self.kernel))(x))
    x = nn.relu(conv(self.features, (1, 1))(x))
    return conv(self.num_maps, (1, 1))(x)


class CPM(nn.Module):
  """Multi-stage CPM with projected belief maps and learned fusion (linen).

  Attributes:
    num_landmarks: L.
    num_stages: S (paper: 6).
    trunk_features: channels of each trunk block; a 2×2 max-pool precedes every
      block but the first, so the stride is 2**(len - 1) (paper: 8).
    trunk_convs: 3×3 convolutions per trunk block.
    feature_channels: channels of the trunk's output features.
    stage_features: channels inside each stage.
    stage1_kernel: kernel size of stage 1's convolutions.
    stage_kernel: kernel size of the later stages' convolutions (paper CPM: 7).
    stage_convs: k×k convolutions per stage (then two 1×1).
    fusion: fuse projected belief maps (False: the plain CPM).
    sigma: standard deviation of projected (and target) maps, grid cells.
    subpixel: "argmax" or "quadratic" (see `belief_maps.maps_to_points`).
    num_yaws: yaw bins of the lifting search (paper: 80–100).
    differentiable_lift: let gradients flow through the lifting's chosen
      least-squares solution (default: stopped).
    fusion_init_logit: initial free parameter of ω (0 gives ω = 0.5).
    dtype: computation dtype of the convolutions (e.g. `jnp.bfloat16` for
      mixed precision); parameters stay float32, and the belief maps are cast
      to float32 before the lifting, the fusion and the loss.
    centre_map: the images carry a fourth channel, the person-centre map
      (`lift3d.data.augment.centre_map`, scaled like the colours), which is
      average-pooled to the map grid and given to every stage (as in the CPM).
  """

  num_landmarks: int = 17
  num_stages: int = 6
  trunk_features: Sequence[int] = (64, 128, 256, 512)
  trunk_convs: int = 2
  feature_channels: int = 128
  stage_features: int = 128
  stage1_kernel: int = 3
  stage_kernel: int = 7
  stage_convs: int = 5
  fusion: bool = True
  sigma: float = 1.0
  subpixel: str = "argmax"
  num_yaws: int = 100
  differentiable_lift: bool = False
  fusion_init_logit: float = 0.0
  dtype: Any = jnp.float32
  centre_map: bool = False

  @property
  def channels(self) -> int:
    """Input channels: RGB, and the centre map when `centre_map`."""
    return 4 if self.centre_map else 3

  @property
  def stride(self) -> int:
    """Input pixels per belief-map cell."""
    return 2 ** (len(self.trunk_features) - 1)

  def _lift_maps(self, maps: jax.Array, pose_model: PoseModel,
                 confidence_maps: jax.Array | None = None):
    """Landmarks from (B, H, W, L) maps, and their lift.

    The lift's weights are the maps' peaks, or the values of
    `confidence_maps` (B, H, W, L) at the maps' arg-max cells.
    """
    if not self.differentiable_lift:
      # Nothing of the lifting enters the backward pass.
      maps = jax.lax.stop_gradient(maps)
      if confidence_maps is not None:
        confidence_maps = jax.lax.stop_gradient(confidence_maps)
    points, confidence = belief_maps.maps_to_points(maps, self.subpixel)
    if confidence_maps is not None:
      cells, _ = belief_maps.maps_to_points(maps, "argmax")
      confidence = belief_maps.sample_cells(confidence_maps, cells)
    visibility = jnp.clip(confidence, 0.0, 1.0)
    result = _lift(
        pose_model, points, visibility, num_yaws=self.num_yaws,
        differentiable=self.differentiable_lift,
    )
    return points, confidence, result

  @nn.compact
  def __call__(self, images: jax.Array, pose_model: PoseModel) -> CPMOutput:
    """Runs every stage.

    Args:
      images: (B, H·s, W·s, C) uint8 (0..255) or float in [0, 1]; C = 3, or 4
        with the centre map last when `centre_map`.
      pose_model: the mixture-of-PPCA pose model (not trained here).

    Returns:
      A `CPMOutput`.
    """
    num_maps = self.num_landmarks + 1
    x = images.astype(jnp.float32)
    if jnp.issubdtype(images.dtype, jnp.integer):
      x = x / 255.0
    x = x - 0.5
    # nn.Conv casts its inputs to `dtype`: with bfloat16 everything up to the
    # belief maps computes in bfloat16.
    conv = functools.partial(nn.Conv, dtype=self.dtype)
    centre = None
    if self.centre_map:
      # The centre map at the grid (a stride×stride average), beside the
      # features of every stage.
      x, centre = x[..., :3], x[..., 3:] + 0.5
      centre = nn.avg_pool(centre, (self.stride, self.stride), strides=(self.stride,) * 2)
    for i, features in enumerate(self.trunk_features):
      if i > 0:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      for _ in range(self.trunk_convs):
        x = nn.relu(conv(features, (3, 3))(x))
    features = nn.relu(conv(self.feature_channels, (3, 3), name="trunk_out")(x))
    height, width = features.shape[-3], features.shape[-2]

    if self.fusion:
      logits = self.param(
          "fusion_logits", nn.initializers.constant(self.fusion_init_logit),
          (self.num_stages, self.num_landmarks),
      )
      omega = jax.nn.sigmoid(logits)
    else:
      omega = jnp.ones((self.num_stages, self.num_landmarks), jnp.float32)

    beliefs, projections, fuseds, reprojections, valids = [], [], [], [], []
    previous = None
    for t in range(self.num_stages):
      stage_in = features if previous is None else jnp.concatenate([features, previous], -1)
      if centre is not None:
        stage_in = jnp.concatenate([stage_in, centre], -1)
      belief = _Stage(
          num_maps, self.stage_features, self.stage1_kernel if t == 0 else self.stage_kernel,
          self.stage_convs, dtype=self.dtype, name=f"stage_{t}",
      )(stage_in)
      # Mixed precision: everything after the CNN (lifting, fusion, loss) in float32.
      belief = belief.astype(jnp.float32)
      landmark_maps = belief[..., : self.num_landmarks]
      # The lifting has no parameters: skip it while initialising (fast init).
      if self.fusion and not self.is_initializing():
        _, _, result = self._lift_maps(landmark_maps, pose_model)
        reprojected = result.reprojected
        # Every lift that produced a pose is fused, as in the paper; its
        # plausibility (`result.valid`, docs/method.md §4.5) is left to the final
        # output, so that early in training, when the maps are noise, the
        # projected maps still reach the loss.
        valid = (result.component >= 0) & jnp.all(jnp.isfinite(reprojected), axis=(-2, -1))
        # Double `where`: NaN never enters the Gaussian (nor its gradient).
        safe = jnp.where(valid[:, None, None], reprojected, 0.0)
        projected = belief_maps.gaussian_maps(safe, height, width, self.sigma)
        projected = jnp.where(valid[:, None, None, None], projected, landmark_maps)
        fused_landmarks = omega[t] * landmark_maps + (1.0 - omega[t]) * projected
        fused_landmarks = jnp.where(valid[:, None, None, None], fused_landmarks, landmark_maps)
        fused = jnp.concatenate([fused_landmarks, belief[..., self.num_landmarks :]], -1)
      else:
        projected = jnp.zeros_like(landmark_maps)
        reprojected = jnp.full((belief.shape[0], self.num_landmarks, 2), jnp.nan, belief.dtype)
        valid = jnp.zeros(belief.shape[0], bool)
        fused = belief
      beliefs.append(belief)
      projections.append(projected)
      fuseds.append(fused)
      reprojections.append(jnp.where(valid[:, None, None], reprojected, jnp.nan))
      valids.append(valid)
      previous = fused

    if self.is_initializing():
      keypoints = confidence = lifted = None
    else:
      # Confidences from the CNN's own last maps (see the module docstring).
      keypoints, confidence, lifted = self._lift_maps(
          previous[..., : self.num_landmarks], pose_model,
          confidence_maps=beliefs[-1][..., : self.num_landmarks] if self.fusion else None,
      )
    return CPMOutput(
        belief=jnp.stack(beliefs),
        projected=jnp.stack(projections),
        fused=jnp.stack(fuseds),
        reprojected=jnp.stack(reprojections),
        stage_valid=jnp.stack(valids),
        fusion_weight=omega,
        keypoints=keypoints,
        confidence=confidence,
        lifted=lifted,
    )


@flax.struct.dataclass
class Prediction:
  """What `predict` returns.

  Attributes:
    keypoints2d: (B, L, 2) landmarks, image pixels (x right, y down).
    confidence: (B, L) the last stage's CNN belief-map values at the
      landmarks (`CPMOutput.confidence`; about 1 for a
      confident detection, about 0 for none).
    pose3d: (B, L, 3) lifted pose, millimetres, y up, root-centred camera
      frame (meaningless where not `valid`).
    valid: (B,) bool: the lift succeeded and the mean confidence reached the
      threshold; False for an image with no person.
    output: the full `CPMOutput` (maps of every stage, in grid coordinates).
  """

  keypoints2d: jax.Array
  confidence: jax.Array
  pose3d: jax.Array
  valid: jax.Array
  output: CPMOutput


def check_images(images, model: CPM) -> None:
  """ValueError unless `images` is (B, H, W, model.channels), H and W multiples of the stride."""
  shape = np.shape(images)
  if len(shape) != 4 or shape[-1] != model.channels:
    hint = (" (RGB and the centre map: lift3d.data.augment.with_centre_map)" if model.centre_map
            else "")
    raise ValueError(f"expected images (B, H, W, {model.channels}){hint}, got {shape}")
  if shape[1] % model.stride or shape[2] % model.stride:
    raise ValueError(
        f"image size {shape[1]}×{shape[2]} is not a multiple of the network stride "
        f"{model.stride}; crop or resize the images"
    )


def check_pose_model(pose_model: PoseModel, model: CPM) -> None:
  """ValueError unless the pose model has the network's number of landmarks."""
  if pose_model.num_joints != model.num_landmarks:
    raise ValueError(
        f"pose model has {pose_model.num_joints} joints but the network predicts "
        f"{model.num_landmarks} landmarks"
    )


def _predict(params, model: CPM, images, pose_model, min_confidence):
  output = model.apply({"params": params}, images, pose_model)
  keypoints = belief_maps.grid_to_pixels(output.keypoints, model.stride)
  valid = output.lifted.valid & (jnp.mean(output.confidence, axis=-1) >= min_confidence)
  valid = valid & jnp.all(jnp.isfinite(output.lifted.pose3d), axis=(-2, -1))
  return Prediction(
      keypoints2d=keypoints,
      confidence=output.confidence,
      pose3d=output.lifted.pose3d,
      valid=valid,
      output=output,
  )


_predict_jit = jax.jit(_predict, static_argnames=("model",))


def predict(
    params, model: CPM, images, pose_model: PoseModel, *, min_confidence: float = 0.2
) -> Prediction:
  """2D landmarks, 3D poses and per-frame validity for a batch of images.

  Args:
    params: the network's parameters (`variables["params"]`).
    model: the `CPM` module.
    images: (B, H, W, C) uint8 0..255 (or float in [0, 1]); H and W multiples
      of `model.stride`; C = `model.channels` (the centre map fourth).
    pose_model: the pose model used for lifting (L joints).
    min_confidence: a frame is valid only if its mean landmark confidence is at
      least this.

  Returns:
    A `Prediction`; never raises for an image without a person (its `valid` is
    False instead).
  """
  check_images(images, model)
  check_pose_model(pose_model, model)
  return _predict_jit(params, model, jnp.asarray(images), pose_model, float(min_confidence))


def init(model: CPM, key: jax.Array, image_shape: tuple[int, int], pose_model: PoseModel):
  """Initial parameters of `model` for images of `image_shape` (H, W) pixels.

  Args:
    model: the `CPM` module.
    key: a jax.random key.
    image_shape: (H, W) pixels, multiples of the stride.
    pose_model: a pose model with `model.num_landmarks` joints.

  Returns:
    The `params` collection (a pytree of float32 arrays).
  """
  image_shape = tuple(int(s) for s in image_shape)
  check_images(np.zeros((1, *image_shape, model.channels), np.uint8), model)
  check_pose_model(pose_model, model)
  return _init_jit(_init_key(key), pose_model, model=model, image_shape=image_shape)


@functools.partial(jax.jit, static_argnames=("model", "image_shape"))
def _init_jit(key, pose_model, *, model, image_shape):
  images = jnp.zeros((1, *image_shape, model.channels), jnp.uint8)
  return model.init(key, images, pose_model)["params"]


def _init_key(key: jax.Array) -> jax.Array:
  """An 'rbg' key derived from `key` (a 'rbg' key is returned unchanged).

  Flax's initialisers compile for seconds per layer with threefry keys on CPU;
  XLA's RngBitGenerator ('rbg') is as good for drawing initial weights and
  compiles in a fraction of that time.
  """
  if str(jax.random.key_impl(key)) in ("rbg", "unsafe_rbg"):
    return key
  data = jax.random.key_data(key).ravel().astype(jnp.uint32)
  data = jnp.concatenate([data, data[::-1] ^ jnp.uint32(0x9E3779B9)])
  return jax.random.wrap_key_data(jnp.resize(data, (4,)), impl="rbg")
