r"""Video lifting: `lift3d.lift_sequence` against per-frame `lift` on held-out clips (issue 16).

  python -m experiments.benchmarks.sequence_eval --workdir /tmp/sequence_eval
  python -m experiments.benchmarks.sequence_eval --workdir /tmp/sequence_eval --quick
  python -m experiments.benchmarks.sequence_eval --workdir /tmp/sequence_eval --no-validate --fps 60

Data: the embedded mocap corpus (CMU, HDM05 and DeepMimic clips) split as the
default job splits it (experiments/configs/parts/data.py): the default pose
model (K and J of configs/parts/pose_model.py, every 2nd training frame) is
fitted on the training clips and cached in the workdir, with the lifting's prior
the job calibrated for it (`OBS_NOISE`, `PRIOR_WEIGHT`); the weights are
searched on the validation clips (`validation_clips` / `validation_prefixes`),
the comparison is on the held-out clips (`holdout_clips` / `holdout_prefixes`). Each clip becomes
videos (default one, 120 frames) at its own frame rate: played forwards and
backwards (so the motion stays continuous; short clips repeat), the subject
at a random yaw, a fixed pinhole camera per video (focal 1000 px, 4-7 m
away, 0.8-1.3 m high, looking at the hip), 3 px Gaussian 2D noise,
occlusions of single joints lasting 5-25 frames (1% chance per joint and
frame) and one or two dropouts of the whole person lasting 3-10 frames.

The videos are rendered by `experiments.jobs.lifting.render_videos`, as in the
default job's video step, which runs the same test comparison (seed 2).

Metrics (mm, 17 joints, camera frame, root-aligned): MPJPE, PA-MPJPE and the
acceleration error (mean over joints of |second difference of prediction −
that of the truth|, mm/frame², as VideoPose3D reports it), over the frames
that per-frame lifting gets (valid), plus `lift_sequence` over all frames.

Default weights of `lift_sequence`: a coordinate search (two sweeps) on the
validation clips minimising MPJPE + acceleration error, or with `--accel_cap F`
(how the current defaults were chosen, F = 0.25) MPJPE among the weights whose
acceleration error is at most F times per-frame `lift`'s (printed). Speed: unweighted,
64 noisy sequences of 256 frames, `lift` and `lift_sequence` in the same
process (best of 3 after a warm-up), as wall-clock rates and as frames per
CPU-second of the process (steadier on a shared machine). A figure of where
the error is (`error_figure`) goes to WORKDIR/sequence_eval.png.

`--fps R`: the held-out clips (30 fps) are resampled to R fps by linear
interpolation of the poses, the videos keep their duration (`--frames` × R/30
frames), and `lift_sequence` runs with `sequence.frame_rate_weights(R)`; no
weight search.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.jobs.lifting import render_videos
from experiments.jobs.lifting import video_scores as scores
from lift3d import camera, pose_model, sequence
from lift3d.data import mocap
from lift3d.eval import mpjpe
from lift3d.lifting import lift
from lift3d.skeleton import H36M17

NUM_YAWS = 100  # `lift`'s grid; `lift_sequence` runs at its default (32)
# The lifting's prior of the pose model, as the default job calibrated it
# (experiments/jobs/pose_model.py on the validation clips) for the default
# K = 9, J = 14: σ_obs, β (0.1, 1 for the earlier K = 3, J = 10).
OBS_NOISE = 0.07
PRIOR_WEIGHT = 1.0


def corpus_parts():
  """(train, validation, test) `MocapCorpus` of the default job's split (configs/parts/data.py)."""
  from experiments import settings
  from experiments.configs.parts import data

  return settings.corpus_parts(data.get())


class Resampled:
  """A corpus's clips at `frame_rate` fps: its poses interpolated linearly in time.

  Offers what `render_videos` reads: `clip_names`, `clip_poses(name)` (N', L, 3)
  and `clip_rate(name)` (= frame_rate).
  """

  def __init__(self, corpus: mocap.MocapCorpus, frame_rate: float):
    self.corpus, self.frame_rate = corpus, float(frame_rate)
    self.clip_names = corpus.clip_names

  def clip_rate(self, name: str) -> float:
    return self.frame_rate

  def clip_poses(self, name: str) -> np.ndarray:
    poses = np.asarray(self.corpus.clip_poses(name), np.float64)
    step = self.corpus.clip_rate(name) / self.frame_rate  # source frames per new frame
    times = np.arange(0.0, len(poses) - 1 + 1e-9, step)
    index = np.minimum(np.floor(times).astype(int), len(poses) - 2)
    weight = (times - index)[:, None, None]
    return (1 - weight) * poses[index] + weight * poses[index + 1]


def load_or_fit_model(workdir: str, train: mocap.MocapCorpus) -> pose_model.PoseModel:
  """The default job's pose model (K, J of configs/parts/pose_model.py) on `train`,
  with σ_obs = OBS_NOISE and β = PRIOR_WEIGHT; cached in the workdir."""
  from experiments import settings
  from experiments.configs.parts import data
  from experiments.configs.parts import pose_model as pose_model_config

  section = pose_model_config.get()
  path = os.path.join(workdir, f"pose_model_sequence_eval_k{section.num_components}"
                               f"_j{section.num_basis}_obs{OBS_NOISE:g}.npz")
  if os.path.exists(path):
    return pose_model.load(path)
  poses = train.subsample(int(data.get().frame_stride)).poses
  model = pose_model.fit(np.asarray(poses, np.float32), key=jax.random.key(int(section.seed)),
                         **settings.fit_kwargs(section))
  model = model.replace(obs_noise=jnp.asarray(OBS_NOISE, jnp.float32),
                        prior_weight=jnp.asarray(PRIOR_WEIGHT, jnp.float32))
  pose_model.save(path, model)
  return model


def per_video_mpjpe(pose3d, truth, frames):
  """(V,) MPJPE (mm) of each video over its `frames` (V, F) bool (NaN where none);
  pose3d and truth (V, F, 17, 3) root-centred."""
  error = np.asarray(mpjpe(pose3d, truth, root_index=0))  # (V, F)
  count = frames.sum(1)
  total = np.where(frames, error, 0.0).sum(1)
  return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def axis_errors(pose3d, truth, frames):
  """(3,) mean absolute error (mm) along the camera's x, y and depth over `frames`."""
  return np.abs(pose3d[frames] - truth[frames]).mean(axis=(0, 1))


def error_figure(path, truth, lift_pose, seq_pose, frames, joint: int = 16):
  """Where the video error is, as a PNG: per-video MPJPE of `lift_sequence` against
  per-frame `lift` (with the issue's −10% line), the mean absolute error per camera
  axis, and the depth of one joint (default the right wrist) over the video whose
  gain is the median one. All (V, F, 17, 3) mm root-centred; `frames` (V, F) bool:
  the frames compared (`main`: those both methods call valid)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  per_lift = per_video_mpjpe(lift_pose, truth, frames)
  per_seq = per_video_mpjpe(seq_pose, truth, frames)
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1, 0.8, 1.6]})
  ax = axes[0]
  ax.scatter(per_lift, per_seq, s=14, alpha=0.7)
  top = np.nanmax([per_lift, per_seq]) * 1.05
  ax.plot([0, top], [0, top], color="0.5", lw=1, label="equal")
  ax.plot([0, top], [0, 0.9 * top], color="tab:red", lw=1, ls="--", label="10% lower")
  ax.set(xlim=(0, top), ylim=(0, top), xlabel="per-frame lift: MPJPE (mm)",
         ylabel="lift_sequence: MPJPE (mm)", title="one point per test video")
  ax.legend(fontsize=8)
  ax = axes[1]
  width = 0.38
  for n, (label, pose) in enumerate((("per-frame lift", lift_pose),
                                     ("lift_sequence", seq_pose))):
    ax.bar(np.arange(3) + (n - 0.5) * width, axis_errors(pose, truth, frames), width,
           label=label)
  ax.set_xticks(np.arange(3), ["x", "y", "depth"])
  ax.set(ylabel="mean absolute error (mm)", title="error along the camera's axes")
  ax.legend(fontsize=8)
  ax = axes[2]
  gain = per_seq / per_lift
  finite = np.flatnonzero(np.isfinite(gain))
  video = finite[np.argsort(gain[finite])[finite.size // 2]]
  time = np.arange(truth.shape[1])
  ax.plot(time, truth[video, :, joint, 2], color="black", lw=1.5, label="truth")
  ax.plot(time, np.where(frames[video], lift_pose[video, :, joint, 2], np.nan), lw=1,
          label="per-frame lift")
  ax.plot(time, seq_pose[video, :, joint, 2], lw=1.5, label="lift_sequence")
  ax.set(xlabel="frame", ylabel="depth relative to the hip (mm)",
         title=f"{H36M17.names[joint]}, the video of median gain ({gain[video]:.2f}x MPJPE)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def run_sequence(model, videos, **weights):
  keypoints, visibility, _, _ = videos
  result = sequence.lift_sequence(model, keypoints, visibility, **weights)
  return np.asarray(result.pose3d), np.asarray(result.valid)


def validate(model, videos, log, accel_cap: float | None = None) -> dict:
  """Coordinate search of the weights on validation videos; returns the best.

  Objective: MPJPE + acceleration error (mm, mm/frame²); with `accel_cap`, MPJPE
  among the settings whose acceleration error is at most `accel_cap` (others rank
  after every setting within the cap, by their excess).
  """
  truth = videos[2]
  best = {"yaw_rate": sequence.DEFAULT_YAW_RATE, "yaw_jump": sequence.DEFAULT_YAW_JUMP,
          "component_switch": sequence.DEFAULT_COMPONENT_SWITCH,
          "smoothing": sequence.DEFAULT_SMOOTHING,
          "blend_weight": sequence.DEFAULT_BLEND_WEIGHT,
          "blend_smoothing": sequence.DEFAULT_BLEND_SMOOTHING,
          "blend_hidden": sequence.DEFAULT_BLEND_HIDDEN}
  grids = {"smoothing": (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0),
           "yaw_rate": (0.02, 0.05, 0.1, 0.2),
           "component_switch": (1.0, 5.0, 20.0, 100.0),
           "yaw_jump": (5.0, 20.0, 100.0),
           "blend_weight": (0.0, 0.6, 0.8, 1.0),
           "blend_smoothing": (1.0, 3.0, 10.0, 30.0, 100.0),
           "blend_hidden": (0.0, 0.5, 1.0)}
  cache = {}

  def objective(weights):
    key = tuple(sorted(weights.items()))
    if key not in cache:
      pose3d, valid = run_sequence(model, videos, **weights)
      s = scores(pose3d, valid, truth)
      if accel_cap is None:
        cache[key] = s["mpjpe"] + s["accel"]
      else:
        cache[key] = s["mpjpe"] + (1e6 + s["accel"] if s["accel"] > accel_cap else 0.0)
      log(f"  validation {weights}: MPJPE {s['mpjpe']:.1f} accel {s['accel']:.2f} "
          f"-> {cache[key]:.2f}")
    return cache[key]

  for _ in range(2):  # two sweeps of the coordinates
    for name, grid in grids.items():
      values = {v: objective({**best, name: v}) for v in grid}
      best[name] = min(values, key=values.get)
  return best


def speed(model, num_sequences=64, num_frames=256, repeats=3):
  rng = np.random.default_rng(0)
  poses = np.asarray(model.mean)[rng.integers(0, model.num_components, num_sequences)]
  yaw = rng.uniform(0, 2 * np.pi, num_sequences)[:, None] + 0.02 * np.arange(num_frames)
  rot = np.asarray(camera.yaw_rotation(yaw))
  points = np.einsum("sfab,slb->sfla", rot, poses)
  keypoints = np.array(camera.weak_perspective(points, 300.0), np.float32)
  keypoints += rng.normal(size=keypoints.shape).astype(np.float32)
  flat = keypoints.reshape(-1, 17, 2)

  def best_time(fn):
    """(best wall seconds, best CPU seconds of the process) of a call."""
    jax.block_until_ready(fn())
    times, cpu = [], []
    for _ in range(repeats):
      t, c = time.perf_counter(), time.process_time()
      jax.block_until_ready(fn())
      times.append(time.perf_counter() - t)
      cpu.append(time.process_time() - c)
    return min(times), min(cpu)

  frames = num_sequences * num_frames
  t_lift = best_time(lambda: lift(model, flat, num_yaws=NUM_YAWS))
  t_seq = best_time(lambda: sequence.lift_sequence(model, keypoints))
  return (frames / t_lift[0], frames / t_seq[0]), (frames / t_lift[1], frames / t_seq[1])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--quick", action="store_true", help="fewer clips, no validation")
  parser.add_argument("--videos", type=int, default=1, help="videos per clip")
  parser.add_argument("--frames", type=int, default=120, help="frames per video")
  parser.add_argument("--no-validate", action="store_true",
                      help="skip the validation search (test and speed only)")
  parser.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
  parser.add_argument("--fps", type=float, default=None,
                      help="resample the clips to this frame rate and convert lift_sequence's "
                           "weights to it (sequence.frame_rate_weights); implies --no-validate")
  parser.add_argument("--accel_cap", type=float, default=None,
                      help="validate on MPJPE alone among the weights whose acceleration "
                           "error is at most this fraction of per-frame lift's (default: "
                           "MPJPE + acceleration error)")
  args = parser.parse_args(argv)
  os.makedirs(args.workdir, exist_ok=True)
  log = lambda s: print(s, flush=True)  # noqa: E731
  log(f"machine: {platform.machine()} {os.cpu_count()} cores, jax {jax.__version__} "
      f"{jax.default_backend()}")
  train, validation, heldout = corpus_parts()
  model = load_or_fit_model(args.workdir, train)
  log(f"model: K={model.num_components}, J={model.basis.shape[1]}, fitted on "
      f"{train.num_clips} clips; obs_noise {float(model.obs_noise):g}, prior_weight "
      f"{float(model.prior_weight):g}")
  val_clips, test_clips = validation.clip_names, heldout.clip_names
  if args.quick:
    val_clips, test_clips = val_clips[::6], test_clips[::6]
  weights, rate_weights, frames = None, {}, args.frames
  if args.fps is not None:  # the clips at another frame rate, the weights converted
    rate_weights = sequence.frame_rate_weights(args.fps)
    heldout = Resampled(heldout, args.fps)
    frames = round(args.frames * args.fps / sequence.VALIDATED_FRAME_RATE)
    log(f"at {args.fps:g} fps: {frames} frames a video, lift_sequence weights {rate_weights}")
  if not (args.quick or args.no_validate or args.fps is not None):
    val = render_videos(validation, val_clips, args.videos, seed=1, length=args.frames)
    log(f"validation: {val[0].shape[0]} videos x {val[0].shape[1]} frames "
        f"({len(val_clips)} clips)")
    base = lift(model, val[0], val[1], num_yaws=NUM_YAWS)
    s = scores(np.asarray(base.pose3d), np.asarray(base.valid), val[2])
    log(f"  validation, per-frame lift: MPJPE {s['mpjpe']:.1f} accel {s['accel']:.2f}")
    cap = None if args.accel_cap is None else args.accel_cap * s["accel"]
    weights = validate(model, val, log, accel_cap=cap)
    log(f"chosen weights: {weights}")
  test = render_videos(heldout, test_clips, args.videos, seed=2, length=frames)
  keypoints, visibility, truth, rates = test
  log(f"test: {keypoints.shape[0]} videos x {keypoints.shape[1]} frames "
      f"({len(test_clips)} clips) at {sorted(set(np.round(rates, 2).tolist()))} fps")
  per_frame = lift(model, keypoints, visibility, num_yaws=NUM_YAWS)
  lift_pose, lift_valid = np.asarray(per_frame.pose3d), np.asarray(per_frame.valid)
  # `valid` is `plausible` (docs/method.md §4.5); the comparisons use the frames
  # per-frame lifting lifted and judged plausible.
  rows = {"lift (per frame)": scores(lift_pose, lift_valid, truth)}
  model_pose = lift(model, keypoints, visibility, num_yaws=NUM_YAWS, reconstruction="model")
  rows["lift (per frame), reconstruction=\"model\""] = scores(
      np.asarray(model_pose.pose3d), np.asarray(model_pose.valid), truth)
  # Both yaws of each (θ, θ + π) pair solved exactly, against the default (the
  # one of lower linearised cost): how many answers differ.
  both = lift(model, keypoints, visibility, num_yaws=NUM_YAWS, opposite_yaws=True)
  rows["lift (per frame), opposite_yaws=True"] = scores(
      np.asarray(both.pose3d), np.asarray(both.valid), truth)
  lifted = np.asarray(per_frame.component) >= 0
  differ = lifted & ((np.asarray(both.component) != np.asarray(per_frame.component))
                     | (np.abs(np.asarray(both.yaw) - np.asarray(per_frame.yaw)) > 1e-4))
  log(f"opposite_yaws=True changes {differ.sum()} of {lifted.sum()} lifted answers "
      f"({100 * differ.sum() / max(lifted.sum(), 1):.2f}%)")
  pose3d, valid = run_sequence(model, test, reconstruction="model", **rate_weights)
  rows["lift_sequence (defaults), reconstruction=\"model\", lift's frames"] = scores(
      pose3d, valid, truth, lift_valid)
  pose3d, valid = run_sequence(model, test, fixed_bones=False, **rate_weights)
  rows["lift_sequence (defaults), fixed_bones=False, lift's frames"] = scores(
      pose3d, valid, truth, lift_valid)
  for label, w in (("lift_sequence (defaults)", rate_weights),
                   *((("lift_sequence (validated)", weights),) if weights else ())):
    pose3d, valid = run_sequence(model, test, **w)
    rows[f"{label}, lift's frames"] = scores(pose3d, valid, truth, lift_valid)
    rows[f"{label}, all frames"] = scores(pose3d, valid, truth)
    if w is rate_weights:
      figure = os.path.join(args.workdir, "sequence_eval.png")
      error_figure(figure, truth, lift_pose, pose3d, lift_valid & valid)
      log(f"figure (defaults against per-frame lift): {figure}")
  log("| method | frames | MPJPE | PA-MPJPE | accel (mm/frame²) |")
  log("|---|---|---|---|---|")
  for label, s in rows.items():
    log(f"| {label} | {100 * s['valid']:.1f}% valid | {s['mpjpe']:.1f} | {s['pa_mpjpe']:.1f} | "
        f"{s['accel']:.2f} |")
  base = rows["lift (per frame)"]
  for label in ("defaults", "validated"):
    seq = rows.get(f"lift_sequence ({label}), lift's frames")
    if seq:
      log(f"ratios ({label}, lift's frames): MPJPE {seq['mpjpe'] / base['mpjpe']:.3f}, "
          f"PA-MPJPE {seq['pa_mpjpe'] / base['pa_mpjpe']:.3f}, "
          f"accel {seq['accel'] / base['accel']:.3f}")
  if not args.no_speed:
    (lift_fps, seq_fps), (lift_cpu, seq_cpu) = speed(model, num_sequences=8 if args.quick
                                                     else 64)
    log(f"speed, unweighted, 256-frame sequences: lift {lift_fps:,.0f} frames/s, "
        f"lift_sequence {seq_fps:,.0f} frames/s (ratio {seq_fps / lift_fps:.2f}); per "
        f"CPU-second of the process: lift {lift_cpu:,.0f}, lift_sequence {seq_cpu:,.0f} "
        f"(ratio {seq_cpu / lift_cpu:.2f}); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  main()
