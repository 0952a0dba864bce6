"""Tests of experiments/launch_local.py: multi-process training on one machine.

The processes run tests/experiments/distributed_worker.py (the tiny CPM through
`lift3d.train.train`, the code path of experiments.main's CPM job) and share a
persistent compilation cache, so that a relaunch does not compile again.
"""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from grain import python as grain_python

from experiments import launch_local
from lift3d import train
from tests.experiments import distributed_worker
from tests.models import tiny

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = "tests.experiments.distributed_worker"
NUM_STEPS, CKPT_EVERY, LEARNING_RATE = 20, 5, 1e-2
SETTINGS = dict(num_steps=NUM_STEPS, batch_size=4, ckpt_every=CKPT_EVERY, log_every=1,
                learning_rate=LEARNING_RATE, schedule="constant", optimizer="adam", seed=1,
                num_threads=1, progress=False)
U = 2.0**-24  # float32 unit roundoff


def _env(cache_dir):
  return dict(os.environ, PYTHONPATH=REPO, JAX_COMPILATION_CACHE_DIR=str(cache_dir),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


def _launch_args(num_processes, devices, *worker_args, grace_s=10):
  return [sys.executable, "-m", "experiments.launch_local", f"--num_processes={num_processes}",
          f"--devices_per_process={devices}", f"--module={WORKER}", f"--grace_s={grace_s}", "--",
          "--verbosity=-1", *worker_args]


def _train_args(workdir):
  return ["--mode=train", f"--workdir={workdir}", f"--settings={json.dumps(SETTINGS)}"]


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _params(workdir):
  with np.load(os.path.join(workdir, "params.npz")) as saved:
    return [saved[f"arr_{i}"] for i in range(len(saved.files))]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("jax_cache")


def _drain(process):
  thread = threading.Thread(target=process.stdout.read, daemon=True)
  thread.start()
  return thread


def test_two_processes_killed_and_resumed_train_like_one_process(tmp_path, cache_dir):
  one, two = tmp_path / "1x4", tmp_path / "2x2"
  # 1 process × 4 devices, uninterrupted, and meanwhile 2 processes × 2
  # devices, killed (SIGKILL, both) once their first checkpoint is written.
  single = subprocess.Popen(_launch_args(1, 4, *_train_args(one)), cwd=REPO, env=_env(cache_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  processes = launch_local.start(["--verbosity=-1", *_train_args(two)], num_processes=2,
                                 devices_per_process=2, module=WORKER, env=_env(cache_dir))
  for p in processes:
    _drain(p)
  first = two / "checkpoints" / str(CKPT_EVERY)  # orbax renames it into place when complete
  deadline = time.monotonic() + 600
  while not first.exists() and all(p.poll() is None for p in processes):
    assert time.monotonic() < deadline, "no checkpoint within 600 s"
    time.sleep(0.01)
  for p in processes:
    p.kill()
  for p in processes:
    p.wait(timeout=60)
  assert first.exists(), [p.returncode for p in processes]
  steps = sorted(int(d) for d in os.listdir(two / "checkpoints") if d.isdigit())
  assert CKPT_EVERY <= steps[-1] < NUM_STEPS, f"killed too late: checkpoints {steps}"
  assert not (two / "params.npz").exists()
  # Relaunched, the 2 processes resume from the checkpoint.
  resumed = subprocess.run(_launch_args(2, 2, *_train_args(two)), cwd=REPO, env=_env(cache_dir),
                           capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  output, _ = single.communicate(timeout=600)
  assert single.returncode == 0, output[-3000:]

  one_log, two_log = _metrics(one), _metrics(two)
  # Every step once (process 0 alone writes; the resumed run rewrote the
  # steps after the checkpoint).
  assert [r["step"] for r in one_log] == [r["step"] for r in two_log] == list(range(1, 21))
  # Every device holds the same example in both runs (the global batch does
  # not depend on the process count) and resuming restores the exact state,
  # so only the cross-device sums of the 4 partial losses and gradients may
  # be ordered differently: each is off by at most 3u Σ|x_i|. Through Adam
  # (an update moves by at most ~2 lr per unit relative change of the
  # gradient) the parameters drift by at most 2 lr 3u per step; a factor 5
  # covers the feedback of that drift into the later gradients. The loss then
  # moves by at most |∇loss|₁ atol ≤ grad_norm √P atol, plus its own 3u.
  params_one, params_two = _params(one), _params(two)
  num_params = sum(p.size for p in params_one)
  atol = 5 * NUM_STEPS * 2 * LEARNING_RATE * 3 * U
  for a, b in zip(params_one, params_two, strict=True):
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(b, a, rtol=0, atol=atol)
  for r1, r2 in zip(one_log, two_log, strict=True):
    tol = 3 * U * r1["loss"] + r1["grad_norm"] * np.sqrt(num_params) * atol
    assert abs(r1["loss"] - r2["loss"]) <= tol, (r1["step"], r1["loss"], r2["loss"], tol)


def test_processes_stop_together_at_the_time_limit(tmp_path, cache_dir):
  # Each process has its own clock, but the checkpoint and the steps are
  # collective: they must agree on the step to stop at (else they deadlock).
  settings = dict(SETTINGS, log_every=2, time_limit_s=1e-3)
  done = subprocess.run(
      _launch_args(2, 2, "--mode=train", f"--workdir={tmp_path}",
                   f"--settings={json.dumps(settings)}"),
      cwd=REPO, env=_env(cache_dir), capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert [r["step"] for r in _metrics(tmp_path)] == [2]
  assert sorted(d for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()) == ["2"]


def test_a_failing_process_fails_the_launch_with_its_error_line(cache_dir):
  started = time.monotonic()
  done = subprocess.run(_launch_args(2, 1, "--mode=fail"), cwd=REPO, env=_env(cache_dir),
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 1
  last = done.stderr.strip().splitlines()[-1]
  assert f"process 1 failed (exit code 1): ValueError: {distributed_worker.PLANTED_ERROR}" in last
  # Process 0, blocked in a collective for process 1, was stopped, not waited
  # for (its collective would time out after 30 s).
  assert time.monotonic() - started < 120


# Runs the rest of the command line with SIGINT ignored, as a script (a shell
# without job control) starts `cmd &`: an ignored signal stays ignored across exec.
_SIGINT_IGNORED = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                   "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")


@pytest.mark.parametrize("background", [False, True])
def test_ctrl_c_is_forwarded_to_every_process(cache_dir, background):
  args = _launch_args(2, 1, "--mode=wait", grace_s=60)
  if background:  # the processes must not inherit the launcher's ignored SIGINT
    args = [sys.executable, "-c", _SIGINT_IGNORED, *args[1:]]
  launcher = subprocess.Popen(args, cwd=REPO, env=_env(cache_dir),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  # A watchdog: if the workers never get ready, closing the output ends the loop.
  watchdog = threading.Timer(300, launcher.kill)
  watchdog.start()
  lines = []
  try:
    for line in launcher.stdout:
      lines.append(line)
      # Count occurrences, not lines: the processes' outputs are interleaved
      # chunk by chunk, so both READYs may share one line.
      if sum(ln.count(distributed_worker.READY) for ln in lines) == 2:
        break
    else:
      pytest.fail("".join(lines[-50:]))
  finally:
    watchdog.cancel()
  launcher.send_signal(signal.SIGINT)
  started = time.monotonic()
  output, _ = launcher.communicate(timeout=120)
  assert launcher.returncode == 130, output[-3000:]
  assert "interrupted (SIGINT)" in output
  # Both processes left on the forwarded SIGINT (a KeyboardInterrupt each),
  # well before the 60 s grace period after which the launcher kills them.
  assert time.monotonic() - started < 30, output[-3000:]
  for i in range(2):
    assert f"[{i}] KeyboardInterrupt" in output, output[-3000:]


def test_hosts_read_their_rows_of_the_global_batch():
  source = tiny.BlobSource(10)
  whole = train.batch_dataset(source, batch_size=6, seed=3)
  parts = [
      train.batch_dataset(source, batch_size=2, seed=3,
                          shard_options=grain_python.ShardOptions(p, 3))
      for p in range(3)
  ]
  for step in (0, 1, 4, 9):  # across epoch boundaries (10 examples, 6 per step)
    for key in train.BATCH_KEYS:
      np.testing.assert_array_equal(
          np.concatenate([part[step][key] for part in parts]), whole[step][key])
  with pytest.raises(ValueError, match="global batch of 12 exceeds"):
    train.batch_dataset(source, batch_size=4, seed=0,
                        shard_options=grain_python.ShardOptions(0, 3))


def test_process_env_and_error_line():
  env = launch_local.process_env(
      {"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_foo=1", "HOME": "/h"},
      process_id=1, num_processes=3, devices_per_process=2, port=1234)
  assert env["XLA_FLAGS"] == "--xla_foo=1 --xla_force_host_platform_device_count=2"
  assert (env["JAX_COORDINATOR_ADDRESS"], env["JAX_NUM_PROCESSES"], env["JAX_PROCESS_ID"]) == (
      "127.0.0.1:1234", "3", "1")
  assert env["HOME"] == "/h" and env["JAX_PLATFORMS"] == "cpu"
  # Every line is prefixed, also a progress bar's "\r" rewrites.
  out = io.BytesIO()
  pump = launch_local._Pump(1, io.BytesIO(b"a\n\rbar 1\rbar 2\nb"), out, threading.Lock())
  pump.run()
  assert out.getvalue() == b"[1] a\n\r[1] bar 1\r[1] bar 2\n[1] b"
  pump = launch_local._Pump(0, None, None, threading.Lock())
  pump.tail.extend([b"Traceback (most recent call last):\n  File x\nValueError: bad", b" input\n",
                    b"I1126 exit\n"])
  assert pump.error_line() == "ValueError: bad input"
  pump.tail.clear()
  pump.tail.append(b"some output\r\nlast words\n")
  assert pump.error_line() == "last words" and pump.error_line(fallback=False) is None


def test_tpu_config_sizes_its_batches_from_the_pod():
  from experiments import settings
  from experiments.configs import cpm_h36m_tpu

  config = cpm_h36m_tpu.get_config()
  section = config.cpm
  assert (section.image_size, section.model.num_stages, section.train.dtype) == (
      368, 6, "bfloat16")
  assert config.pod.per_host_batch == 4 * 8 and section.train.batch_size == 4 * 4 * 8
  config.pod.num_hosts, config.pod.per_chip_batch = 2, 3  # as --config.pod.* overrides do
  assert config.pod.per_host_batch == 4 * 3 and section.train.to_dict()["batch_size"] == 2 * 4 * 3
  # The job receives the dtype and the global batch.
  kwargs = settings.train_kwargs(section.train)
  assert (kwargs["dtype"], kwargs["batch_size"]) == ("bfloat16", 24)
  smoke = cpm_h36m_tpu.get_config("smoke")
  assert smoke.cpm.train.batch_size == smoke.pod.num_hosts * smoke.pod.per_host_batch == 4


@pytest.mark.slow
def test_tpu_config_smoke_trains_on_two_processes(tmp_path):
  # The README's local command: experiments.main's CPM job on 2 processes × 2 devices.
  workdir = tmp_path / "run"
  done = subprocess.run(
      [sys.executable, "-m", "experiments.launch_local", "--num_processes=2",
       "--devices_per_process=2", "--", "--config=experiments/configs/cpm_h36m_tpu.py:smoke",
       f"--workdir={workdir}"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
      timeout=1200)
  assert done.returncode == 0, done.stderr[-3000:]
  records = _metrics(workdir)
  assert [r["step"] for r in records] == [2, 4, 6]
  assert all(np.isfinite(r["loss"]) for r in records)
  with open(workdir / "cpm_eval.json") as f:
    assert json.load(f)["step"] == 6
