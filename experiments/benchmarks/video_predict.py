r"""`lift3d predict` on rendered videos: frame by frame against `--sequence`.

  python -m experiments.benchmarks.video_predict --network runs/default [--frames 120]

Each held-out clip of the default job (`sequence_eval`'s test clips: real people
of CMU and HDM05, and DeepMimic's humanoid) becomes a video of synthetic
renders: one scene per clip (the held-out render options of
`experiments/configs/default.py`; seed per clip) seen by a fixed camera
(`lift3d.data.synthetic.sample_video`: camera, yaw, body, clothing, background
and occluders fixed for the whole video, the hip fixed in the camera frame, the
camera as far as the clip's largest pose needs), the clip's poses frame by frame
at its own rate. The network's 2D landmarks come from `lift3d.predict` with the
CLI's tracking (`cli_predict._follow`); their 3D pose from its per-frame lift, or
from the CLI's sequence lift (`cli_predict._sequence_people`: `lift_sequence` per
track at the clip's frame rate). Prints MPJPE, PA-MPJPE (mm) and the acceleration
error (mm/frame²) of both against the rendered 3D poses, over the frames valid in
both, and the per-video difference (mean ± standard error). The renders' cameras are pitched
(`elevation_deg`) and both lifts assume a level camera.

`--network`: a training workdir or a file from `lift3d export`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def render_video(poses, seed: int, render_kwargs: dict):
  """(images (F, H, W, 3) uint8, truth (F, 17, 3) mm root-centred in the camera frame)
  of one scene seen by a fixed camera (`synthetic.sample_video`): `poses` (F, 17, 3)
  metres in time order."""
  from lift3d.data import synthetic

  source = synthetic.SyntheticPoseSource(poses, seed=seed, length=1, **render_kwargs)
  scenes = source.video(poses)
  return (np.stack([synthetic.render(scene) for scene in scenes]),
          np.stack([scene.pose3d * 1000.0 for scene in scenes]))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--network", required=True,
                      help="training workdir or exported network file")
  parser.add_argument("--frames", type=int, default=120, help="frames per video")
  args = parser.parse_args(argv)
  if args.frames < 3:
    raise SystemExit(f"--frames must be at least 3 (the acceleration error), got {args.frames}")

  from experiments import settings
  from experiments.benchmarks import sequence_eval
  from experiments.configs import default
  from lift3d import cli_predict, inference

  render_kwargs = settings.heldout_render_kwargs(default.get_config().cpm)
  render_kwargs.pop("length")
  seed = int(render_kwargs.pop("seed")) + 1000
  network = inference.load_network(args.network)
  _, _, heldout = sequence_eval.corpus_parts()
  nan = np.full((17, 3), np.nan)
  poses = {"per frame": [], "sequence": []}
  valid = {"per frame": [], "sequence": []}
  truths = []
  start = time.perf_counter()
  for c, name in enumerate(heldout.clip_names):
    clip = heldout.clip_poses(name).astype(np.float64)
    loop = np.concatenate([clip, clip[-2:0:-1]])  # forwards, then backwards
    images, truth = render_video(loop[np.arange(args.frames) % len(loop)], seed + c,
                                 render_kwargs)
    frames_people, tracked = [], None
    for image in images:
      people = inference.predict(network, None, [image],
                                 None if tracked is None else [tracked])[0]
      tracked = cli_predict._follow(people, tracked)
      frames_people.append(people)
    rate = heldout.clip_rate(name)
    smoothed = cli_predict._sequence_people(frames_people, network.pose_model, rate, None)
    for key, people in (("per frame", frames_people), ("sequence", smoothed)):
      poses[key].append([p[0].lifted.pose3d if p[0].valid else nan for p in people])
      valid[key].append([p[0].valid for p in people])
    truths.append(truth)
    print(f"{c + 1}/{len(heldout.clip_names)} {name} ({rate:g} fps): valid per frame "
          f"{np.mean(valid['per frame'][-1]):.2f}, sequence {np.mean(valid['sequence'][-1]):.2f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)

  truth = np.asarray(truths, np.float64)
  pose = {k: np.asarray(v, np.float64) for k, v in poses.items()}
  ok = {k: np.asarray(v) for k, v in valid.items()}
  both = ok["per frame"] & ok["sequence"]
  print(f"\n{len(truth)} videos x {args.frames} frames; valid: per frame "
        f"{ok['per frame'].mean():.3f}, sequence {ok['sequence'].mean():.3f}; "
        f"compared on the {both.mean():.3f} valid in both")
  print("| lift | MPJPE | PA-MPJPE | accel (mm/frame²) |\n|---|---:|---:|---:|")
  for key in pose:
    s = sequence_eval.scores(pose[key], ok[key], truth, both)
    print(f"| {key} | {s['mpjpe']:.1f} | {s['pa_mpjpe']:.1f} | {s['accel']:.2f} |")
  per_video = {k: sequence_eval.per_video_mpjpe(pose[k], truth, both) for k in pose}
  diff = per_video["sequence"] - per_video["per frame"]
  diff = diff[np.isfinite(diff)]
  print(f"per-video MPJPE, sequence minus per frame: {diff.mean():+.1f} ± "
        f"{diff.std(ddof=1) / np.sqrt(diff.size):.1f} mm ({diff.size} videos)")


if __name__ == "__main__":
  main()
