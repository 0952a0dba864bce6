"""Tests of the CPM with projected belief maps and fusion (lift3d.models.cpm)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lift3d.models import cpm
from tests.float32_bounds import ULPS_PER_FUNCTION, assert_within, bound
from tests.models import tiny

L = tiny.NUM_LANDMARKS
BATCH = 3
GRID = tiny.IMAGE_SIZE // tiny.MODEL.stride


@functools.cache
def _setup():
  pose_model = tiny.pose_model()
  params = cpm.init(tiny.MODEL, jax.random.key(0), (tiny.IMAGE_SIZE,) * 2, pose_model)
  source = tiny.BlobSource(BATCH)
  images = np.stack([source[i]["image"] for i in range(BATCH)])
  prediction = jax.device_get(cpm.predict(params, tiny.MODEL, images, pose_model))
  return pose_model, params, images, prediction


def test_forward_shapes_of_every_stage():
  _, params, _, pred = _setup()
  stages = tiny.MODEL.num_stages
  out = pred.output
  assert out.belief.shape == (stages, BATCH, GRID, GRID, L + 1)
  assert out.projected.shape == (stages, BATCH, GRID, GRID, L)
  assert out.fused.shape == (stages, BATCH, GRID, GRID, L + 1)
  assert out.reprojected.shape == (stages, BATCH, L, 2)
  assert out.stage_valid.shape == (stages, BATCH)
  assert out.fusion_weight.shape == (stages, L)
  assert out.keypoints.shape == (BATCH, L, 2) and out.confidence.shape == (BATCH, L)
  assert pred.keypoints2d.shape == (BATCH, L, 2)
  assert pred.pose3d.shape == (BATCH, L, 3) and pred.valid.shape == (BATCH,)
  # Every stage has its own parameters; later stages read features + fused maps.
  for t in range(stages):
    assert f"stage_{t}" in params
  features = tiny.MODEL.feature_channels
  assert params["stage_0"]["Conv_0"]["kernel"].shape[2] == features
  for t in range(1, stages):
    assert params[f"stage_{t}"]["Conv_0"]["kernel"].shape[2] == features + L + 1
  assert params["fusion_logits"].shape == (stages, L)
  np.testing.assert_allclose(out.fusion_weight, 0.5)  # sigmoid(0)
  assert np.all(np.isfinite(out.fused))
  # 2D output in pixels = grid coordinates mapped through the stride.
  np.testing.assert_allclose(
      pred.keypoints2d, out.keypoints * tiny.MODEL.stride + 0.5 * (tiny.MODEL.stride - 1))


def test_projected_maps_peak_at_reprojected_landmarks_and_fuse():
  _, _, _, pred = _setup()
  out = pred.output
  sigma = tiny.MODEL.sigma
  assert out.stage_valid.any(), "the tiny model's lifts should be valid"
  checked = 0
  for t, b in zip(*np.nonzero(out.stage_valid), strict=True):
    for j in range(L):
      u, v = out.reprojected[t, b, j]
      maps = out.projected[t, b, :, :, j]
      # Closed form at every cell.
      cols, rows = np.meshgrid(np.arange(GRID), np.arange(GRID))
      exponent = ((cols - u) ** 2 + (rows - v) ** 2) / (2 * sigma**2)
      expected = np.exp(-exponent)
      # float32: the exponent errs relatively (a difference, a square, a division), so
      # the map by map·exponent·γ; two exps and a product add a few ulp of the map.
      assert_within(maps, expected, bound(expected * (1 + exponent), 6 + 2 * ULPS_PER_FUNCTION))
      if 0 <= u <= GRID - 1 and 0 <= v <= GRID - 1:
        row, col = np.unravel_index(np.argmax(maps), maps.shape)
        assert abs(col - u) <= 0.5 + 1e-4 and abs(row - v) <= 0.5 + 1e-4
        checked += 1
    # f = ω b + (1 − ω) b̂ on the landmarks; the background is the CNN's.
    omega = out.fusion_weight[t]
    belief, projected = out.belief[t, b, ..., :L], out.projected[t, b]
    # Two products, a difference and a sum, on terms of size ω|b| + (1 − ω)|b̂|.
    assert_within(out.fused[t, b, ..., :L], omega * belief + (1 - omega) * projected,
                  bound(np.abs(omega * belief) + np.abs((1 - omega) * projected), 4))
    np.testing.assert_allclose(out.fused[t, b, ..., L], out.belief[t, b, ..., L])
  assert checked > 0
  # Invalid lifts fall back to the CNN's maps.
  for t, b in zip(*np.nonzero(~out.stage_valid), strict=True):
    np.testing.assert_array_equal(out.fused[t, b], out.belief[t, b])


def test_fusion_with_unit_weight_equals_the_plain_cpm():
  pose_model, params, images, pred = _setup()
  plain_model = tiny.MODEL.clone(fusion=False)
  plain_params = {k: v for k, v in params.items() if k != "fusion_logits"}
  # The plain CPM has the same parameters, minus the fusion weights.
  blank = jnp.zeros((1, tiny.IMAGE_SIZE, tiny.IMAGE_SIZE, 3), jnp.uint8)
  plain_shapes = jax.eval_shape(plain_model.init, jax.random.key(0), blank, pose_model)["params"]
  assert jax.tree.structure(plain_params) == jax.tree.structure(plain_shapes)
  one = dict(params, fusion_logits=jnp.full_like(params["fusion_logits"], 40.0))  # ω = 1
  fused = jax.device_get(cpm.predict(one, tiny.MODEL, images, pose_model)).output
  # The plain CPM's maps (its only lift, the final one, is pruned from this).
  plain_maps = jax.jit(lambda p, x: plain_model.apply({"params": p}, x, pose_model).fused)
  plain = np.asarray(plain_maps(plain_params, images))
  np.testing.assert_array_equal(fused.fusion_weight, 1.0)
  np.testing.assert_allclose(fused.belief, plain, atol=1e-6)
  np.testing.assert_allclose(fused.fused, plain, atol=1e-6)
  # ... whereas ω = 0.5 (the initial value) really fuses something.
  assert np.abs(pred.output.fused - plain).max() > 1e-3


def _zero_heads(params):
  """Parameters whose every stage outputs all-zero maps."""
  params = jax.tree.map(lambda x: x, params)
  for t in range(tiny.MODEL.num_stages):
    last = params[f"stage_{t}"][f"Conv_{tiny.MODEL.stage_convs + 1}"]
    params[f"stage_{t}"][f"Conv_{tiny.MODEL.stage_convs + 1}"] = jax.tree.map(jnp.zeros_like, last)
  return params


def test_image_without_a_person_is_invalid_not_an_error():
  pose_model, params, images, _ = _setup()
  blank = np.full_like(images, 90)
  pred = jax.device_get(cpm.predict(_zero_heads(params), tiny.MODEL, blank, pose_model))
  np.testing.assert_array_equal(pred.confidence, 0.0)
  assert not pred.valid.any()
  assert not pred.output.stage_valid.any()
  out = pred.output
  assert np.all(np.isfinite(out.fused)) and np.all(np.isfinite(out.projected))
  np.testing.assert_array_equal(out.fused, out.belief)  # fell back to the CNN maps
  # A confident detection on the other hand: raise the confidence threshold
  # above 1 and nothing is valid either, lower it to 0 and the lift decides.
  pred = jax.device_get(cpm.predict(params, tiny.MODEL, images, pose_model, min_confidence=2.0))
  assert not pred.valid.any()


def test_bad_inputs_raise_value_errors():
  pose_model, params, images, _ = _setup()
  with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
    cpm.predict(params, tiny.MODEL, images[0], pose_model)
  with pytest.raises(ValueError, match="multiple of the network stride"):
    cpm.predict(params, tiny.MODEL, images[:, :15, :15], pose_model)
  small = tiny.pose_model().replace(mean=jnp.zeros((1, 16, 3)))
  with pytest.raises(ValueError, match="16 joints"):
    cpm.predict(params, tiny.MODEL, images, small)


def test_init_is_deterministic_per_key():
  pose_model = tiny.pose_model()
  shape = (tiny.IMAGE_SIZE,) * 2
  a = cpm.init(tiny.MODEL, jax.random.key(3), shape, pose_model)
  b = cpm.init(tiny.MODEL, jax.random.key(3), shape, pose_model)
  c = cpm.init(tiny.MODEL, jax.random.key(4), shape, pose_model)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a["stage_0"]["Conv_0"]["kernel"], c["stage_0"]["Conv_0"]["kernel"])


@pytest.mark.slow
def test_differentiable_lift_switch_controls_gradients_through_the_lifting():
  pose_model, params, images, _ = _setup()

  def projected_sum(p, model):
    return jnp.sum(model.apply({"params": p}, images, pose_model).projected[0])

  for differentiable in (False, True):
    model = tiny.MODEL.clone(differentiable_lift=differentiable)
    grads = jax.jit(jax.grad(projected_sum), static_argnums=1)(params, model)
    norm = float(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads["stage_0"])))
    assert np.isfinite(norm)
    # Stage 0's projected maps depend on its parameters only through the lift.
    if differentiable:
      assert norm > 0
    else:
      assert norm == 0


def test_faint_maps_are_not_made_confident_by_the_projected_maps():
  # Heads scaled down: every CNN map is faint (|b| < 0.05) yet its lifts are
  # valid (weights > 0), so b̂ (peak 1) lifts the fused maps' peaks to about
  # 1 − ω = 0.5. The confidence, and so `valid`, must follow the CNN's maps:
  # the fused maps' peaks would call this faint image a confident person.
  pose_model, params, images, _ = _setup()
  faint = jax.tree.map(lambda x: x, params)
  for t in range(tiny.MODEL.num_stages):
    name = f"Conv_{tiny.MODEL.stage_convs + 1}"
    faint[f"stage_{t}"][name] = jax.tree.map(lambda x: 1e-3 * x, params[f"stage_{t}"][name])
  pred = jax.device_get(cpm.predict(faint, tiny.MODEL, images, pose_model))
  out = pred.output
  landmarks = out.belief[..., :L]
  assert np.abs(landmarks).max() < 0.05
  assert out.stage_valid[-1].all(), "the faint maps' lifts are valid: b̂ is fused"
  fused_peaks = out.fused[-1, ..., :L].max(axis=(1, 2))
  assert fused_peaks.min() > 0.3
  # The confidence is the last CNN maps' value at the fused arg-max cell.
  cells = np.rint(out.keypoints).astype(int)
  for b in range(BATCH):
    for j in range(L):
      col, row = cells[b, j]
      assert pred.confidence[b, j] == out.belief[-1, b, row, col, j]
  assert np.all(pred.confidence < 0.05)
  assert not pred.valid.any()
