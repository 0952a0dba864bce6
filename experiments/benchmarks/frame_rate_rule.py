r"""How `sequence.frame_rate_weights` should scale the smoothing weights with the frame rate.

  python -m experiments.benchmarks.frame_rate_rule                        # validation
  python -m experiments.benchmarks.frame_rate_rule --split test --seeds 1 --exponents 1.5,2

The default weights of `lift_sequence` were validated at 30 fps. At F times
that rate `frame_rate_weights` divides yaw_rate by F and multiplies max_gap by
F; this script compares powers p of F for the smoothing weights (smoothing and
blend_smoothing × F^p): p = 2 keeps a steady motion's cost per frame, p = 1 a
random walk's. `sequence_eval`'s held-out clips (validation or test) are
rendered as 4 s videos at each rate (`sequence_eval.Resampled`, one video per
clip and seed, `sequence_eval.render_videos`), lifted with `lift_sequence` at
each p, and scored against the truth over the frames per-frame `lift` calls
valid. Prints, per rate, MPJPE (mm), the acceleration error (mm/frame²) and the
per-video MPJPE difference against the last exponent listed (mean ± standard
error). The pose model is `sequence_eval`'s (cached in --workdir).
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="/tmp/sequence_eval",
                      help="sequence_eval's workdir (its pose model is cached there)")
  parser.add_argument("--split", choices=("validation", "test"), default="validation")
  parser.add_argument("--rates", default="15,20,24,60,120", help="frame rates (fps)")
  parser.add_argument("--exponents", default="1,1.5,2",
                      help="powers p of F; differences are against the last")
  parser.add_argument("--seeds", default="1,2,3", help="one video per clip and seed")
  args = parser.parse_args(argv)
  rates = [float(r) for r in args.rates.split(",")]
  exponents = [float(p) for p in args.exponents.split(",")]
  seeds = [int(s) for s in args.seeds.split(",")]
  if min(rates) <= 0:
    raise SystemExit(f"--rates must be positive, got {args.rates}")

  from experiments.benchmarks import sequence_eval as se
  from lift3d import sequence
  from lift3d.lifting import lift

  train, validation, heldout = se.corpus_parts()
  model = se.load_or_fit_model(args.workdir, train)
  clips = validation if args.split == "validation" else heldout
  print(f"{args.split}: {len(clips.clip_names)} clips x {len(seeds)} seeds; smoothing x F^p; "
        f"differences against p = {exponents[-1]:g}")
  print("| rate | `lift` | " + " | ".join(f"p = {p:g}" for p in exponents) + " |")
  print("|---|---:|" + "---|" * len(exponents))
  for rate in rates:
    ratio = rate / sequence.VALIDATED_FRAME_RATE
    videos = [se.render_videos(se.Resampled(clips, rate), clips.clip_names, 1, seed=seed,
                               length=round(120 * ratio)) for seed in seeds]
    keypoints, visibility, truth = (np.concatenate([v[i] for v in videos]) for i in range(3))
    per_frame = lift(model, keypoints, visibility, num_yaws=100)
    lift_valid = np.asarray(per_frame.valid)
    base = se.scores(np.asarray(per_frame.pose3d), lift_valid, truth)
    converted = sequence.frame_rate_weights(rate)
    cells, per_video = [], {}
    for p in exponents:
      weights = dict(converted, smoothing=sequence.DEFAULT_SMOOTHING * ratio**p,
                     blend_smoothing=sequence.DEFAULT_BLEND_SMOOTHING * ratio**p)
      result = sequence.lift_sequence(model, keypoints, visibility, **weights)
      pose, valid = np.asarray(result.pose3d), np.asarray(result.valid)
      score = se.scores(pose, valid, truth, lift_valid)
      per_video[p] = se.per_video_mpjpe(pose, truth, lift_valid & valid)
      cells.append((p, score))
    row = []
    for p, score in cells:
      diff = per_video[p] - per_video[exponents[-1]]
      diff = diff[np.isfinite(diff)]
      error = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else float("nan")
      row.append(f"{score['mpjpe']:.2f} ({score['accel']:.1f}), {diff.mean():+.2f} ± {error:.2f}")
    print(f"| {rate:g} fps | {base['mpjpe']:.2f} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
  main()
