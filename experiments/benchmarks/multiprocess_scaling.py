r"""Training steps/s of the synthetic CPM config over processes and devices (issue 15).

  python -m experiments.benchmarks.multiprocess_scaling [--steps=60] [--out=runs/scaling]

Trains the model and renders of experiments/configs/cpm_synthetic.py (64×64,
global batch 16) with `lift3d.train.train`, started by
`experiments.launch_local` as 1 process × 1 device, 1 process × 2 devices and
2 processes × 1 device (the multi-host code path: gloo collectives between
the processes), for `--steps` steps each, and reads the steps/s that `train`
logs every 10 steps, leaving out the first `--warmup` steps (compilation, the
first gloo connection). The job's evaluation is skipped (it does not time
training). One pose model is fitted first and shared by all runs. Prints a
Markdown table with
- the multi-process efficiency: steps/s of 2 × 1 over 1 × 2 (the same two
  devices, split over two processes instead of one);
- the scaling efficiency of each 2-device layout over 1 × 1 with the same
  global batch: steps/s(2 devices) / (2 · steps/s(1 device)).
Each launched process runs this module with `--worker`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

LAYOUTS = ((1, 1), (1, 2), (2, 1))  # (processes, devices per process)
LOG_EVERY = 10


def _config():
  from experiments.configs import cpm_synthetic

  return cpm_synthetic.get_config()


def _fit_pose_model(directory: str) -> str:
  """Fits a pose model on the training poses (the CPM job's settings)."""
  import jax

  from experiments import settings
  from lift3d import pose_model as pose_model_lib

  config = _config()
  train_poses, _ = settings.split_corpus(config.data)
  model = pose_model_lib.fit(train_poses, key=jax.random.key(int(config.pose_model.seed)),
                             **settings.fit_kwargs(config.pose_model))
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, "pose_model.npz")
  pose_model_lib.save(path, model)
  return path


def _worker(workdir: str, pose_model_path: str, steps: int, distributed: bool) -> None:
  """One process of a layout: trains the synthetic config for `steps` steps."""
  from experiments import settings
  from lift3d import pose_model as pose_model_lib
  from lift3d import train
  from lift3d.data import synthetic

  train.initialize_distributed(distributed)
  config = _config()
  train_poses, _ = settings.split_corpus(config.data)
  source = synthetic.SyntheticPoseSource(train_poses, **settings.render_kwargs(config.cpm))
  kwargs = dict(settings.train_kwargs(config.cpm.train), num_steps=steps, log_every=LOG_EVERY,
                ckpt_every=steps, time_limit_s=None, progress=False)
  train.train(settings.cpm_model(config.cpm), pose_model_lib.load(pose_model_path), source,
              workdir, seed=int(config.seed), **kwargs)


def _steps_per_s(workdir: str, warmup: int) -> float:
  """Steps over seconds of the logged intervals after `warmup` steps."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  window = [r for r in records if r["step"] > warmup]
  if not window:
    raise ValueError(f"no records after step {warmup} in {workdir}; raise --steps")
  seconds = sum(LOG_EVERY / r["steps_per_s"] for r in window)
  return LOG_EVERY * len(window) / seconds


def run_layout(processes: int, devices: int, workdir: str, pose_model_path: str,
               steps: int) -> float:
  """Trains in one layout (fresh workdir); returns the wall seconds of the launch."""
  shutil.rmtree(workdir, ignore_errors=True)
  command = [
      sys.executable, "-m", "experiments.launch_local", f"--num_processes={processes}",
      f"--devices_per_process={devices}", "--module=experiments.benchmarks.multiprocess_scaling",
      "--", "--worker", f"--workdir={workdir}", f"--pose_model={pose_model_path}",
      f"--steps={steps}",
  ]
  # Repeated layouts reuse their compilation (the first round pays for it).
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(os.path.dirname(workdir), "cache"))
  start = time.perf_counter()
  done = subprocess.run(command, capture_output=True, text=True, env=env)
  if done.returncode:
    raise RuntimeError(f"{processes} × {devices} failed:\n{done.stderr[-3000:]}")
  return time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--warmup", type=int, default=20)
  parser.add_argument("--repeats", type=int, default=2, help="rounds over the layouts")
  parser.add_argument("--out", default="runs/multiprocess_scaling")
  parser.add_argument("--worker", action="store_true", help="(one launched process)")
  parser.add_argument("--workdir", help="(worker) its workdir")
  parser.add_argument("--pose_model", help="(worker) the pose model file")
  parser.add_argument("--distributed", action="store_true", help="(worker) join the others")
  args = parser.parse_args()
  if args.worker:
    _worker(args.workdir, args.pose_model, args.steps, args.distributed)
    return
  os.makedirs(args.out, exist_ok=True)
  pose_model_path = _fit_pose_model(os.path.join(args.out, "pose_model"))
  runs = {layout: [] for layout in LAYOUTS}
  for round_ in range(args.repeats):  # interleaved, so that load drift hits every layout
    for processes, devices in LAYOUTS:
      workdir = os.path.join(args.out, f"{processes}x{devices}")
      wall = run_layout(processes, devices, workdir, pose_model_path, args.steps)
      runs[processes, devices].append(_steps_per_s(workdir, args.warmup))
      print(f"round {round_}: {processes} × {devices}: {runs[processes, devices][-1]:.2f} "
            f"steps/s ({wall:.0f} s wall incl. startup and compilation)", flush=True)
  rates = {layout: max(rates) for layout, rates in runs.items()}  # least disturbed run
  one = rates[1, 1]
  print("\nbest of the rounds:")
  print("\n| processes × devices | steps/s | images/s | vs 1 × 1 | scaling efficiency |")
  print("|---|---|---|---|---|")
  for (processes, devices), rate in rates.items():
    speedup = rate / one
    print(f"| {processes} × {devices} | {rate:.2f} | {16 * rate:.0f} | {speedup:.2f}× | "
          f"{speedup / (processes * devices):.0%} |")
  print(f"\nmulti-process efficiency (2 × 1 over 1 × 2): {rates[2, 1] / rates[1, 2]:.0%}")


if __name__ == "__main__":
  main()
