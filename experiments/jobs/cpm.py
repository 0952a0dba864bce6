"""The CPM job: train the fused CPM on synthetic renders, evaluate, draw (docs/method.md §5–§6).

`run(config, workdir)` splits the corpus once (`experiments.settings`) and
calls `train_and_evaluate` with plain arguments:
1. the pose model: `experiments.jobs.pose_model.load_or_fit` (the workdir's
   `pose_model.npz`, or a fit of the training poses);
2. renders of the training poses (`lift3d.data.synthetic.SyntheticPoseSource`);
3. `lift3d.train.train` (orbax checkpoints under `<workdir>/checkpoints`,
   `<workdir>/metrics.jsonl`; resumes from the workdir);
4. `lift3d.predict`'s validity threshold `min_confidence`, chosen from the
   network's own confidences on held-out renders with and without a person
   (`calibrate_min_confidence`);
5. 2D pixel error, 3D MPJPE and PA-MPJPE on renders of the held-out poses
   (`lift3d.eval.cpm_evaluator.CPMEvaluator`, validity by that threshold),
   written to `<workdir>/cpm_eval.json` and `<workdir>/cpm_results.md`;
6. the figure `<workdir>/cpm_example.png`: image, belief maps, projected
   maps, fused maps and the 3D pose;
7. `<workdir>/network.json` (for `lift3d.load_network` / `lift3d export`),
   with the threshold, and `<workdir>/predict_example.png`: `lift3d.predict`
   on held-out renders pasted side by side, one box each (the path a user's
   pictures take).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import ml_collections
import numpy as np
from absl import logging

from experiments import settings
from lift3d import files, inference
from lift3d import train as lift_train
from lift3d.data import synthetic
from lift3d.eval.cpm_evaluator import CPMEvaluator
from lift3d.models import cpm


def draw_example(path: str, image: np.ndarray, prediction, index: int = 0,
                 truth3d: np.ndarray | None = None) -> None:
  """Saves a figure of one example: image and 2D pose, maps of the last stage, 3D pose.

  Args:
    path: PNG file to write.
    image: (H, W, 3) uint8.
    prediction: a batched `lift3d.models.cpm.Prediction` (numpy).
    index: which example of the batch.
    truth3d: optional (L, 3) true pose, millimetres, y up, root at 0.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from lift3d.viz.skeleton import draw_skeleton_2d, draw_skeleton_3d

  out = prediction.output
  num_landmarks = out.projected.shape[-1]
  maps = {
      r"belief maps $b$ (last stage)": out.belief[-1, index, ..., :num_landmarks].max(-1),
      r"projected maps $\hat{b}$": out.projected[-1, index].max(-1),
      r"fused maps $f$": out.fused[-1, index, ..., :num_landmarks].max(-1),
  }
  fig = plt.figure(figsize=(15, 3.4))
  ax = fig.add_subplot(1, 5, 1)
  ax.imshow(image)
  draw_skeleton_2d(ax, prediction.keypoints2d[index])
  ax.set_title(f"image, 2D (valid={bool(prediction.valid[index])})")
  ax.axis("off")
  for i, (title, m) in enumerate(maps.items()):
    ax = fig.add_subplot(1, 5, 2 + i)
    ax.imshow(m, cmap="magma", vmin=0.0, vmax=max(1.0, float(np.nanmax(m))))
    ax.set_title(title)
    ax.axis("off")
  ax = fig.add_subplot(1, 5, 5, projection="3d")
  if bool(prediction.valid[index]):
    draw_skeleton_3d(ax, prediction.pose3d[index])
  if truth3d is not None:
    draw_skeleton_3d(ax, truth3d, colour="0.6", alpha=0.6)
  ax.set_title("3D (grey: truth)")
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def network_config(model: cpm.CPM, render_kwargs: dict, eval_kwargs: dict) -> dict:
  """The workdir's `network.json`: the model, its input size and the training framing."""
  person_size = render_kwargs.get("person_size", synthetic.RenderOptions().person_size)
  return inference.network_config(
      model, input_size=int(render_kwargs["image_size"]),
      person_size=float(np.mean(person_size)),
      min_confidence=float(eval_kwargs.get("min_confidence", 0.2)))


PER_PICTURE = 3  # held-out renders pasted side by side in one picture


def _side_by_side(items) -> tuple[np.ndarray, np.ndarray]:
  """Renders (dicts with "image" and "keypoints2d") side by side: (picture, (P, 4) boxes from
  their labels)."""
  picture = np.concatenate([it["image"] for it in items], axis=1)
  width = items[0]["image"].shape[1]
  boxes = [inference.box_from_keypoints(it["keypoints2d"] + [n * width, 0])
           for n, it in enumerate(items)]
  return picture, np.stack(boxes)


def draw_predict_example(path: str, network: inference.Network, source) -> None:
  """`lift3d.predict` on `PER_PICTURE` renders of `source` side by side, boxes from their
  labels."""
  from lift3d.viz import overlay

  picture, boxes = _side_by_side([source[i] for i in range(min(PER_PICTURE, len(source)))])
  people = inference.predict(network, None, [picture], [boxes])[0]
  overlay.save_overlay(path, picture, people, title="lift3d.predict on held-out renders")


def calibrate_min_confidence(network: inference.Network, people_source, empty_source,
                             count: int) -> tuple[float, np.ndarray, np.ndarray]:
  """The network's `min_confidence`, chosen on held-out renders (`inference.confidence_threshold`).

  `lift3d.predict` runs as a user's pictures take it (the network's scales,
  sub-pixel peaks) on the renders of `people_source` pasted side by side with
  boxes from their labels, and on as many renders of `empty_source` (no
  person) with the same boxes: a person-sized box on an empty scene. The same
  picture layout as `draw_predict_example`, so both share compiled programs.

  Args:
    network: the trained network.
    people_source, empty_source: random-access renders, with and without a person.
    count: renders of each used (rounded down to whole pictures of
      `PER_PICTURE`, or one picture of all `count` if fewer); at least 1.

  Returns:
    (threshold, (N,) people's mean landmark confidences, (N,) empty boxes').
  """
  if count < 1:
    raise ValueError(f"calibrating min_confidence needs at least one render, got {count}")
  per = min(PER_PICTURE, count)
  people, empty = [], []
  for start in range(0, count // per * per, per):
    picture, boxes = _side_by_side([people_source[i] for i in range(start, start + per)])
    blank = np.concatenate([empty_source[i]["image"] for i in range(start, start + per)], axis=1)
    for found, into in ((inference.predict(network, None, [picture], [boxes])[0], people),
                        (inference.predict(network, None, [blank], [boxes])[0], empty)):
      into.extend(float(np.mean(p.confidence)) for p in found)
  people, empty = np.asarray(people), np.asarray(empty)
  return inference.confidence_threshold(people, empty), people, empty


RESULTS_MD = "cpm_results.md"


def write_results(path: str, metrics: dict, image_size: tuple[int, int]) -> str:
  """Writes the held-out CPM errors (`train_and_evaluate`'s metrics) as markdown; returns `path`."""
  name = "fused CPM (projected belief maps)" if metrics["fusion"] else "plain CPM (no fusion)"
  lines = [
      "# The CPM on renders of the held-out clips (METHOD §5–§6)",
      "",
      f"{metrics['num_examples']} held-out synthetic renders ({image_size[1]}×{image_size[0]} "
      f"px) after {metrics['step']} training steps. 2D error in pixels over labelled in-frame "
      "joints; MPJPE (root-aligned) and PA-MPJPE (similarity Procrustes) in mm over the valid "
      "frames: a plausible lift, and a mean landmark confidence at least this network's "
      f"calibrated `min_confidence` ({metrics['min_confidence']:.3f}).",
      "",
      "| model | 2D error (px) | MPJPE (mm) | PA-MPJPE (mm) | valid |",
      "|---|---:|---:|---:|---:|",
      f"| {name} | {metrics['px_error']:.2f} | {metrics['mpjpe_mm']:.1f} | "
      f"{metrics['pa_mpjpe_mm']:.1f} | {metrics['valid_fraction']:.1%} |",
  ]
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path


def train_and_evaluate(train_poses: np.ndarray, heldout_poses: np.ndarray, workdir: str, *,
                       model: cpm.CPM, pose_model_args: dict, render_kwargs: dict,
                       heldout_render_kwargs: dict, train_kwargs: dict, eval_kwargs: dict,
                       seed: int = 0, distributed: bool = False) -> dict:
  """Trains the CPM on renders of `train_poses` (resuming), scores it on renders of
  `heldout_poses` and draws an example; returns the evaluation metrics.

  Args:
    train_poses: (N, 17, 3) metres: rendered for training (and the pose
      model's training poses, fitted only if `<workdir>/pose_model.npz` is absent).
    heldout_poses: (M, 17, 3) metres: rendered for evaluation.
    workdir: checkpoints, metrics and outputs.
    model: the `CPM`.
    pose_model_args: `experiments.jobs.pose_model.load_or_fit` keywords.
    render_kwargs, heldout_render_kwargs: `SyntheticPoseSource` keywords of
      the training and held-out renders.
    train_kwargs: `lift3d.train.train` keywords (all but `seed`).
    eval_kwargs: `CPMEvaluator` keywords.
    seed: the training seed.
    distributed: `jax.distributed.initialize()` first (multi-host).

  Returns:
    The evaluation metrics, with the training step and `fusion`.
  """
  from experiments.jobs import pose_model as pose_model_job

  lift_train.initialize_distributed(distributed)
  os.makedirs(workdir, exist_ok=True)
  pose_model = pose_model_job.load_or_fit(train_poses, workdir, **pose_model_args)
  config = network_config(model, render_kwargs, eval_kwargs)
  if jax.process_index() == 0:
    inference.save_network_config(workdir, config)
  train_source = synthetic.SyntheticPoseSource(train_poses, **render_kwargs)
  eval_source = synthetic.SyntheticPoseSource(heldout_poses, **heldout_render_kwargs)
  logging.info("cpm: %d stages, stride %d, fusion %s", model.num_stages, model.stride,
               model.fusion)
  logging.debug("cpm: %s, training on %r", model, train_source)
  state = lift_train.train(model, pose_model, train_source, workdir, seed=seed, **train_kwargs)
  params = jax.device_get(state.params)
  # The validity threshold of `lift3d.predict` for this network, from its own
  # confidences on held-out renders with and without a person; chosen before
  # the evaluation, which then judges validity by it, as `lift3d.predict`
  # will (the evaluator used to apply a fixed 0.2, above the calibrated
  # threshold of the trained networks measured: 0.115). Every process
  # computes it (the same renders, the same answer).
  network = inference.network_from_config(config, params, pose_model)
  empty_source = synthetic.SyntheticPoseSource(
      heldout_poses, **dict(heldout_render_kwargs, no_person_prob=1.0,
                            seed=int(heldout_render_kwargs.get("seed", 0)) + 1))
  threshold, people, empty = calibrate_min_confidence(
      network, eval_source, empty_source, min(int(eval_kwargs["num_examples"]), len(eval_source)))
  logging.info("cpm: predict's min_confidence %.3f (mean landmark confidence: people median "
               "%.3f, 5th percentile %.3f; empty boxes median %.3f, 95th percentile %.3f)",
               threshold, np.median(people), np.percentile(people, 5), np.median(empty),
               np.percentile(empty, 95))
  network = dataclasses.replace(network, min_confidence=threshold)
  evaluator = CPMEvaluator(model, pose_model, eval_source,
                           **dict(eval_kwargs, min_confidence=threshold))
  result = evaluator.run(params)
  metrics = dict(result.metrics, step=int(state.step), fusion=bool(model.fusion))
  metrics["min_confidence"] = threshold
  metrics["people_below_min_confidence"] = float(np.mean(people < threshold))
  metrics["empty_at_or_above_min_confidence"] = float(np.mean(empty >= threshold))
  logging.info("cpm: held-out evaluation %s", metrics)
  if jax.process_index() == 0:
    metrics["table"] = write_results(os.path.join(workdir, RESULTS_MD), metrics,
                                     result.first_batch["image"].shape[1:3])
    draw_example(
        os.path.join(workdir, "cpm_example.png"), result.first_batch["image"][0],
        result.first_prediction, 0, truth3d=result.first_batch["pose3d"][0] * 1000.0,
    )
    inference.save_network_config(workdir, network.config())
    files.write_json(os.path.join(workdir, "cpm_eval.json"),
                     {k: v for k, v in metrics.items() if k != "table"})
    draw_predict_example(os.path.join(workdir, "predict_example.png"), network, eval_source)
  return metrics


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming), evaluates and draws; returns the evaluation metrics."""
  train_poses, heldout_poses = settings.split_corpus(config.data)
  return train_and_evaluate(train_poses, heldout_poses, workdir, **settings.cpm_args(config))
