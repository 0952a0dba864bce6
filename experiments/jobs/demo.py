"""The default job: the steps of `config.steps` in turn, on one split of the corpus.

The corpus is split once (`experiments.settings.split_corpus`) and the same
training and held-out poses go to every step: "pose_model" (fit and save the
pose model), "lifting" (lift views of the held-out poses), "video" (the
held-out clips as videos: per-frame lifting against `lift_sequence`) and
"cpm" (train and evaluate the fused CPM). Each step writes into the workdir; later steps
load the pose model saved there.
"""


import os

from absl import logging

from experiments import settings
from experiments.jobs import cpm, lifting, pose_model
from lift3d import files


def run(config, workdir: str) -> dict:
  """Runs every step of `config.steps`; returns their summaries (also in summary.json)."""
  os.makedirs(workdir, exist_ok=True)
  train_poses, heldout_poses = settings.split_corpus(config.data)
  steps = {
      "pose_model": lambda: pose_model.fit_and_save(
          train_poses, workdir, **settings.pose_model_args(
              config.pose_model, settings.calibration_args(config)))[1],
      "lifting": lambda: lifting.evaluate(
          train_poses, heldout_poses, workdir, **settings.lifting_args(config)),
      "video": lambda: lifting.evaluate_video(
          train_poses, settings.corpus_parts(config.data)[2], workdir,
          **settings.video_args(config)),
      "cpm": lambda: cpm.train_and_evaluate(
          train_poses, heldout_poses, workdir, **settings.cpm_args(config)),
  }
  unknown = [step for step in config.steps if step not in steps]
  if unknown:
    raise ValueError(f"config.steps has unknown steps {unknown}; expected some of "
                     f"{list(steps)}")
  summary = {}
  for step in config.steps:
    logging.info("demo: step %s", step)
    summary[step] = steps[step]()
  # The markdown result tables of the steps that wrote one.
  summary["results"] = {step: out["table"] for step, out in summary.items()
                        if isinstance(out, dict) and str(out.get("table", "")).endswith(".md")}
  files.write_json(os.path.join(workdir, "summary.json"), summary, default=str)
  logging.info("demo: done; summary in %s", os.path.join(workdir, "summary.json"))
  return summary
