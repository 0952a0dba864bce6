"""The default job: runs each step of `config.steps` (a job module) in turn."""

import importlib
import json
import os

from absl import logging


def run(config, workdir: str) -> dict:
  """Runs `experiments.jobs.<step>.run(config, workdir)` for every step; returns their summaries."""
  os.makedirs(workdir, exist_ok=True)
  summary = {}
  for step in config.steps:
    logging.info("demo: step %s", step)
    module = importlib.import_module(f"experiments.jobs.{step}")
    summary[step] = module.run(config, workdir)
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2, default=str)
  logging.info("demo: done; summary in %s", os.path.join(workdir, "summary.json"))
  return summary
