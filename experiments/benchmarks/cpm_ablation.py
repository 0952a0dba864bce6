r"""Ablation with seeds and confidence intervals: the plain CPM versus the fused CPM (issue 17).

  python -m experiments.benchmarks.cpm_ablation --steps 600 --seeds 0 1 2 \
      --workdir runs/ablation --pose_model runs/pm/pose_model.npz
  python -m experiments.benchmarks.cpm_ablation --quick      # a smoke run, a minute or two

Both variants have the small configuration of experiments/configs/parts/cpm.py
with `--stages` stages (default 6) at `--image_size` pixels (default 128, maps
at stride 4), and the same budget: for every seed, both train the same number
of steps on the same renders of the training clips in the same order (the
seed fixes the initial weights of the shared layers and the data order; the
render source is the same for all seeds). Training renders use the
`--train_preset` of `lift3d.data.synthetic.PRESETS` (default "rich": body
shapes, patterned clothing, lighting, occluders at the default rate).

Evaluation on two held-out sets, renders of the held-out clips never seen in
training: "occluded" (preset rich_occluded: occluders in every image, mostly
over joints) and "unoccluded" (rich_unoccluded: no occluders; the body still
hides itself). Per run and set:
- 2D error, pixels, over in-frame joints that are visible, and separately
  over in-frame joints that are hidden (by an occluder or by the body);
- PCK: fraction of in-frame joints within 0.1 × the person's 2D box size
  (the larger side of the box around the true joints);
- MPJPE (hip-aligned) and PA-MPJPE (similarity Procrustes, 17 joints), mm,
  of the final lift over the frames whose lift is valid (`lift_valid`, the
  lift's own verdict: lifted and plausible), the same over every frame the
  lift produced a pose for (`*_lifted_mm`, the paper's convention), and the
  fraction `valid_fraction` that `lift3d.models.cpm.predict` calls valid
  (the lift's verdict and a mean landmark confidence of at least 0.2).
Across seeds: the mean and a 95% confidence interval (Student t, n − 1
degrees of freedom) of each metric per variant, and of the paired difference
fused − plain (the seeds pair the runs; that interval is the one to read).

The lift of the *true* 2D landmarks (visible joints weighted 1, others 0)
with the same pose model gives the 3D floor of the pipeline.

Every run checkpoints under `--workdir` (resumable) and its evaluation is
cached in `<workdir>/seed<s>/<variant>/eval.json`; `results.json` and
`results.md` hold the tables. The paper reports 10.04 px (plain CPM) -> 9.47 px
(fused) on Human3.6M.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time

import numpy as np

EVAL_SETS = {"occluded": "rich_occluded", "unoccluded": "rich_unoccluded"}
METRICS = ("px_visible", "px_hidden", "pck", "mpjpe_mm", "pa_mpjpe_mm", "lift_valid",
           "valid_fraction", "mpjpe_lifted_mm", "pa_mpjpe_lifted_mm")
# Two-sided 95% Student t quantiles, by degrees of freedom.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228}


def mean_ci(values) -> tuple[float, float]:
  """(mean, half-width of the 95% Student-t interval) of a few values (NaN for n < 2)."""
  values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
  n = len(values)
  if n == 0:
    return float("nan"), float("nan")
  if n < 2:
    return float(values.mean()), float("nan")
  t = _T975.get(n - 1, 1.96)
  return float(values.mean()), float(t * values.std(ddof=1) / math.sqrt(n))


def heldout_sources(config, heldout_poses, *, num_examples: int, seed: int = 12345):
  """{set name: SyntheticPoseSource} of the held-out renders (see EVAL_SETS)."""
  from lift3d.data import synthetic

  return {name: synthetic.SyntheticPoseSource(
      heldout_poses, image_size=int(config.image_size), seed=seed, length=num_examples,
      preset=preset, no_person_prob=0.0) for name, preset in EVAL_SETS.items()}


def stack_items(source, count: int) -> dict[str, np.ndarray]:
  """The first `count` items of a source, stacked."""
  items = [source[i] for i in range(min(count, len(source)))]
  return {k: np.stack([it[k] for it in items]) for k in items[0]}


def joint_masks(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """(visible, hidden): (N, L) bool over in-frame labelled joints."""
  in_frame = data["in_frame"] & np.all(np.isfinite(data["keypoints2d"]), axis=-1)
  hidden = in_frame & (data["occluded"] | data["self_occluded"])
  return in_frame & ~hidden, hidden


def box_size(keypoints: np.ndarray) -> np.ndarray:
  """(N,) the larger side of each 2D pose's box, pixels."""
  return np.max(np.nanmax(keypoints, axis=-2) - np.nanmin(keypoints, axis=-2), axis=-1)


def score(pred_keypoints, pose3d, valid, data, lift_valid=None, lifted=None) -> dict[str, float]:
  """The metrics of the module docstring for predictions on stacked held-out items.

  Args:
    pred_keypoints: (N, L, 2) pixels.
    pose3d: (N, L, 3) mm (anything where not valid).
    valid: (N,) bool, `predict`'s verdict.
    lift_valid: (N,) bool, the lift's own verdict (3D errors are over these
      frames); None: `valid`.
    data: stacked items ("keypoints2d", "in_frame", "occluded",
      "self_occluded", "pose3d" metres).
    lifted: (N,) bool, frames the final lift produced a pose for, plausible
      or not (`mpjpe_lifted_mm`, `pa_mpjpe_lifted_mm` are over these); None:
      every frame with a finite pose.

  Returns:
    A dict of METRICS.
  """
  from lift3d import eval as lift_eval

  visible, hidden = joint_masks(data)
  error = np.linalg.norm(pred_keypoints - data["keypoints2d"], axis=-1)  # (N, L)
  in_frame = visible | hidden
  correct = error <= 0.1 * box_size(data["keypoints2d"])[:, None]
  truth = data["pose3d"] * 1000.0
  lift_valid = valid if lift_valid is None else lift_valid
  lift_valid = lift_valid & np.all(np.isfinite(pose3d), axis=(-2, -1))
  out = {
      "lift_valid": float(np.mean(lift_valid)),
      "px_visible": float(error[visible].mean()),
      "px_hidden": float(error[hidden].mean()) if hidden.any() else float("nan"),
      "pck": float(correct[in_frame].mean()),
      "valid_fraction": float(np.mean(valid)),
      "hidden_fraction": float(hidden.sum() / max(in_frame.sum(), 1)),
  }
  finite = np.all(np.isfinite(pose3d), axis=(-2, -1))
  lifted = finite if lifted is None else lifted & finite
  for suffix, frames in (("", lift_valid), ("_lifted", lifted)):
    if np.any(frames):
      out[f"mpjpe{suffix}_mm"] = float(np.mean(lift_eval.mpjpe(pose3d[frames], truth[frames],
                                                               root_index=0)))
      out[f"pa_mpjpe{suffix}_mm"] = float(np.mean(lift_eval.pa_mpjpe(pose3d[frames],
                                                                     truth[frames])))
    else:
      out[f"mpjpe{suffix}_mm"] = out[f"pa_mpjpe{suffix}_mm"] = float("nan")
  return out


def predict_all(params, model, pose_model, data, *, batch_size: int = 32):
  """cpm.predict over stacked images.

  Returns:
    keypoints (N, L, 2) pixels, pose3d (N, L, 3) mm, valid (N,) (predict's
    verdict), lift_valid (N,) (the final lift's own), lifted (N,) (a pose came
    out, plausible or not).
  """
  import jax

  from lift3d.models import cpm

  keypoints, poses, valid, lift_valid, lifted = [], [], [], [], []
  for start in range(0, len(data["image"]), batch_size):
    pred = jax.device_get(cpm.predict(params, model, data["image"][start:start + batch_size],
                                      pose_model))
    keypoints.append(pred.keypoints2d)
    poses.append(pred.pose3d)
    valid.append(pred.valid)
    lift_valid.append(pred.output.lifted.valid)
    lifted.append(pred.output.lifted.component >= 0)
  return tuple(np.concatenate(a) for a in (keypoints, poses, valid, lift_valid, lifted))


def load_pose_model(path: str | None):
  """The pose model at `path`, else fitted with the default config on the training clips."""
  import jax

  from experiments import settings
  from experiments.configs import default
  from lift3d import pose_model as pose_model_lib

  if path and os.path.exists(path):
    return pose_model_lib.load(path)
  config = default.get_config()
  train_poses, _ = settings.split_corpus(config.data)
  model = pose_model_lib.fit(train_poses, key=jax.random.key(int(config.pose_model.seed)),
                             **settings.fit_kwargs(config.pose_model))
  if path:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pose_model_lib.save(path, model)
  return model


def make_config(*, image_size: int, stages: int, preset: str, quick: bool,
                trunk_features=None, stage_features=None):
  """The default config with the ablation's CPM section (None: the config's value).

  Returns:
    The whole config (`data` for the corpus split, `cpm` the network, renders
    and training).
  """
  from experiments.configs import default

  full = default.get_config()
  config = full.cpm
  config.image_size = image_size
  config.model.num_stages = stages
  if quick:
    config.model.trunk_features = (8, 16, 16)
    config.model.feature_channels = config.model.stage_features = 16
  if trunk_features:
    config.model.trunk_features = tuple(trunk_features)
  if stage_features:
    config.model.feature_channels = config.model.stage_features = int(stage_features)
  config.synthetic.render.preset = preset
  return full


def calibrate_steps(config, pose_model, source, train_cfg, workdir, *, budget_s: float,
                    num_runs: int, probe_steps: int = 40) -> int:
  """Steps per run such that `num_runs` seeds of both variants fit in `budget_s` seconds.

  Each variant trains `2 * probe_steps` steps (seed 0, its own directory
  under `workdir`); the rate of the second half (compiled, pipeline warm) sets
  the per-step time. The result is rounded down to a multiple of 50 (at least
  50), after 15% of the budget is kept back for compilation and evaluation.

  Returns:
    The number of training steps for every run.
  """
  from experiments import settings
  from lift3d import train

  seconds_per_step = 0.0
  for variant in ("plain", "fused"):
    config.fusion = variant == "fused"
    run_dir = os.path.join(workdir, variant)
    kwargs = dict(train_cfg, warmup_steps=1)
    train.train(settings.cpm_model(config), pose_model, source, run_dir,
                num_steps=2 * probe_steps, seed=0, log_every=probe_steps, progress=False,
                **kwargs)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
      rate = [json.loads(line) for line in f][-1]["steps_per_s"]
    print(f"calibration: {variant} {rate:.2f} steps/s", flush=True)
    seconds_per_step += 1.0 / rate
  steps = int(0.85 * budget_s / (num_runs * seconds_per_step)) // 50 * 50
  print(f"calibration: {steps} steps per run for {num_runs} seeds in {budget_s:.0f} s",
        flush=True)
  return max(steps, 50)


def _format(mean, half, digits=2):
  return f"{mean:.{digits}f} ± {half:.{digits}f}" if np.isfinite(half) else f"{mean:.{digits}f}"


def summarise(runs: dict, seeds) -> tuple[dict, str]:
  """Mean ± 95% CI per variant, set and metric, and of the paired fused − plain differences."""
  summary, lines = {}, []
  for set_name in EVAL_SETS:
    lines += [f"#### held-out set: {set_name}", "",
              "| metric | plain | fused | fused − plain (paired) |", "|---|---:|---:|---:|"]
    for metric in METRICS:
      plain = [runs[(s, "plain")][set_name][metric] for s in seeds]
      fused = [runs[(s, "fused")][set_name][metric] for s in seeds]
      diff = [f - p for f, p in zip(fused, plain, strict=True)]
      row = {v: mean_ci(x) for v, x in (("plain", plain), ("fused", fused), ("diff", diff))}
      summary[f"{set_name}/{metric}"] = {k: list(v) for k, v in row.items()}
      digits = 2 if metric.endswith(("_px", "_mm")) or metric.startswith("px") else 4
      lines.append(f"| {metric} | {_format(*row['plain'], digits)} | "
                   f"{_format(*row['fused'], digits)} | {_format(*row['diff'], digits)} |")
    lines.append("")
  return summary, "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny network, few steps and images")
  parser.add_argument("--steps", type=int, default=None, help="training steps per run")
  parser.add_argument("--time_budget_s", type=float, default=None,
                      help="instead of --steps: time the steps of both variants on a short "
                           "calibration run, then give every run the same number of steps, "
                           "as many as fit the budget (all seeds and variants together)")
  parser.add_argument("--workers", type=int, default=0,
                      help="render processes feeding training (0: render in the trainer)")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--image_size", type=int, default=128)
  parser.add_argument("--stages", type=int, default=6)
  parser.add_argument("--batch_size", type=int, default=None)
  parser.add_argument("--trunk_features", type=int, nargs="+", default=None,
                      help="channels per trunk block (stride 2**(n-1)); default the config's")
  parser.add_argument("--stage_features", type=int, default=None)
  parser.add_argument("--train_preset", default="rich")
  parser.add_argument("--eval_examples", type=int, default=None, help="images per held-out set")
  parser.add_argument("--workdir", default=None, help="checkpoints and results (resumable)")
  parser.add_argument("--pose_model", default=None, help="pose model .npz (fitted if absent)")
  args = parser.parse_args()

  import jax

  import lift3d
  from experiments import settings
  from lift3d import train
  from lift3d.data import synthetic

  full = make_config(image_size=args.image_size, stages=args.stages,
                       preset=args.train_preset, quick=args.quick,
                       trunk_features=args.trunk_features, stage_features=args.stage_features)
  config = full.cpm
  if args.batch_size:
    config.train.batch_size = args.batch_size
  num_eval = args.eval_examples or (16 if args.quick else 128)
  workdir = args.workdir or tempfile.mkdtemp(prefix="cpm_ablation_")
  os.makedirs(workdir, exist_ok=True)
  pose_model = load_pose_model(args.pose_model)
  train_poses, heldout_poses = settings.split_corpus(full.data)
  train_source = synthetic.SyntheticPoseSource(train_poses, **settings.render_kwargs(config))
  eval_data = {name: stack_items(src, num_eval) for name, src in
               heldout_sources(config, heldout_poses, num_examples=num_eval).items()}
  train_cfg = settings.train_kwargs(config.train)
  for key in ("num_steps", "time_limit_s", "log_every", "warmup_steps"):
    train_cfg.pop(key)
  train_cfg["worker_count"] = args.workers
  if args.steps:
    steps = args.steps
  elif args.time_budget_s:
    steps = calibrate_steps(config, pose_model, train_source, train_cfg,
                            os.path.join(workdir, "calibration"), budget_s=args.time_budget_s,
                            num_runs=len(args.seeds))
  else:
    steps = 10 if args.quick else 1000
  train_cfg["warmup_steps"] = max(steps // 10, 1)

  runs = {}
  for seed in args.seeds:
    for variant in ("plain", "fused"):
      config.fusion = variant == "fused"
      model = settings.cpm_model(config)
      run_dir = os.path.join(workdir, f"seed{seed}", variant)
      cache = os.path.join(run_dir, "eval.json")
      if os.path.exists(cache):
        with open(cache) as f:
          cached = json.load(f)
        if cached["steps"] == steps:
          runs[(seed, variant)] = cached
          continue
      start = time.perf_counter()
      state = train.train(model, pose_model, train_source, run_dir, num_steps=steps, seed=seed,
                          log_every=max(steps // 10, 1), progress=False, **train_cfg)
      train_s = time.perf_counter() - start
      params = jax.device_get(state.params)
      result = {"steps": steps, "train_s": train_s, "seed": seed, "variant": variant}
      for name, data in eval_data.items():
        keypoints, pose3d, valid, lift_valid, lifted = predict_all(params, model, pose_model,
                                                                   data)
        result[name] = score(keypoints, pose3d, valid, data, lift_valid, lifted)
      if config.fusion:
        result["omega"] = np.asarray(jax.nn.sigmoid(params["fusion_logits"])).tolist()
      with open(cache, "w") as f:
        json.dump(result, f, indent=2)
      runs[(seed, variant)] = result
      print(f"seed {seed} {variant}: {train_s:.0f} s; " + "; ".join(
          f"{name}: {result[name]['px_visible']:.2f}/{result[name]['px_hidden']:.2f} px "
          f"vis/hid, MPJPE {result[name]['mpjpe_mm']:.0f}" for name in EVAL_SETS), flush=True)

  floor = {}
  for name, data in eval_data.items():
    visible, _ = joint_masks(data)
    lifted = jax.device_get(lift3d.lift(pose_model, data["keypoints2d"],
                                        visible.astype(np.float32),
                                        num_yaws=config.model.num_yaws))
    floor[name] = score(data["keypoints2d"], lifted.pose3d, lifted.valid, data)
  summary, table = summarise(runs, args.seeds)
  header = (f"{len(args.seeds)} seeds {args.seeds}; {steps} steps × batch "
            f"{config.train.batch_size} per run; {args.image_size} px, {args.stages} stages "
            f"(trunk {tuple(config.model.trunk_features)}, stride {model.stride}, "
            f"{config.model.stage_features}-channel stages); train preset {args.train_preset}; "
            f"{num_eval} held-out images per set; mean ± 95% CI half-width over seeds")
  floor_lines = ["| held-out set | true 2D → lift MPJPE mm | PA-MPJPE mm | valid |",
                 "|---|---:|---:|---:|"] + [
      f"| {name} | {f['mpjpe_mm']:.1f} | {f['pa_mpjpe_mm']:.1f} | {f['valid_fraction']:.2f} |"
      for name, f in floor.items()]
  omega = np.mean([runs[(s, "fused")]["omega"] for s in args.seeds], axis=0)
  omega_line = "mean learned ω per stage: " + ", ".join(f"{w:.3f}" for w in omega.mean(axis=1))
  text = "\n".join([header, "", table, "\n".join(floor_lines), "", omega_line, ""])
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"summary": summary, "floor": floor, "omega": omega.tolist(),
               "runs": [runs[k] for k in sorted(runs)], "header": header}, f, indent=2)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()
