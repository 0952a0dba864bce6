r"""Quality of the lifting on real people: defaults (K, J, σ_obs, β), candidates, blend, sanity.

  python -m experiments.benchmarks.lift_quality            # the full study (> 1 h on 2 cores)
  python -m experiments.benchmarks.lift_quality --quick    # K=3, J=10 only, fewer frames
  python -m experiments.benchmarks.lift_quality --sections 1 --grid 3x6,3x14
  python -m experiments.benchmarks.lift_quality --sections 3 --frames 500

Data: the embedded corpus (`lift3d.data.mocap.load_embedded()`: CMU, HDM05,
DeepMimic), split by whole clips as the default job splits it
(`experiments/configs/parts/data.py`): test clips (DeepMimic walk and punch,
CMU walk/run/punch/scoop/dance/playground-sit clips and every clip of HDM05
actor "mm"), validation clips (other CMU clips and HDM05 actor "tr") and the
rest for training. 2D views come from the default job's pinhole cameras
(`experiments.jobs.lifting.make_views`).

Every model is fitted on the training clips and its prior (σ_obs, β) chosen on
validation views as the default job chooses it (`calibrate_prior`; the
conditions of `experiments.jobs.pose_model.CALIBRATION_CONDITIONS`, one
pinhole camera each, `--frames` frames per condition), or set by `--prior`.

Prints Markdown tables (`--sections` picks them):
1. per (K, J) of `--grid`: σ_obs and β chosen on the validation views, then
   MPJPE / PA-MPJPE on the test views, "model" and the default blend (the
   default job's setting: 4 cameras, 3 px noise, 10% hidden, `--test-frames`
   frames), and the blend on validation views of that setting (the column that
   chooses K and J);
2. how often the exact re-ranking of C candidates per component, or of the
   candidates of only the M components of lowest linearised score, changes the
   answer against the exhaustive exact search, for the `--model` (K, J);
3. reconstruction "model" against "blend" (α): α chosen on validation views
   (0 px; 3 px + 10% hidden; 5 px + 30% hidden), then the chosen α and "model"
   on test views of the same conditions and of the default job's setting;
4. the corpus sweep: every n-th corpus pose at 20 random yaws (orthographic, 2 px
   noise): frames with scale ≤ 0, upright poses lifted upside down, valid frames
   whose size is off by more than 25%.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from experiments import settings
from experiments.configs.parts import data as data_config
from experiments.configs.parts import lift as lift_config
from experiments.configs.parts import pose_model as pose_model_config
from experiments.jobs.lifting import make_views
from experiments.jobs.pose_model import CALIBRATION_CONDITIONS
from lift3d import camera, lifting, pose_model
from lift3d.data import mocap
from lift3d.eval import pa_mpjpe
from lift3d.lifting import calibrate

# Validation / test conditions of section 3: (name, 2D noise px, hidden fraction).
BLEND_CONDITIONS = (("0px", 0.0, 0.0), ("3px+10%hidden", 3.0, 0.1), ("5px+30%hidden", 5.0, 0.3))
BLEND_WEIGHTS = (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0)


def split_corpus():
  """(train, validation, test) corpora of the default job's split."""
  corpus = mocap.load_embedded()
  cfg = data_config.get()
  rest, test = corpus.split(tuple(cfg.holdout_clips), tuple(cfg.holdout_prefixes))
  train, validation = rest.split(tuple(cfg.validation_clips), tuple(cfg.validation_prefixes))
  return train, validation, test


def views_of(poses, num_frames, noise_px, occlusion, seed, num_cameras=None):
  """(keypoints, visibility, truth, rotation) per frame of the default job's cameras."""
  kwargs = settings.views_kwargs(lift_config.get().eval)
  kwargs.update(num_frames=num_frames, noise_px=noise_px, occlusion_prob=occlusion, seed=seed)
  if num_cameras is not None:
    kwargs["num_cameras"] = num_cameras
  v = make_views(np.asarray(poses), **kwargs)
  flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
  rotation = np.repeat(v.rotation, v.keypoints.shape[1], axis=0)
  return flat(v.keypoints), flat(v.visibility), flat(v.truth), rotation


def lift_cameras(model, keypoints, visibility, rotation, **options):
  """Lifts frames grouped by their (shared) camera rotation; concatenated results."""
  outs = []
  keys = np.unique(rotation.reshape(len(rotation), -1), axis=0, return_inverse=True)[1]
  keys = np.asarray(keys).reshape(-1)
  for key in np.unique(keys):
    idx = np.flatnonzero(keys == key)
    r = lifting.lift(model, keypoints[idx], visibility[idx], camera_rotation=rotation[idx[0]],
                     **options)
    outs.append((idx, jax.tree.map(np.asarray, r)))
  fields = {}
  for name in ("pose3d", "valid", "component", "yaw", "cost", "size"):
    full = np.zeros((len(keypoints), *getattr(outs[0][1], name).shape[1:]),
                    getattr(outs[0][1], name).dtype)
    for idx, r in outs:
      full[idx] = getattr(r, name)
    fields[name] = full
  return fields


def errors(pred, truth, mask):
  """(MPJPE, PA-MPJPE) in mm over the frames of `mask`."""
  if not mask.any():
    return float("nan"), float("nan")
  return (float(np.linalg.norm(pred[mask] - truth[mask], axis=-1).mean()),
          float(np.asarray(pa_mpjpe(pred[mask], truth[mask])).mean()))


def stats(pose, truth, valid):
  """(MPJPE, PA-MPJPE, valid fraction) over the valid frames."""
  return (*errors(pose, truth, valid), float(valid.mean()))


def parse_grid(text):
  """'3x6,3x14' -> [(3, 6), (3, 14)]."""
  try:
    grid = [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item]
  except ValueError:
    grid = []
  if not grid or any(len(kj) != 2 or min(kj) < 1 for kj in grid):
    raise SystemExit(f"--grid/--model: expected KxJ[,KxJ...] such as 3x6,3x14, got {text!r}")
  return grid


def fit_and_calibrate(train, validation, k, j, frames, prior):
  """(calibrated model, Calibration or None, fit seconds) of a (K, J) model."""
  cfg = pose_model_config.get()
  kwargs = {**settings.fit_kwargs(cfg), "num_components": k, "num_basis": j}
  poses = np.asarray(train.subsample(int(data_config.get().frame_stride)).poses, np.float32)
  start = time.perf_counter()
  # As the default job fits (experiments.jobs.pose_model), K and J aside.
  model = pose_model.fit(poses, key=jax.random.key(int(cfg.seed)), progress=False, **kwargs)
  fit_s = time.perf_counter() - start
  if prior is not None:
    return model.replace(obs_noise=np.float32(prior[0]),
                         prior_weight=np.float32(prior[1])), None, fit_s
  views = []
  for name, noise, hidden in CALIBRATION_CONDITIONS:
    kp, vis, truth, rot = views_of(validation.poses, frames, noise, hidden, seed=1,
                                   num_cameras=1)
    views.append((name, kp, vis, truth, rot[0]))
  result = calibrate.calibrate_prior(model, views, num_yaws=int(lift_config.get().num_yaws))
  return result.model, result, fit_s


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="K=3, J=10 only, 300 frames")
  parser.add_argument("--sections", default="1,2,3,4", help="sections to run, e.g. 1,3")
  parser.add_argument("--grid", default=None,
                      help="(K, J) rows of section 1, e.g. 3x6,3x14 (default: 1x14, 3x10, "
                      "5x14, 9x14, 12x14)")
  parser.add_argument("--model", default="9x14", help="KxJ of sections 2-4 (default 9x14)")
  parser.add_argument("--frames", type=int, default=None,
                      help="frames per validation condition (default 500, quick 300)")
  parser.add_argument("--test-frames", type=int, default=None,
                      help="frames per test condition (default 2000, quick 600)")
  parser.add_argument("--prior", default=None,
                      help="σ_obs,β instead of choosing them on validation, e.g. 0.1,1")
  args = parser.parse_args()
  try:
    sections = {int(s) for s in args.sections.split(",") if s}
  except ValueError:
    sections = set()
  if not sections or not sections <= {1, 2, 3, 4}:
    raise SystemExit(f"--sections: expected numbers 1-4 such as 1,3, got {args.sections!r}")
  prior = None
  if args.prior is not None:
    try:
      prior = tuple(float(v) for v in args.prior.split(","))
    except ValueError:
      prior = ()
    if len(prior) != 2:
      raise SystemExit(f"--prior: expected σ_obs,β such as 0.1,1, got {args.prior!r}")
  grid = parse_grid(args.grid) if args.grid else (
      [(3, 10)] if args.quick else [(1, 14), (3, 10), (5, 14), (9, 14), (12, 14)])
  model_kj = parse_grid(args.model)[0]
  frames = args.frames or (300 if args.quick else 500)
  test_frames = args.test_frames or (600 if args.quick else 2000)
  num_yaws = int(lift_config.get().num_yaws)
  print(f"lift_quality on {jax.devices()[0].device_kind}; jax {jax.__version__}; sections "
        f"{sorted(sections)}; {frames} frames per validation condition, {test_frames} per test "
        f"condition; T = {num_yaws}")
  train, validation, test = split_corpus()
  print(f"train {len(train)} poses / {train.num_clips} clips; validation {len(validation)} / "
        f"{validation.num_clips}; test {len(test)} / {test.num_clips}")
  test_kp, test_vis, test_truth, test_rot = views_of(test.poses, test_frames, 3.0, 0.1, seed=2)
  models = {}

  def model_of(kj):
    if kj not in models:
      models[kj] = fit_and_calibrate(train, validation, *kj, frames, prior)
    return models[kj]

  if 1 in sections:
    print("\n## 1. Defaults: fit on train, σ_obs and β on validation, error on test\n")
    alpha = lifting.DEFAULT_BLEND_WEIGHT
    print("Validation errors of the calibration are the model pose's (`calibrate_prior`); "
          "test errors over the valid frames, MPJPE / PA-MPJPE in mm.\n")
    print("The val blend column: the validation clips in the test setting (4 cameras, 3 px, "
          "10% hidden, --frames frames), blend, MPJPE / PA-MPJPE / valid: the column that "
          "chooses K and J for the default.\n")
    print(f"| K | J | fit s | σ_obs | β | val mean MPJPE | val blend | test, model | "
          f"test, blend α={alpha:g} | test valid |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    val_kp, val_vis, val_truth, val_rot = views_of(validation.poses, frames, 3.0, 0.1, seed=5)
    for kj in grid:
      model, cal, fit_s = model_of(kj)
      r = lift_cameras(model, val_kp, val_vis, val_rot, num_yaws=num_yaws,
                       reconstruction="blend", blend_weight=alpha)
      val_blend = "{:.1f} / {:.1f} / {:.3f}".format(*stats(r["pose3d"], val_truth, r["valid"]))
      cells = []
      for options in ({"reconstruction": "model"},
                      {"reconstruction": "blend", "blend_weight": alpha}):
        r = lift_cameras(model, test_kp, test_vis, test_rot, num_yaws=num_yaws, **options)
        cells.append("{:.1f} / {:.1f}".format(*errors(r["pose3d"], test_truth, r["valid"])))
      val = "-" if cal is None else f"{min(row['mean_mpjpe'] for row in cal.rows):.1f}"
      print(f"| {kj[0]} | {kj[1]} | {fit_s:.0f} | {float(model.obs_noise):g} | "
            f"{float(model.prior_weight):g} | {val} | {val_blend} | {cells[0]} | {cells[1]} | "
            f"{r['valid'].mean():.3f} |", flush=True)
    for kj in grid:
      if models[kj][1] is not None:
        print(f"\nValidation table of K={kj[0]}, J={kj[1]}:\n\n{models[kj][1].markdown()}",
              flush=True)

  if sections & {2, 3, 4}:
    model, cal, _ = model_of(model_kj)
    print(f"\nSections 2-4: K={model_kj[0]}, J={model_kj[1]}, σ_obs = "
          f"{float(model.obs_noise):g}, β = {float(model.prior_weight):g}"
          f"{' (given)' if cal is None else ' (chosen on validation)'}", flush=True)

  if 2 in sections:
    print(f"\n## 2. Exact re-ranking: candidates per component, components re-ranked "
          f"(K={model_kj[0]}, J={model_kj[1]}, test views)\n")
    full = lift_cameras(model, test_kp, test_vis, test_rot, candidates=50, components=None,
                        num_yaws=num_yaws)
    print("| candidates | components | answers differing from exhaustive | MPJPE | valid |")
    print("|---|---|---|---|---|")
    rows = [(c, None) for c in (1, 2, 4, 8)] + [
        (1, m) for m in (1, 2, 3, 4, 5) if m < model_kj[0]]
    for c, m in rows:
      r = lift_cameras(model, test_kp, test_vis, test_rot, candidates=c, components=m,
                       num_yaws=num_yaws)
      differ = ((r["component"] != full["component"]) |
                (np.abs(np.angle(np.exp(1j * (r["yaw"] - full["yaw"])))) > 1e-4))
      differ &= full["component"] >= 0
      mpjpe, _ = errors(r["pose3d"], test_truth, r["valid"])
      print(f"| {c} | {'all' if m is None else m} | {differ.sum()} of {len(differ)} | "
            f"{mpjpe:.1f} | {r['valid'].mean():.3f} |", flush=True)
    mpjpe, _ = errors(full["pose3d"], test_truth, full["valid"])
    print(f"| exhaustive (50 ≥ T/2 local minima) | all | - | {mpjpe:.1f} | "
          f"{full['valid'].mean():.3f} |")

  if 3 in sections:
    blend_section(model, validation, test, frames, test_frames,
                  (test_kp, test_vis, test_truth, test_rot), num_yaws)

  if 4 in sections:
    sweep_section(model, 25 if args.quick else 5)


def blend_section(model, validation, test, frames, test_frames, default_views, num_yaws):
  """Section 3: α of "blend" chosen on validation views, then test views."""
  print("\n## 3. Reconstruction: model vs blend (MPJPE / PA-MPJPE / valid, mm)\n")
  val = []
  for name, noise, hidden in BLEND_CONDITIONS:
    kp, vis, truth, rot = views_of(validation.poses, frames, noise, hidden, seed=3)
    val.append((name, [lift_cameras(model, kp, vis, rot, num_yaws=num_yaws,
                                    reconstruction="blend", blend_weight=alpha)
                       if alpha > 0 else
                       lift_cameras(model, kp, vis, rot, num_yaws=num_yaws,
                                    reconstruction="model") for alpha in BLEND_WEIGHTS],
                truth))
  print(f"Validation clips, {frames} frames per condition, 4 cameras; errors over the valid "
        "frames:\n")
  print("| α | " + " | ".join(name for name, _, _ in val) + " | mean MPJPE | mean PA-MPJPE |")
  print("|---|" + "---|" * (len(val) + 2))
  table = {}
  for i, alpha in enumerate(BLEND_WEIGHTS):
    cells = [stats(results[i]["pose3d"], truth, results[i]["valid"])
             for _, results, truth in val]
    table[alpha] = (float(np.mean([c[0] for c in cells])), float(np.mean([c[1] for c in cells])))
    label = "0 (model)" if alpha == 0 else f"{alpha:g}"
    print(f"| {label} | " + " | ".join(f"{m:.1f} / {p:.1f} / {v:.3f}" for m, p, v in cells)
          + f" | {table[alpha][0]:.1f} | {table[alpha][1]:.1f} |", flush=True)
  chosen = min(table, key=lambda a: table[a][0])
  print(f"\nChosen on validation (lowest mean MPJPE): α = {chosen:g}"
        f"{' (model)' if chosen == 0 else ''}\n")
  tests = [(name, views_of(test.poses, frames, noise, hidden, seed=4))
           for name, noise, hidden in BLEND_CONDITIONS]
  tests.append((f"default job setting ({test_frames} frames)", default_views))
  print(f"Test clips ({frames} frames per condition, 4 cameras; the default job's setting: "
        f"3 px, 10% hidden, {test_frames} frames, seed 2):\n")
  print("| reconstruction | " + " | ".join(name for name, _ in tests) + " |")
  print("|---|" + "---|" * len(tests))
  rows = {"model": []}
  if chosen != 0:
    rows[f"blend α={chosen:g}"] = []
  gap = 0.0
  for _, (kp, vis, truth, rot) in tests:
    base = lift_cameras(model, kp, vis, rot, num_yaws=num_yaws, reconstruction="model")
    rows["model"].append(stats(base["pose3d"], truth, base["valid"]))
    if chosen != 0:
      r = lift_cameras(model, kp, vis, rot, num_yaws=num_yaws, reconstruction="blend",
                       blend_weight=chosen)
      rows[f"blend α={chosen:g}"].append(stats(r["pose3d"], truth, r["valid"]))
      gap = max(gap, float(np.abs(np.asarray(r["valid"], bool) ^
                                  np.asarray(base["valid"], bool)).sum()))
  for label, cells in rows.items():
    print(f"| {label} | " + " | ".join(f"{m:.1f} / {p:.1f} / {v:.3f}" for m, p, v in cells)
          + " |", flush=True)
  print(f"\n(frames whose validity differs between model and blend: {gap:g})")


def sweep_section(model, every):
  """Section 4: the corpus sweep (orthographic, 20 random yaws, 2 px noise)."""
  print("\n## 4. Corpus sweep (orthographic, 20 random yaws, 2 px noise)\n")
  corpus = mocap.load_embedded()
  rng = np.random.default_rng(0)
  pick = np.arange(0, len(corpus), every)
  poses = np.repeat(corpus.poses[pick].astype(np.float64), 20, axis=0)
  yaw = rng.uniform(0, 2 * np.pi, len(poses))
  cam = np.einsum("bac,blc->bla", np.asarray(camera.yaw_rotation(yaw), np.float64),
                  poses - poses[:, :1])
  kp = (np.stack([cam[..., 0], -cam[..., 1]], -1) * 500 + 500
        + 2.0 * rng.normal(size=cam[..., :2].shape)).astype(np.float32)
  truth = cam * 1000
  start = time.perf_counter()
  r = jax.tree.map(np.asarray, lifting.lift(model, kp))
  seconds = time.perf_counter() - start
  up_true = truth[:, 10, 1] - truth[:, [3, 6], 1].mean(1)
  up = r.pose3d[:, 10, 1] - r.pose3d[:, [3, 6], 1].mean(1)
  upright = up_true > 0.5 * np.abs(truth[..., 1]).max(1)
  limbs = corpus_limbs()
  true_size = np.sqrt(((truth[:, [c for _, c in limbs]] -
                        truth[:, [p for p, _ in limbs]]) ** 2).sum((-1, -2)))
  out_size = np.sqrt(((r.pose3d[:, [c for _, c in limbs]] -
                       r.pose3d[:, [p for p, _ in limbs]]) ** 2).sum((-1, -2)))
  size_off = np.abs(out_size / true_size - 1) > 0.25
  mpjpe, pa = errors(r.pose3d, truth - truth[:, :1], r.valid)
  print("| frames | scale ≤ 0 | upright lifted upside down (valid) | valid | valid with size "
        "off >25% | MPJPE / PA-MPJPE (valid) | s |")
  print("|---|---|---|---|---|---|---|")
  print(f"| {len(kp)} | {(r.scale <= 0).sum()} | {(upright & (up < 0)).sum()} "
        f"({(upright & (up < 0) & r.valid).sum()}) | {r.valid.mean():.3f} | "
        f"{(size_off & r.valid).sum()} | {mpjpe:.1f} / {pa:.1f} | {seconds:.1f} |")


def corpus_limbs():
  from lift3d.skeleton import H36M17

  return H36M17.limbs


if __name__ == "__main__":
  main()
