r"""Speed of `lift3d.lift_sequence` next to per-frame `lift`, and a cross-device check.

  python -m experiments.benchmarks.sequence_speed                     # K=9, J=14 random model
  python -m experiments.benchmarks.sequence_speed --model MODEL.npz   # a saved pose model
  python -m experiments.benchmarks.sequence_speed --save ref.npz      # keep the answers
  python -m experiments.benchmarks.sequence_speed --compare ref.npz   # diff against them
  python -m experiments.benchmarks.sequence_speed --stages            # where the time goes

Workload (as `sequence_eval`'s speed rows): S sequences (default 64) of F frames
(default 256), each a component mean of the model turning at 0.02 rad a frame
from a random start yaw, projected at 300 px per unit with 1 px Gaussian 2D
noise; the weighted rows hide 20% of the joints (weight 0, NaN coordinates)
and give the others weights in [0.5, 1]. `lift` searches T = 100 yaws (its
default), `lift_sequence` its default 64 (`--sequence-yaws`). Each call is timed
best of `--repeats` after a warm-up (the warm-up's time, compile included, is
printed too), `lift` on the S·F frames as one batch and `lift_sequence` on the
(S, F) videos, in the same process, so their ratio is the figure to read on a
shared machine. "fresh MB" is the memory the best call touched for the first
time (minor page faults × page size): its new buffers, whose first touch costs
system time on every call.

`lift_sequence` runs its default here: on the CPU the sequences in one group
per core, each in its own thread (its `threads` argument). `--stages` also
times, for the unweighted row, `lift_sequence` in one call (`threads=1`) and
its two public steps on their own: `lifting.grid_scores` (the per-frame grid)
and `sequence.viterbi_path` on its scores; the rest (the smoothing solves, the
answer and the blend) is the one call minus the two. Each is a separate
program, so the split is approximate (and the grid is masked differently).

`--save` writes each row's answers (component, valid, pose3d of both calls);
`--compare` reads such a file, made with the same flags on another machine
(e.g. the CPU), and prints how far this machine's answers are from it: the
share of frames with the same component and validity, and the pose distance
(mm, over the joints, then the largest and the median over frames valid in
both). This is the precision check for accelerators, whose float32 products
default to TF32.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import numpy as np

try:
  import resource
except ImportError:  # not a Unix
  resource = None

import lift3d
from experiments.benchmarks.lift_speed import random_model
from lift3d import camera, lifting, pose_model
from lift3d.sequence import DEFAULT_NUM_YAWS, lift_sequence, viterbi_path

NUM_YAWS = 100  # `lift`'s default
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def workload(model, num_sequences: int, num_frames: int, seed: int = 0):
  """(keypoints (S, F, L, 2) px float32, visibility (S, F, L) float32 with NaN keypoints
  where 0) from the model's component means turning in front of a level camera."""
  rng = np.random.default_rng(seed)
  poses = np.asarray(model.mean)[rng.integers(0, model.num_components, num_sequences)]
  yaw = rng.uniform(0, 2 * np.pi, num_sequences)[:, None] + 0.02 * np.arange(num_frames)
  points = np.einsum("sfab,slb->sfla", np.asarray(camera.yaw_rotation(yaw)), poses)
  keypoints = np.array(camera.weak_perspective(points, 300.0), np.float32)
  keypoints += rng.normal(size=keypoints.shape).astype(np.float32)
  shown = rng.uniform(size=keypoints.shape[:-1]) > 0.2
  visibility = (shown * rng.uniform(0.5, 1.0, size=shown.shape)).astype(np.float32)
  hidden = np.where(shown[..., None], keypoints, np.nan).astype(np.float32)
  return keypoints, visibility, hidden


def minor_faults() -> int:
  """This process's minor page faults so far (0 where `resource` is missing)."""
  if resource is None:
    return 0
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(fn, repeats: int):
  """(first call s, best s, the first call's answer, fresh memory MB of the best call).

  Fresh memory: minor page faults during the call × the page size, the memory
  the call touched for the first time (its new buffers). On this CPU every
  large temporary is fresh on every call, and first touches cost system time.
  """
  t = time.perf_counter()
  out = jax.block_until_ready(fn())
  first = time.perf_counter() - t
  best, fresh = np.inf, 0.0
  for _ in range(repeats):
    faults, t = minor_faults(), time.perf_counter()
    jax.block_until_ready(fn())
    elapsed = time.perf_counter() - t
    if elapsed < best:
      best, fresh = elapsed, (minor_faults() - faults) * _PAGE_BYTES / 1e6
  return first, best, out, fresh


def compare(name: str, what: str, mine, ref) -> str:
  """One line: agreement of (component, valid, pose3d) with a reference's."""
  comp, valid, pose = mine
  rcomp, rvalid, rpose = ref
  both = valid & rvalid
  dist = np.sqrt(np.sum((pose - rpose) ** 2, axis=-1)).mean(axis=-1)[both]
  worst = float(dist.max()) if dist.size else float("nan")
  median = float(np.median(dist)) if dist.size else float("nan")
  return (f"{name:<11} {what:<14} same component {np.mean(comp == rcomp):7.4f}  same valid "
          f"{np.mean(valid == rvalid):7.4f}  pose diff (mm) max {worst:9.4f} median {median:.2e}")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default=None, help="a saved PoseModel (.npz); default random")
  parser.add_argument("--components", type=int, default=9, help="K of the random model")
  parser.add_argument("--basis", type=int, default=14, help="J of the random model")
  parser.add_argument("--sequences", type=int, default=64)
  parser.add_argument("--frames", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--sequence-yaws", type=int, default=DEFAULT_NUM_YAWS,
                      help="T of lift_sequence (default: its default)")
  parser.add_argument("--rows", default="unweighted,weighted")
  parser.add_argument("--save", default=None, help="write the answers to this .npz")
  parser.add_argument("--compare", default=None, help="diff the answers against this .npz")
  parser.add_argument("--stages", action="store_true",
                      help="also time the grid and the Viterbi alone (unweighted)")
  args = parser.parse_args(argv)

  if args.model:
    model = pose_model.load(args.model)
  else:
    model = random_model(args.components, args.basis, 17)
  device = jax.devices()[0]
  print(f"machine: {platform.processor() or platform.machine()}, nproc={os.cpu_count()}, "
        f"jax {jax.__version__} on {device.platform} ({device.device_kind})")
  num_components, num_basis = model.num_components, int(np.shape(model.basis)[1])
  keypoints, visibility, hidden = workload(model, args.sequences, args.frames)
  frames = args.sequences * args.frames
  num_joints = keypoints.shape[-2]
  seq_yaws = args.sequence_yaws
  print(f"K={num_components} J={num_basis} T={NUM_YAWS} (lift), {seq_yaws} (lift_sequence), "
        f"{args.sequences} sequences x "
        f"{args.frames} frames = {frames} frames, float32")
  print(f"{'row':<11} {'call':<14} {'first s':>8} {'best s':>8} {'frames/s':>11} {'/ lift':>7} "
        f"{'fresh MB':>9}")
  saved, reference = {}, (dict(np.load(args.compare)) if args.compare else None)
  lines = []
  for row in [r for r in args.rows.split(",") if r]:
    if row not in ("unweighted", "weighted"):
      raise SystemExit(f"unknown row {row!r}")
    kp, vis = (keypoints, None) if row == "unweighted" else (hidden, visibility)
    flat_vis = None if vis is None else vis.reshape(-1, num_joints)
    calls = {
        "lift": lambda kp=kp, fv=flat_vis: lift3d.lift(model, kp.reshape(-1, num_joints, 2), fv,
                                                       num_yaws=NUM_YAWS),
        "lift_sequence": lambda kp=kp, vis=vis: lift_sequence(model, kp, vis,
                                                              num_yaws=seq_yaws),
    }
    if args.stages and row == "unweighted":
      scores = lifting.grid_scores(model, kp, num_yaws=seq_yaws)
      calls["  1 thread"] = lambda kp=kp: lift_sequence(model, kp, num_yaws=seq_yaws, threads=1)
      calls["  grid_scores"] = lambda kp=kp: lifting.grid_scores(model, kp, num_yaws=seq_yaws)
      calls["  viterbi_path"] = lambda scores=scores: viterbi_path(scores)
    rate, seconds = {}, {}
    for call, fn in calls.items():
      first, best, out, fresh = timed(fn, args.repeats)
      rate[call], seconds[call] = frames / best, best
      print(f"{row:<11} {call:<14} {first:>8.2f} {best:>8.4f} {rate[call]:>11,.0f} "
            f"{rate[call] / rate['lift']:>7.2f} {fresh:>9.0f}", flush=True)
      if call.startswith(" "):  # a stage: no answers to keep
        continue
      answer = (np.asarray(out.component).reshape(frames), np.asarray(out.valid).reshape(frames),
                np.asarray(out.pose3d).reshape(frames, num_joints, 3))
      key = f"{row}_{call}"
      for name, value in zip(("component", "valid", "pose3d"), answer, strict=True):
        saved[f"{key}_{name}"] = value
      if reference is not None:
        ref = tuple(reference[f"{key}_{name}"] for name in ("component", "valid", "pose3d"))
        lines.append(compare(row, call, answer, ref))
    if len(seconds) > 2:
      rest = seconds["  1 thread"] - seconds["  grid_scores"] - seconds["  viterbi_path"]
      print(f"{row:<11} {'  rest':<14} {'':>8} {rest:>8.4f}   (1 thread minus the two)")
  if lines:
    print(f"\nagainst {args.compare}:")
    print("\n".join(lines))
  if args.save:
    np.savez_compressed(args.save, **saved)
    print(f"answers written to {args.save}")


if __name__ == "__main__":
  main()
