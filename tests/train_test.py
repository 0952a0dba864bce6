"""Tests of lift3d.train: targets, loss, training, resuming, data parallelism."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from lift3d import train
from lift3d.models import belief_maps
from tests.float32_bounds import assert_within, bound
from tests.models import tiny

L = tiny.NUM_LANDMARKS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One optimiser and batch size for every test: one compiled training step.
SETTINGS = dict(batch_size=4, optimizer="adam", learning_rate=1e-2, schedule="constant",
                log_every=1, num_threads=1, progress=False)


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_target_maps_and_weights():
  keypoints = np.array([[[5.5, 9.5], [np.nan, np.nan], [1.5, 1.5]]], np.float32)  # pixels
  visibility = np.array([[1.0, 0.0, 0.0]], np.float32)
  stride = 4  # pixel 5.5 -> cell 1, pixel 9.5 -> cell 2, pixel 1.5 -> cell 0
  targets, weights = train.target_maps(
      jnp.asarray(keypoints), jnp.asarray(visibility), 4, 4, stride=stride, sigma=1.0)
  targets, weights = np.asarray(targets), np.asarray(weights)
  assert targets.shape == (1, 4, 4, 4) and weights.shape == (1, 4)
  assert targets[0, 2, 1, 0] == pytest.approx(1.0)  # row 2, column 1
  assert targets[0, 0, 0, 2] == pytest.approx(1.0)
  assert targets[0, 0, 1, 0] == pytest.approx(np.exp(-(4 + 0) / 2.0), rel=1e-5)
  np.testing.assert_array_equal(targets[0, ..., 1], 0.0)  # no label, no target
  np.testing.assert_allclose(targets[0, ..., 3], 1 - targets[0, ..., :3].max(-1), atol=1e-6)
  # Every labelled landmark counts (occluded ones too), unlabelled ones do not.
  np.testing.assert_array_equal(weights, [[1.0, 0.0, 1.0, 1.0]])
  _, masked = train.target_maps(jnp.asarray(keypoints), jnp.asarray(visibility), 4, 4,
                                stride=stride, sigma=1.0, mask_invisible=True)
  np.testing.assert_array_equal(np.asarray(masked), [[1.0, 0.0, 0.0, 1.0]])


def test_loss_closed_form():
  rng = np.random.default_rng(0)
  targets = rng.uniform(size=(2, 3, 3, 4)).astype(np.float32)
  weights = np.array([[1, 0, 1, 1], [1, 1, 0.5, 1]], np.float32)
  fused = rng.uniform(size=(3, 2, 3, 3, 4)).astype(np.float32)  # (S, B, H, W, L+1)
  loss, per_stage = train.cpm_loss(jnp.asarray(fused), jnp.asarray(targets), jnp.asarray(weights))
  f64, t64, w64 = (x.astype(np.float64) for x in (fused, targets, weights))
  expected = np.array([
      np.mean([np.sum(w64[b] * (f64[t, b] - t64[b]) ** 2) for b in range(2)]) for t in range(3)
  ])
  # Sums of non-negative terms (nothing cancels): γ of the 2·3·3·4-term sum and the
  # subtraction, square, weight and mean, relative to the result.
  depth = fused[0].size + 4
  assert_within(per_stage, expected, bound(expected, depth))
  assert_within(loss, expected.sum(), bound(expected.sum(), depth + 3))
  zero, _ = train.cpm_loss(jnp.asarray(np.broadcast_to(targets, fused.shape)),
                           jnp.asarray(targets), jnp.asarray(weights))
  assert float(zero) == 0.0


def test_training_lowers_the_loss_and_every_stage_gets_gradients(tmp_path):
  # Four examples, batch of four: every step sees the whole set.
  train.train(tiny.MODEL, tiny.pose_model(), tiny.BlobSource(4), str(tmp_path),
              num_steps=12, ckpt_every=100, **SETTINGS)
  records = _metrics(tmp_path)
  assert [r["step"] for r in records] == list(range(1, 13))
  losses = np.array([r["loss"] for r in records])
  assert np.all(np.isfinite(losses))
  assert losses[-3:].mean() < 0.9 * losses[:3].mean(), losses
  grads = records[0]["module_grad_norm"]
  for t in range(tiny.MODEL.num_stages):
    assert grads[f"stage_{t}"] > 0, grads
  assert grads["fusion_logits"] > 0 and grads["trunk_out"] > 0 and grads["Conv_0"] > 0, grads
  assert all(0.0 <= v <= 1.0 for v in records[0]["stage_valid"])
  for r in records:
    # The loss is the sum of the per-stage losses; the global gradient norm
    # is the norm of the per-module norms; the rates are per batch of 4.
    assert sum(r["stage_loss"]) == pytest.approx(r["loss"], rel=1e-5)
    assert len(r["stage_loss"]) == tiny.MODEL.num_stages
    module_norms = np.array(list(r["module_grad_norm"].values()))
    assert r["grad_norm"] == pytest.approx(np.sqrt(np.sum(module_norms**2)), rel=1e-5)
    assert r["steps_per_s"] > 0 and r["images_per_s"] == pytest.approx(4 * r["steps_per_s"])
  # A final checkpoint is written even off the checkpoint period.
  with ocp.CheckpointManager(os.path.join(tmp_path, "checkpoints")) as manager:
    assert manager.latest_step() == 12


def test_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
  source, pose_model = tiny.BlobSource(10), tiny.pose_model()
  args = dict(num_steps=5, ckpt_every=2, seed=1, **SETTINGS)
  whole = train.train(tiny.MODEL, pose_model, source, str(tmp_path / "whole"), **args)
  # "Killed" after step 3: the last checkpoint is step 2.
  part = train.train(tiny.MODEL, pose_model, source, str(tmp_path / "part"), stop_at_step=3,
                     **args)
  assert int(part.step) == 3
  with ocp.CheckpointManager(os.path.join(tmp_path, "part", "checkpoints")) as manager:
    assert manager.latest_step() == 2
  # A new manager (as in a new process) resumes from step 2.
  resumed = train.train(tiny.MODEL, pose_model, source, str(tmp_path / "part"), **args)
  assert int(resumed.step) == int(whole.step) == 5
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
               jax.device_get(whole.params), jax.device_get(resumed.params))
  # The metrics log holds every step once, with the uninterrupted run's losses.
  part_log, whole_log = _metrics(tmp_path / "part"), _metrics(tmp_path / "whole")
  assert [r["step"] for r in part_log] == [1, 2, 3, 4, 5]
  np.testing.assert_allclose([r["loss"] for r in part_log], [r["loss"] for r in whole_log],
                             rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               train.restore_params(str(tmp_path / "part")), jax.device_get(whole.params))


_MULTI_DEVICE_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from lift3d import train
    from tests.models import tiny
    workdir, settings = sys.argv[1], json.loads(sys.argv[2])
    assert jax.device_count() == 4, jax.devices()
    state = train.train(tiny.MODEL, tiny.pose_model(), tiny.BlobSource(8), workdir,
                        num_steps=2, ckpt_every=100, **settings)
    leaf = jax.tree.leaves(state.params)[0]
    assert len(leaf.sharding.device_set) == 4, leaf.sharding
    np.savez(workdir + "/params.npz", *jax.tree.leaves(jax.device_get(state.params)))
""")


def test_four_devices_give_the_same_loss_and_parameters_as_one(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  multi = tmp_path / "multi"
  multi.mkdir()
  done = subprocess.run([sys.executable, "-c", _MULTI_DEVICE_SCRIPT, str(multi),
                         json.dumps(SETTINGS)], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert jax.device_count() == 1
  single = train.train(tiny.MODEL, tiny.pose_model(), tiny.BlobSource(8), str(tmp_path / "one"),
                       num_steps=2, ckpt_every=100, **SETTINGS)
  multi_log, single_log = _metrics(multi), _metrics(tmp_path / "one")
  np.testing.assert_allclose([r["loss"] for r in multi_log], [r["loss"] for r in single_log],
                             rtol=1e-5)
  with np.load(multi / "params.npz") as saved:
    multi_params = [saved[f"arr_{i}"] for i in range(len(saved.files))]
  single_params = jax.tree.leaves(jax.device_get(single.params))
  for a, b in zip(multi_params, single_params, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_bad_arguments():
  with pytest.raises(ValueError, match="schedule"):
    train.make_optimizer(schedule="linear")
  with pytest.raises(ValueError, match="empty"):
    train.batch_dataset([], batch_size=2, seed=0)
  with pytest.raises(ValueError, match="multiple of the network stride"):
    train.train(tiny.MODEL, tiny.pose_model(), tiny.BlobSource(4, size=15), "/nonexistent/x",
                num_steps=1, **SETTINGS)


def test_belief_map_grid_matches_target_convention():
  # A target drawn at a pixel is read back (arg-max, then to pixels) at the
  # centre of the pixel's cell: training and prediction share one convention.
  stride = 4
  px = jnp.array([[[9.0, 14.0]]])
  targets, _ = train.target_maps(px, jnp.ones((1, 1)), 8, 8, stride=stride, sigma=1.0)
  points, _ = belief_maps.maps_to_points(targets[..., :1], "argmax")
  back = belief_maps.grid_to_pixels(points, stride)
  np.testing.assert_allclose(np.asarray(back), [[[9.5, 13.5]]])


def test_bfloat16_cnn_trains_like_float32(tmp_path):
  source, pose_model = tiny.BlobSource(4), tiny.pose_model()
  args = dict(num_steps=50, ckpt_every=100, **SETTINGS)
  runs = {dtype: train.train(tiny.MODEL, pose_model, source, str(tmp_path / dtype), dtype=dtype,
                             **args)
          for dtype in ("float32", "bfloat16")}
  # Mixed precision: parameters and optimiser state stay float32.
  for leaf in jax.tree.leaves((runs["bfloat16"].params, runs["bfloat16"].opt_state)):
    assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
  # Every convolution computes in bfloat16; the maps reach the lifting, the
  # fusion and the loss as float32.
  model = tiny.MODEL.clone(dtype=jnp.bfloat16)
  batch = {k: np.stack([source[i][k] for i in range(2)]) for k in train.BATCH_KEYS}
  jaxpr = str(jax.make_jaxpr(lambda p: train.loss_fn(p, model, pose_model, batch))(
      jax.device_get(runs["bfloat16"].params)))
  convs = [line for line in jaxpr.splitlines() if "conv_general_dilated[" in line]
  num_convs = len(jax.tree.leaves(runs["float32"].params)) // 2  # a kernel and a bias each
  assert len(convs) >= num_convs and all(":bf16[" in line for line in convs), convs
  output = jax.eval_shape(lambda p: model.apply({"params": p}, batch["image"], pose_model),
                          runs["bfloat16"].params)
  assert output.fused.dtype == output.lifted.pose3d.dtype == jnp.float32

  losses = {d: np.array([r["loss"] for r in _metrics(tmp_path / d)]) for d in runs}
  single, half = losses["float32"], losses["bfloat16"]
  assert half[-5:].mean() < 0.8 * half[:5].mean(), half
  # Step 1 has the same parameters and data: bfloat16 rounds every activation
  # by at most 2^-9 relative, so after D convolutions the maps are off by
  # about D 2^-9 and the squared error by twice that (as long as no arg-max of
  # the lifting flips).
  assert abs(half[0] - single[0]) <= 2 * num_convs * 2.0**-9 * single[0], (half[0], single[0])
  # Later the two runs follow different (rounded) paths; stated tolerance:
  # 10% at every step, 5% over the last 10 steps.
  np.testing.assert_allclose(half, single, rtol=0.1)
  assert abs(half[-10:].mean() - single[-10:].mean()) <= 0.05 * single[-10:].mean()


def test_bad_dtype():
  with pytest.raises(ValueError, match="dtype must be one of"):
    train.train(tiny.MODEL, tiny.pose_model(), tiny.BlobSource(4), "/nonexistent/x",
                num_steps=1, dtype="float16", **SETTINGS)


def test_a_diverged_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
  # Adam with a learning rate of 1e30 overflows the parameters in one update.
  with pytest.raises(FloatingPointError, match=r"diverged.*checkpoint of step 1 is kept"):
    train.train(tiny.MODEL, tiny.pose_model(), tiny.BlobSource(4), str(tmp_path), num_steps=3,
                ckpt_every=1, batch_size=4, optimizer="adam", learning_rate=1e30,
                schedule="constant", log_every=1, num_threads=1, progress=False)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1"]
