r"""The lift3d launcher: parses flags and runs the job a config names.

  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=runs/default [--config.pose_model.num_components=2]

A config's `job` field names a module of `experiments/jobs/` whose
`run(config, workdir)` does the work; this file holds no maths.

Several processes (TPU pod hosts, GPU hosts, or `experiments.launch_local` on
one machine) run the same command with `--distributed`; see the README,
"Running on a TPU pod or several GPUs".
"""

import importlib
import logging as std_logging

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to an experiment config file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for outputs and checkpoints.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False,
    "One of several processes: jax.distributed.initialize() before the job (the cluster comes "
    "from the TPU pod or SLURM environment, or from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES "
    "and JAX_PROCESS_ID, as experiments.launch_local sets them).",
)
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(std_logging.Filter):
  """Drops the INFO chatter of orbax's checkpointing; its warnings still show."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if _DISTRIBUTED.value:
    _initialize_distributed()
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


def _initialize_distributed() -> None:
  """Joins the other processes; only process 0 logs below warnings."""
  import jax

  from lift3d import train

  train.initialize_distributed()
  if jax.process_index() > 0:
    logging.set_verbosity(logging.WARNING)


if __name__ == "__main__":
  app.run(main)
