r"""The lift3d launcher: parses flags and runs the job a config names.

  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=runs/default [--config.pose_model.num_components=2]

A config's `job` field names a module of `experiments/jobs/` whose
`run(config, workdir)` does the work; this file holds no maths.

Several processes (TPU pod hosts, GPU hosts, or `experiments.launch_local` on
one machine) run the same command with `--distributed`; see the README,
"Running on a TPU pod or several GPUs".

What a user sees: INFO lines on stderr (the config's overridden fields, each
step's results; progress lines every 30 s when stderr is not a terminal); the
whole config, the models and every DEBUG line go to `<workdir>/main.log`
(`--verbosity=1` shows them on stderr too). A mistake (a misspelled override,
a missing config file or dataset, a workdir that is a file) is one line on
stderr, `experiments.main: error: ...`, exit status 2, and a run that fails
before writing anything leaves no workdir behind. Ctrl-C prints one line and
exits with 130; rerunning the same command resumes from the last checkpoint.
An unexpected failure is one line too, its traceback in `main.log` (exit 1).
"""

import ast
import importlib
import logging as std_logging
import os
import re
import sys
import tempfile
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import user_errors

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

# XLA's C++ INFO lines (device counts) are not for users; set before JAX loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

_PROG = "experiments.main"
_LOG_FILE = "main.log"
_EXIT_FAILED, _EXIT_USAGE, _EXIT_INTERRUPTED = 1, 2, 130


class _UserError(Exception):
  """A mistake in the command line or the environment, reported in one line."""


def _fail(message: str, status: int = _EXIT_USAGE):
  """Prints `experiments.main: error: <message>` (one line; no "error" for Ctrl-C) and exits."""
  kind = "" if status == _EXIT_INTERRUPTED else " error:"
  print(f"{_PROG}:{kind} {' '.join(message.split())}", file=sys.stderr, flush=True)
  sys.exit(status)


def _flag_error_line(error: Exception, argv: list[str]) -> str:
  """One line for an error raised while parsing the flags or loading the config."""
  text = str(error)
  if isinstance(error, AttributeError):  # ml_collections: an override names no field
    try:
      text = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      pass
    key = text.splitlines()[0].strip("'\"") if text else "?"
    arg = next((a for a in argv if a.startswith("--config.") and re.search(
        rf"\.{re.escape(key)}(=|$)", a.split("=", 1)[0])), None)
    hint = re.search(r'Did you mean "([^"]+)"', text)
    where = f" in {arg}" if arg else ""
    return (f"the config has no field {key!r}{where}"
            + (f"; did you mean {hint.group(1)!r}?" if hint else
               "; see the config file for its fields"))
  if "Traceback (most recent call last)" in text:  # config file raised: keep its last line
    head = text.split(":", 1)[0]
    last = [line for line in text.splitlines() if line.strip()][-1].strip()
    return f"{head}: {last}"
  if isinstance(error, OSError) and "[Errno" in text:  # config file missing or unreadable
    reason = re.findall(r"\[Errno \d+\] ([^\n]*)", text)[-1]
    path = flags.FLAGS["config"].config_filename if "config" in flags.FLAGS else "?"
    return f"cannot load --config={path}: {reason}"
  required = re.match(r"flag --(\w+)=None: Flag --\w+ must have a value", text)
  if required:
    example = {"workdir": "runs/default", "config": "experiments/configs/default.py"}
    name = required.group(1)
    return f"--{name} is required, e.g. --{name}={example.get(name, '...')}"
  return text + "; see --helpfull" if isinstance(error, flags.UnrecognizedFlagError) else text


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with every mistake reported in one line."""
  try:
    rest = flags.FLAGS(argv)
    _CONFIG.value.get("job")  # a config file that failed to load raises on first use
    return rest
  except (flags.Error, AttributeError, OSError, ValueError, KeyError, TypeError) as e:
    _fail(_flag_error_line(e, argv))


class _QuietLibraries(std_logging.Filter):
  """What stderr shows: drops orbax's INFO chatter, JAX's and TFDS's probing, DEBUG lines."""

  def __init__(self, level: int):
    super().__init__()
    self.level = level

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.exc_info and record.exc_info[0] is KeyboardInterrupt:
      return False  # a library's report of the Ctrl-C that main reports in one line
    if "/tensorflow_datasets/" in record.pathname and record.getMessage().endswith(
        "has no dataset_info.json"):  # TFDS probing a dataset not yet prepared (lift3d.data.h36m.prepare)
      return False
    if record.levelno >= std_logging.WARNING:
      return True
    if record.levelno < self.level:
      return False
    # "Unable to initialize backend 'tpu'" and the like are INFO lines of jax's xla_bridge.
    return "/orbax/" not in record.pathname and not record.name.startswith("jax._src.xla_bridge")


class _OursInDetail(std_logging.Filter):
  """What main.log keeps: every line of lift3d and experiments, INFO and above of the rest."""

  _ROOTS = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), d)
                 + os.sep for d in ("lift3d", "experiments"))

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.INFO or record.pathname.startswith(self._ROOTS)


def _setup_logging(workdir: str) -> std_logging.Handler:
  """stderr shows INFO (or what --verbosity asks); `<workdir>/main.log` everything of ours."""
  verbosity = logging.get_verbosity()
  stderr_level = (std_logging.DEBUG if verbosity >= logging.DEBUG else
                  std_logging.INFO if verbosity >= logging.INFO else std_logging.WARNING)
  logging.get_absl_handler().addFilter(_QuietLibraries(stderr_level))
  logging.set_verbosity(logging.DEBUG)
  file_handler = std_logging.FileHandler(os.path.join(workdir, _LOG_FILE))
  file_handler.setFormatter(std_logging.Formatter(
      "%(asctime)s %(levelname).1s %(name)s %(filename)s:%(lineno)d] %(message)s"))
  file_handler.setLevel(std_logging.DEBUG)
  file_handler.addFilter(_OursInDetail())
  std_logging.getLogger().addHandler(file_handler)
  return file_handler


def _overrides() -> str:
  """The fields changed on the command line, `a.b=value, ...` (or 'none')."""
  values = config_flags.get_override_values(flags.FLAGS["config"])
  flat = []

  def walk(prefix, node):
    for key, value in node.items():
      if isinstance(value, dict):
        walk(f"{prefix}{key}.", value)
      else:
        flat.append(f"{prefix}{key}={value!r}")

  walk("", values)
  return ", ".join(flat) or "none"


def _check_workdir(workdir: str) -> bool:
  """Raises `_UserError` if `workdir` cannot be a run's folder; returns whether it exists."""
  if not workdir:
    raise _UserError("--workdir is empty; give a folder for the run's outputs")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise _UserError(f"--workdir={workdir} is an existing file, not a folder; pick another "
                     "path")
  parent = os.path.dirname(os.path.abspath(workdir))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise _UserError(f"--workdir={workdir}: {parent} is a file, not a folder")
  if not os.access(parent if not os.path.exists(workdir) else workdir, os.W_OK):
    raise _UserError(f"--workdir={workdir} is not writable")
  return os.path.isdir(workdir)


def _remove_if_empty(workdir: str, keep: tuple[str, ...] = ()) -> bool:
  """Removes `workdir` if it holds no files (empty folders and `keep` files aside)."""
  if not os.path.isdir(workdir):
    return True
  for root, _, files in os.walk(workdir):
    if any(f not in keep or root != workdir for f in files):
      return False
  for root, dirs, files in os.walk(workdir, topdown=False):
    for f in files:
      os.remove(os.path.join(root, f))
    for d in dirs:
      os.rmdir(os.path.join(root, d))
  os.rmdir(workdir)
  return True


def _latest_steps(workdir: str) -> tuple[int | None, int | None]:
  """(last step in any metrics.jsonl, latest checkpoint step) under `workdir`."""
  logged = checkpoint = None
  for root, dirs, files in os.walk(workdir):
    if "metrics.jsonl" in files:
      with open(os.path.join(root, "metrics.jsonl")) as f:
        steps = [int(m.group(1)) for m in re.finditer(r'"step": (\d+)', f.read())]
      if steps:
        logged = max(logged or 0, steps[-1])
    if os.path.basename(root) == "checkpoints":
      numbered = [int(d) for d in dirs if d.isdigit()]
      if numbered:
        checkpoint = max(checkpoint or 0, max(numbered))
      dirs[:] = []
  return logged, checkpoint


def _interrupted_line(workdir: str) -> str:
  logged, checkpoint = _latest_steps(workdir)
  if logged is None and checkpoint is None:
    return "interrupted before the first checkpoint; rerun the same command to start again"
  step = max(s for s in (logged, checkpoint) if s is not None)
  line = f"interrupted at step {step}; rerun the same command to resume"
  if checkpoint is not None and checkpoint < step:
    line += f" (from the checkpoint at step {checkpoint})"
  return line


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments {argv[1:]}; flags look like --config=... --workdir=...")
  config = _CONFIG.value
  workdir = _WORKDIR.value
  job = config.job
  if _DISTRIBUTED.value:
    _initialize_distributed()
  try:
    existed = _check_workdir(workdir)
    module = _import_job(job)
  except _UserError as e:
    _fail(str(e))
  except KeyboardInterrupt:
    _fail("interrupted before the job started; nothing was written", _EXIT_INTERRUPTED)
  status, line, trace = 0, None, ""
  file_handler = None
  try:  # from here on a Ctrl-C may find a workdir to report on (and to tidy)
    os.makedirs(workdir, exist_ok=True)
    file_handler = _setup_logging(workdir)
    logging.info("job %s, workdir %s, config %s, overrides: %s", job, workdir,
                 flags.FLAGS["config"].config_filename, _overrides())
    logging.debug("config:\n%s", config)
    module.run(config, workdir)
  except KeyboardInterrupt:
    status, line = _EXIT_INTERRUPTED, _interrupted_line(workdir)
  except Exception as e:  # the top level turns every failure into one line
    trace = traceback.format_exc()
    logging.debug("failed:\n%s", trace)
    line = user_errors.user_error_line(e)
    status = _EXIT_USAGE if line is not None else _EXIT_FAILED
    if line is None:
      line = f"{type(e).__name__}: {e}"
  finally:
    if file_handler is not None:
      std_logging.getLogger().removeHandler(file_handler)
      file_handler.close()
  if status == 0:
    return
  # A run that wrote nothing (its log aside) leaves no workdir behind.
  removed = not existed and _remove_if_empty(workdir, keep=(_LOG_FILE,))
  if status == _EXIT_FAILED and not removed:
    line += f" (traceback in {os.path.join(workdir, _LOG_FILE)})"
  elif status == _EXIT_FAILED:
    with tempfile.NamedTemporaryFile("w", prefix="lift3d-", suffix=".log", delete=False) as f:
      f.write(trace)
    line += f" (traceback in {f.name})"
  _fail(line, status)


def _initialize_distributed() -> None:
  """Joins the other processes; only process 0 logs below warnings."""
  import jax

  from lift3d import train

  train.initialize_distributed()
  if jax.process_index() > 0:
    logging.set_verbosity(logging.WARNING)


def _import_job(job: str):
  """The module `experiments.jobs.<job>` (`_UserError` if there is none)."""
  try:
    return importlib.import_module(f"experiments.jobs.{job}")
  except ModuleNotFoundError as e:
    if e.name != f"experiments.jobs.{job}":
      raise
    raise _UserError(f"config.job={job!r} names no module experiments/jobs/{job}.py") from None


def run() -> None:
  """The console entry point: `app.run` with one-line errors."""
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
