r"""The lift3d launcher: parses flags and runs the job a config names.

  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=runs/default [--config.pose_model.num_components=2]

A config's `job` field names a module of `experiments/jobs/` whose
`run(config, workdir)` does the work; this file holds no maths.
"""

import importlib

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to an experiment config file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for outputs and checkpoints.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  job = config.job
  try:
    module = importlib.import_module(f"experiments.jobs.{job}")
  except ModuleNotFoundError as e:
    if e.name != f"experiments.jobs.{job}":
      raise
    raise app.UsageError(f"config.job={job!r} names no module experiments/jobs/{job}.py") from None
  logging.info("job %s, workdir %s\n%s", job, _WORKDIR.value, config)
  module.run(config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
