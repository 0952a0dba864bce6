r"""Runs N processes of `experiments.main` on this machine, as a cluster would.

  python -m experiments.launch_local --num_processes=2 --devices_per_process=2 -- \
      --config=experiments/configs/cpm_synthetic.py:smoke --workdir=runs/cpm_2x2

Everything after `--` is passed to every process, followed by `--distributed`.
Process `i` runs on the CPU with `devices_per_process` forced host devices
(`--xla_force_host_platform_device_count`) and finds the others through
JAX_COORDINATOR_ADDRESS=127.0.0.1:<a free port>, JAX_NUM_PROCESSES and
JAX_PROCESS_ID=i (read by `lift3d.train.initialize_distributed`); collectives
between the processes go through gloo. So one machine runs exactly the
multi-host code path of a TPU pod or of several GPU hosts, where the
platform's own launcher starts the processes instead (README, "Running on a
TPU pod or several GPUs").

The processes' output is shown with a `[i] ` prefix. The launcher waits for
all of them; when one fails it stops the others (SIGTERM, then SIGKILL after
`--grace_s`) and exits with the failing process's exit code and its error
line. Ctrl-C (SIGINT) and SIGTERM are forwarded to every process (a second
Ctrl-C kills them); the exit code is then 130. The processes get a SIGINT they
can act on also when the launcher was started with SIGINT ignored, as a
script (a shell without job control) starts a background command
(`python -m experiments.launch_local ... &`, later `kill -INT`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from absl import app, flags, logging

_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 2, "Processes to start.", lower_bound=1)
_DEVICES = flags.DEFINE_integer(
    "devices_per_process", 1, "CPU devices of each process.", lower_bound=1
)
_MODULE = flags.DEFINE_string(
    "module", "experiments.main",
    "The module each process runs (`python -m`); it must accept --distributed.",
)
_GRACE_S = flags.DEFINE_float(
    "grace_s", 10.0, "Seconds the processes get to exit after a failure or Ctrl-C before SIGKILL."
)

_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
# The last line of a Python traceback ("ValueError: ..."), absl's "FATAL ..."
# or an XLA fatal log line ("F1126 12:00:00 ... Check failed").
_ERROR_LINE = re.compile(r"^([\w.]*(Error|Exception|Exit|Interrupt)\b|FATAL|Fatal |F\d{4} )")


def free_port() -> int:
  """A TCP port on 127.0.0.1 that is free now (for the coordinator)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def process_env(base: dict[str, str], *, process_id: int, num_processes: int,
                devices_per_process: int, port: int) -> dict[str, str]:
  """The environment of process `process_id` of a local CPU "cluster".

  Args:
    base: the environment to extend (e.g. `os.environ`).
    process_id: 0 .. num_processes - 1.
    num_processes: processes in the run.
    devices_per_process: forced CPU devices of each process.
    port: the coordinator's port on 127.0.0.1 (process 0 serves it).

  Returns:
    A new dict: `base` plus the JAX_* coordinates, JAX_PLATFORMS=cpu, gloo
    collectives and XLA_FLAGS with the device count (replacing any given).
  """
  xla_flags = [f for f in base.get("XLA_FLAGS", "").split() if not f.startswith(_DEVICE_COUNT_FLAG)]
  xla_flags.append(f"{_DEVICE_COUNT_FLAG}={devices_per_process}")
  return dict(
      base,
      JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
      JAX_NUM_PROCESSES=str(num_processes),
      JAX_PROCESS_ID=str(process_id),
      JAX_PLATFORMS="cpu",
      JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
      XLA_FLAGS=" ".join(xla_flags),
  )


def start(args: Sequence[str], *, num_processes: int, devices_per_process: int = 1,
          module: str = "experiments.main", port: int | None = None,
          env: dict[str, str] | None = None) -> list[subprocess.Popen]:
  """Starts the processes (without waiting); their output is piped.

  Args:
    args: flags for every process (`--distributed` is appended).
    num_processes: processes to start.
    devices_per_process: forced CPU devices of each.
    module: what each runs with `python -m`.
    port: the coordinator port (default: a free one).
    env: the base environment (default: `os.environ`).

  Returns:
    The `subprocess.Popen` of each process, in process-id order; each in its
    own session (so a terminal's Ctrl-C reaches only the launcher, which
    forwards it), stdout and stderr merged into `stdout`.
  """
  port = free_port() if port is None else port
  base = dict(os.environ if env is None else env)
  with _signals_not_ignored():
    return [
        subprocess.Popen(
            [sys.executable, "-u", "-m", module, *args, "--distributed"],
            env=process_env(base, process_id=i, num_processes=num_processes,
                            devices_per_process=devices_per_process, port=port),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        for i in range(num_processes)
    ]


@contextlib.contextmanager
def _signals_not_ignored():
  """SIGINT and SIGTERM not ignored while the processes start.

  An ignored signal stays ignored across exec, and Python then leaves SIGINT
  ignored: processes started from a script's background command (`cmd &` in a
  shell without job control ignores SIGINT) would never see the Ctrl-C that `wait` forwards, and would
  only stop at the grace period's SIGKILL. A handled signal is reset to its
  default in the child, so the launcher handles both while it starts them
  (Python's own SIGINT handler, the default for SIGTERM), then restores its
  dispositions. Only possible in the main thread; elsewhere nothing changes.
  """
  restore = {}
  if threading.current_thread() is threading.main_thread():
    for sig, handler in ((signal.SIGINT, signal.default_int_handler),
                         (signal.SIGTERM, signal.SIG_DFL)):
      if signal.getsignal(sig) == signal.SIG_IGN:
        restore[sig] = signal.signal(sig, handler)
  try:
    yield
  finally:
    for sig, handler in restore.items():
      signal.signal(sig, handler)


class _Pump(threading.Thread):
  """Copies one process's output to ours, prefixed, and keeps its tail."""

  def __init__(self, index: int, stream, out, lock: threading.Lock):
    super().__init__(daemon=True)
    self.index, self.stream, self.out, self.lock = index, stream, out, lock
    self.tail: collections.deque[bytes] = collections.deque(maxlen=256)

  def run(self) -> None:
    prefix, at_line_start = f"[{self.index}] ".encode(), True
    for chunk in iter(lambda: self.stream.read1(65536), b""):
      self.tail.append(chunk)
      pieces = []
      # Prefix every line, also those a progress bar rewrites with "\r".
      for part in re.split(rb"(?<=[\n\r])", chunk):
        if not part:
          continue
        bare = part in (b"\n", b"\r", b"\r\n")  # an empty line: no prefix
        pieces.append(prefix + part if at_line_start and not bare else part)
        at_line_start = part.endswith((b"\n", b"\r"))
      with self.lock:
        self.out.write(b"".join(pieces))
        self.out.flush()

  def error_line(self, fallback: bool = True) -> str | None:
    """The last traceback or fatal line of the output, else (`fallback`) its last line."""
    text = b"".join(self.tail).decode(errors="replace")
    lines = [ln.strip() for ln in re.split(r"[\r\n]", text) if ln.strip()]
    for line in reversed(lines):
      if _ERROR_LINE.match(line):
        return line
    if not fallback:
      return None
    return lines[-1] if lines else "(no output)"


def _exit_code(returncode: int) -> int:
  return 128 - returncode if returncode < 0 else returncode  # killed by signal -rc


def _signal_all(processes: Sequence[subprocess.Popen], sig: int) -> None:
  for p in processes:
    if p.poll() is None:
      try:
        p.send_signal(sig)
      except ProcessLookupError:
        pass


def wait(processes: Sequence[subprocess.Popen], pumps: Sequence[_Pump], *,
         grace_s: float) -> tuple[int, str]:
  """Waits for every process; stops the rest when one fails or on Ctrl-C.

  Args:
    processes: from `start`.
    pumps: their output pumps (running).
    grace_s: seconds between SIGTERM (or the forwarded SIGINT) and SIGKILL.

  Returns:
    (exit code, message): 0 and "" when all succeeded; else the first failing
    process's exit code and "process i failed (exit code c): <its error
    line>", or 130 and a message after Ctrl-C.
  """
  interrupts: list[int] = []

  def forward(signum, frame):
    del frame
    interrupts.append(signum)
    # The first signal is passed on (processes may checkpoint); a second kills.
    _signal_all(processes, signum if len(interrupts) == 1 else signal.SIGKILL)

  previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
  failed: tuple[int, int] | None = None
  deadline = None
  try:
    while [p.poll() for p in processes].count(None):  # poll() every one of them
      if failed is None and not interrupts:
        for i, p in enumerate(processes):
          if p.returncode not in (None, 0):
            failed = (i, p.returncode)
            _signal_all(processes, signal.SIGTERM)
            break
      if deadline is None and (failed is not None or interrupts):
        deadline = time.monotonic() + grace_s
      if deadline is not None and time.monotonic() > deadline:
        _signal_all(processes, signal.SIGKILL)
      time.sleep(0.05)
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  for pump in pumps:
    pump.join(timeout=5)
  if failed is None and not interrupts:
    failed = next(((i, p.returncode) for i, p in enumerate(processes) if p.returncode), None)
  if failed is not None:
    i, returncode = failed
    code = _exit_code(returncode)
    message = f"process {i} failed (exit code {code}): {pumps[i].error_line()}"
    # Errors the others printed before they were stopped (a process that
    # left with sys.exit stays in JAX's exit barrier: its peer may fail first).
    others = [(j, pump.error_line(fallback=False)) for j, pump in enumerate(pumps) if j != i]
    return code, "".join([message] + [f"; process {j}: {e}" for j, e in others if e])
  if interrupts:
    return 130, f"interrupted ({signal.Signals(interrupts[0]).name}); processes stopped"
  return 0, ""


def launch(args: Sequence[str], *, num_processes: int, devices_per_process: int = 1,
           module: str = "experiments.main", grace_s: float = 10.0) -> tuple[int, str]:
  """Starts the processes, shows their output, waits (see `wait`)."""
  processes = start(args, num_processes=num_processes, devices_per_process=devices_per_process,
                    module=module)
  lock = threading.Lock()
  pumps = [_Pump(i, p.stdout, sys.stderr.buffer, lock) for i, p in enumerate(processes)]
  for pump in pumps:
    pump.start()
  return wait(processes, pumps, grace_s=grace_s)


def main(argv: Sequence[str]) -> None:
  args = list(argv[1:])
  logging.info("launch_local: %d processes × %d CPU devices: python -m %s %s --distributed",
               _NUM_PROCESSES.value, _DEVICES.value, _MODULE.value, " ".join(args))
  code, message = launch(args, num_processes=_NUM_PROCESSES.value,
                         devices_per_process=_DEVICES.value, module=_MODULE.value,
                         grace_s=_GRACE_S.value)
  if code:
    logging.error("launch_local: %s", message)
    sys.exit(code)


if __name__ == "__main__":
  app.run(main)
