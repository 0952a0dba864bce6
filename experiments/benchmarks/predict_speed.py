r"""Speed of `lift3d.predict` on pictures, and the lifting's share of a forward pass (issue 14).

  python -m experiments.benchmarks.predict_speed [--quick] [--skip_paper] [--pose_model M.npz]

Prints
- pictures/s of `lift3d.predict` (640×480 renders, one box each, batches of 8
  pictures, compile excluded) for the small configuration
  (experiments/configs/parts/cpm.py, 64×64 crops) and the paper's (368×368
  crops, 6 stages, 46×46 maps, 100 yaws), with one scale and with the default
  three, and the plain CPM (no per-stage lifting) in the same process as the
  baseline;
- at the paper configuration, batch 1, the share of the forward pass spent
  in the per-stage lifting + projected maps + fusion, measured twice: as the
  time of the fused network minus the plain one (same weights), and directly,
  by timing (S + 1) jitted lifts of one set of maps with their projected maps
  and fusion.
Speed does not depend on the weights, so the networks are freshly initialised.
"""

from __future__ import annotations

import argparse
import time


def _time(fn, repeats: int) -> tuple[float, float]:
  """(first call seconds, mean seconds of `repeats` later calls)."""
  import jax

  start = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn())
  return first, (time.perf_counter() - start) / repeats


def _networks(model_cfg, input_size, pose_model):
  """(fused Network, plain Network) sharing every weight but the fusion logits."""
  import jax

  from lift3d import inference
  from lift3d.models import cpm

  fields = dict(model_cfg.to_dict())
  fields["trunk_features"] = tuple(int(f) for f in fields["trunk_features"])
  fused = cpm.CPM(fusion=True, **fields)
  plain = cpm.CPM(fusion=False, **fields)
  params = cpm.init(fused, jax.random.key(0), (input_size, input_size), pose_model)
  plain_params = {k: v for k, v in params.items() if k != "fusion_logits"}
  return (inference.Network(fused, params, input_size, pose_model=pose_model),
          inference.Network(plain, plain_params, input_size, pose_model=pose_model))


def _predict_rate(network, pictures, boxes, scales, repeats: int) -> float:
  from lift3d import inference

  def run():
    people = inference.predict(network, None, pictures, boxes, scales=scales)
    return people[-1][-1].keypoints

  _, seconds = _time(run, repeats)
  return len(pictures) / seconds


def _forward_share(fused, plain, pose_model, repeats: int):
  """Seconds of the fused and plain forward passes, and of the lifting parts alone."""
  import functools

  import jax
  import jax.numpy as jnp
  import numpy as np

  from lift3d import lifting
  from lift3d.models import belief_maps

  size = fused.input_size
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, size, size, 3), np.uint8))
  forward = lambda net: jax.jit(lambda p, x: net.model.apply({"params": p}, x, pose_model).fused)  # noqa: E731
  fused_fn, plain_fn = forward(fused), forward(plain)
  _, fused_s = _time(lambda: fused_fn(fused.params, images), repeats)
  _, plain_s = _time(lambda: plain_fn(plain.params, images), repeats)

  model = fused.model
  grid = size // model.stride
  maps = jax.random.uniform(jax.random.key(1), (1, grid, grid, model.num_landmarks))

  @functools.partial(jax.jit, static_argnames=("stages",))
  def lifting_parts(maps, stages):
    # What the fused network adds per stage (and once after the last).
    out = maps
    for _ in range(stages):
      points, confidence = belief_maps.maps_to_points(out, model.subpixel)
      result = lifting.lift(pose_model, points, jnp.clip(confidence, 0, 1),
                            num_yaws=model.num_yaws)
      safe = jnp.where(result.valid[:, None, None], result.reprojected, 0.0)
      projected = belief_maps.gaussian_maps(safe, grid, grid, model.sigma)
      out = 0.5 * out + 0.5 * projected
    return out

  _, parts_s = _time(lambda: lifting_parts(maps, model.num_stages + 1), repeats)
  return fused_s, plain_s, parts_s


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="fewer repeats")
  parser.add_argument("--skip_paper", action="store_true", help="skip the 368×368 model")
  parser.add_argument("--pose_model", default=None, help="pose model .npz (fitted if absent)")
  args = parser.parse_args()

  import jax

  from experiments.benchmarks.cpm_throughput import _pose_model
  from experiments.configs.parts import cpm as cpm_part
  from lift3d import inference
  from lift3d.data import mocap, synthetic

  pose_model = _pose_model(args.pose_model)
  poses = mocap.load_embedded().poses[::97][:8]
  source = synthetic.SyntheticPoseSource(poses, image_size=(480, 640), seed=0, length=8,
                                         person_size=(0.3, 0.6))
  pictures = [source[i]["image"] for i in range(8)]
  boxes = [inference.box_from_keypoints(source[i]["keypoints2d"])[None] for i in range(8)]
  repeats = 1 if args.quick else 3
  print(f"backend {jax.default_backend()}, {jax.device_count()} device(s); pictures 640×480, "
        f"one box each, batches of {len(pictures)}")

  configs = [("small", cpm_part.get().model, cpm_part.get().image_size)]
  if not args.skip_paper:
    configs.append(("paper", cpm_part.paper_model(), 368))
  for name, model_cfg, size in configs:
    fused, plain = _networks(model_cfg, size, pose_model)
    count = len(pictures) if name == "small" else 2
    for scales in ((1.0,), inference.DEFAULT_SCALES):
      rates = [_predict_rate(net, pictures[:count], boxes[:count], scales, repeats)
               for net in (fused, plain)]
      print(f"| {name} ({size} px), scales {scales} | fused {rates[0]:.2f} pictures/s | "
            f"plain {rates[1]:.2f} pictures/s | fused/plain {rates[0] / rates[1]:.2f} |")
    if name == "paper":
      fused_s, plain_s, parts_s = _forward_share(fused, plain, pose_model, repeats)
      print(f"| paper forward, batch 1 | fused {fused_s * 1e3:.0f} ms | plain "
            f"{plain_s * 1e3:.0f} ms | (fused − plain)/fused "
            f"{100 * (fused_s - plain_s) / fused_s:.1f}% | lifting+projection+fusion alone "
            f"{parts_s * 1e3:.1f} ms = {100 * parts_s / fused_s:.2f}% of the fused forward |")


if __name__ == "__main__":
  main()
