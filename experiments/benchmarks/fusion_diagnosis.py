r"""Diagnosis of the fused CPM, stage by stage and landmark by landmark (issue 17).

  python -m experiments.benchmarks.fusion_diagnosis --run_dir runs/ablation/seed0/fused \
      --plain_dir runs/ablation/seed0/plain --pose_model runs/pm/pose_model.npz

`--run_dir` is a fused CPM trained by experiments/benchmarks/cpm_ablation.py
(the same --image_size / --stages / --quick as that run). On the held-out
renders of the ablation (occluded and unoccluded sets) it reports, per stage t
and landmark l:
- the 2D error (pixels) of the landmarks read from the CNN maps b_t, from the
  projected maps b̂_t (the reprojected lift) and from the fused maps f_t, over
  visible and over hidden in-frame joints;
- the learned ω_tl, the fraction of valid lifts, and the MPJPE / PA-MPJPE
  (mm) of the stage's lift (recomputed with the same call the network makes,
  and checked against the network's own reprojection);
- the landmark confidences (map peaks) the final lift is weighted by, for
  the fused network and (with --plain_dir) the plain one.
Oracle rows separate the lifting from the network: the true 2D landmarks
lifted and reprojected as the network does (level camera, grid coordinates)
give the best b̂ can be; the same with the renders' true camera pitch shows
what the unknown elevation costs; and the Gaussian targets read back with the
same arg-max / sub-pixel code check the pixel <-> grid convention.
Writes `<run_dir>/diagnosis.json` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from experiments.benchmarks import cpm_ablation


def _errors(points_px, data, visible, hidden):
  """(L,) mean errors over visible and over hidden joints, pixels (NaN-aware)."""
  error = np.linalg.norm(points_px - data["keypoints2d"], axis=-1)  # (N, L)

  def per_landmark(mask):
    good = mask & np.isfinite(error)
    total = np.where(good, error, 0.0).sum(0)
    return total / np.maximum(good.sum(0), 1), float(error[good].mean()) if good.any() else np.nan

  return per_landmark(visible), per_landmark(hidden)


def _lift_scores(pose_model, points_grid, weights, data, num_yaws, camera_rotation=None):
  """The lift of grid points as the CPM does it: (reprojected grid, lifted, MPJPE, PA-MPJPE, plausible).

  "lifted" is what the network fuses (a pose came out: component >= 0);
  "plausible" is the lift's own verdict (`valid`: size, Mahalanobis norm and
  residual within limits). The 3D errors are over the lifted frames.
  """
  import jax

  import lift3d
  from lift3d import eval as lift_eval

  result = jax.device_get(lift3d.lift(pose_model, points_grid, weights, num_yaws=num_yaws,
                                      camera_rotation=camera_rotation))
  valid = np.asarray(result.component) >= 0
  truth = data["pose3d"] * 1000.0
  mpjpe = pa = float("nan")
  if valid.any():
    mpjpe = float(np.mean(lift_eval.mpjpe(result.pose3d[valid], truth[valid], root_index=0)))
    pa = float(np.mean(lift_eval.pa_mpjpe(result.pose3d[valid], truth[valid])))
  return np.asarray(result.reprojected), valid, mpjpe, pa, np.asarray(result.valid)


def diagnose(params, model, pose_model, data, *, plain=None):
  """Everything of the module docstring for one held-out set; returns a JSON-able dict."""
  import jax
  import jax.numpy as jnp

  from lift3d import train
  from lift3d.models import belief_maps

  stride = model.stride
  visible, hidden = cpm_ablation.joint_masks(data)
  out = jax.device_get(model.apply({"params": params}, jnp.asarray(data["image"]), pose_model))
  num_landmarks = model.num_landmarks
  report = {"stages": [], "omega": np.asarray(out.fusion_weight).tolist()}
  for t in range(model.num_stages):
    stage = {}
    b_grid, b_conf = jax.device_get(belief_maps.maps_to_points(
        jnp.asarray(out.belief[t, ..., :num_landmarks]), model.subpixel))
    f_grid, _ = jax.device_get(belief_maps.maps_to_points(
        jnp.asarray(out.fused[t, ..., :num_landmarks]), model.subpixel))
    valid = np.asarray(out.stage_valid[t])
    reprojected = np.where(valid[:, None, None], out.reprojected[t], np.nan)
    for name, grid in (("b", b_grid), ("b_hat", reprojected), ("f", f_grid)):
      (vis_l, vis), (hid_l, hid) = _errors(belief_maps.grid_to_pixels(grid, stride), data,
                                           visible, hidden)
      stage[name] = {"visible": vis, "hidden": hid, "visible_per_landmark": vis_l.tolist(),
                     "hidden_per_landmark": hid_l.tolist()}
    # The stage's lift, recomputed exactly as the network calls it.
    weights = np.clip(b_conf, 0.0, 1.0)
    again, lift_valid, mpjpe, pa, plausible = _lift_scores(pose_model, b_grid, weights, data,
                                                           model.num_yaws)
    both = valid & lift_valid
    stage["reprojection_mismatch_cells"] = float(
        np.nanmax(np.abs(again[both] - out.reprojected[t][both]))) if both.any() else np.nan
    stage.update(valid_fraction=float(valid.mean()), mpjpe_mm=mpjpe, pa_mpjpe_mm=pa,
                 plausible_fraction=float(plausible.mean()),
                 omega_mean=float(np.mean(out.fusion_weight[t])))
    report["stages"].append(stage)
  # Confidences of the final landmarks (the final lift's weights): the last
  # CNN maps at the fused arg-max (the network's read-out) against the fused
  # maps' own peaks (the read-out before issue 17).
  final_conf = np.asarray(out.confidence)
  report["final_confidence"] = {"visible": float(final_conf[visible].mean()),
                                "hidden": float(final_conf[hidden].mean())}
  f_grid, f_peak = jax.device_get(belief_maps.maps_to_points(
      jnp.asarray(out.fused[-1, ..., :num_landmarks]), model.subpixel))
  for name, weights in (("final_lift_cnn_confidence", final_conf),
                        ("final_lift_fused_peaks", f_peak)):
    weights = np.clip(weights, 0.0, 1.0)
    _, lift_valid, mpjpe, pa, plausible = _lift_scores(pose_model, f_grid, weights, data,
                                                       model.num_yaws)
    report[name] = {"mpjpe_mm": mpjpe, "pa_mpjpe_mm": pa, "lift_valid": float(lift_valid.mean()),
                    "plausible": float(plausible.mean()),
                    "confident": float(np.mean(weights.mean(-1) >= 0.2)),
                    "visible": float(weights[visible].mean()),
                    "hidden": float(weights[hidden].mean())}
  if plain is not None:
    plain_params, plain_model = plain
    plain_out = jax.device_get(plain_model.apply({"params": plain_params},
                                                 jnp.asarray(data["image"]), pose_model))
    conf = np.asarray(plain_out.confidence)
    report["plain_final_confidence"] = {"visible": float(conf[visible].mean()),
                                        "hidden": float(conf[hidden].mean())}

  # Oracles: the true 2D landmarks through the same lift and reprojection.
  true_grid = belief_maps.pixels_to_grid(data["keypoints2d"], stride)
  for name, rotation in (("oracle_level_camera", None),
                         ("oracle_true_pitch", data["camera_rotation"][0])):
    pitches = data["camera_rotation"]
    if rotation is not None and not np.allclose(pitches, rotation):
      # Different pitches per image: lift image by image with its own.
      rep, val, mp, pa, ok = [], [], [], [], []
      for i in range(len(pitches)):
        r = _lift_scores(pose_model, true_grid[i:i + 1], visible[i:i + 1].astype(np.float32),
                         {k: v[i:i + 1] for k, v in data.items()}, model.num_yaws, pitches[i])
        rep.append(r[0])
        val.append(r[1])
        mp.append(r[2])
        pa.append(r[3])
        ok.append(r[4])
      reprojected, valid, plausible = (np.concatenate(x) for x in (rep, val, ok))
      mpjpe, pa_mpjpe = float(np.nanmean(mp)), float(np.nanmean(pa))
    else:
      reprojected, valid, mpjpe, pa_mpjpe, plausible = _lift_scores(
          pose_model, true_grid, visible.astype(np.float32), data, model.num_yaws, rotation)
    reprojected = np.where(valid[:, None, None], reprojected, np.nan)
    (_, vis), (_, hid) = _errors(belief_maps.grid_to_pixels(reprojected, stride), data,
                                 visible, hidden)
    report[name] = {"b_hat_visible": vis, "b_hat_hidden": hid, "mpjpe_mm": mpjpe,
                    "pa_mpjpe_mm": pa_mpjpe, "valid_fraction": float(valid.mean()),
                    "plausible_fraction": float(plausible.mean())}

  # Pixel <-> grid convention: the training targets read back by the network's
  # own read-out (arg-max and quadratic) land on the labels.
  height, width = out.belief.shape[2:4]
  targets, _ = jax.device_get(train.target_maps(
      jnp.asarray(data["keypoints2d"]), jnp.asarray(visible, jnp.float32), height, width,
      stride=stride, sigma=model.sigma))
  convention = {}
  for method in ("argmax", "quadratic"):
    grid, _ = jax.device_get(belief_maps.maps_to_points(
        jnp.asarray(targets[..., :num_landmarks]), method))
    error = belief_maps.grid_to_pixels(grid, stride) - data["keypoints2d"]
    inside = visible & np.all(np.abs(grid - true_grid) < 1.0, axis=-1)
    convention[method] = {"mean_px": float(np.linalg.norm(error, axis=-1)[inside].mean()),
                          "mean_signed_px": np.mean(error[inside], axis=0).tolist()}
  report["target_readout"] = convention
  return report


def _print(name, report, landmark_names):
  print(f"\n#### held-out set: {name}\n")
  print("| stage | ω mean | lifted / plausible | b px vis / hid | b̂ px vis / hid | "
        "f px vis / hid | lift MPJPE mm | PA-MPJPE mm |")
  print("|---:|---:|---:|---:|---:|---:|---:|---:|")
  for t, s in enumerate(report["stages"]):
    cells = " | ".join(f"{s[k]['visible']:.2f} / {s[k]['hidden']:.2f}"
                       for k in ("b", "b_hat", "f"))
    print(f"| {t + 1} | {s['omega_mean']:.3f} | {s['valid_fraction']:.2f} / "
          f"{s['plausible_fraction']:.2f} | {cells} | "
          f"{s['mpjpe_mm']:.0f} | {s['pa_mpjpe_mm']:.0f} |")
  for key in ("oracle_level_camera", "oracle_true_pitch"):
    o = report[key]
    print(f"| {key} | | {o['valid_fraction']:.2f} / {o['plausible_fraction']:.2f} | | "
          f"{o['b_hat_visible']:.2f} / "
          f"{o['b_hat_hidden']:.2f} | | {o['mpjpe_mm']:.0f} | {o['pa_mpjpe_mm']:.0f} |")
  last = report["stages"][-1]
  omega = np.asarray(report["omega"])[-1]
  print("\nlast stage, per landmark (visible joints, px): landmark | ω | b | b̂ | f")
  for j, landmark in enumerate(landmark_names):
    print(f"| {landmark} | {omega[j]:.2f} | {last['b']['visible_per_landmark'][j]:.2f} | "
          f"{last['b_hat']['visible_per_landmark'][j]:.2f} | "
          f"{last['f']['visible_per_landmark'][j]:.2f} |")
  print(f"\nfinal confidences (map peaks) visible / hidden: fused "
        f"{report['final_confidence']['visible']:.3f} / {report['final_confidence']['hidden']:.3f}"
        + (f"; plain {report['plain_final_confidence']['visible']:.3f} / "
           f"{report['plain_final_confidence']['hidden']:.3f}"
           if "plain_final_confidence" in report else ""))
  for key in ("final_lift_cnn_confidence", "final_lift_fused_peaks"):
    r = report[key]
    print(f"{key}: MPJPE {r['mpjpe_mm']:.1f} mm, PA-MPJPE {r['pa_mpjpe_mm']:.1f} mm, lifted "
          f"{r['lift_valid']:.2f}, plausible {r['plausible']:.2f}, mean weight >= 0.2 in {r['confident']:.2f} of the frames, "
          f"weights visible / hidden {r['visible']:.3f} / {r['hidden']:.3f}")
  print("stage lift recomputed vs the network's reprojection, max |Δ| cells: "
        + ", ".join(f"{s['reprojection_mismatch_cells']:.2g}" for s in report["stages"]))
  print(f"targets read back: {report['target_readout']}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--run_dir", required=True, help="a fused run of cpm_ablation")
  parser.add_argument("--plain_dir", default=None, help="the plain run of the same seed")
  parser.add_argument("--pose_model", default=None)
  parser.add_argument("--image_size", type=int, default=128)
  parser.add_argument("--stages", type=int, default=6)
  parser.add_argument("--quick", action="store_true", help="the --quick network of the ablation")
  parser.add_argument("--trunk_features", type=int, nargs="+", default=None)
  parser.add_argument("--stage_features", type=int, default=None)
  parser.add_argument("--eval_examples", type=int, default=64)
  args = parser.parse_args()

  from experiments import settings
  from lift3d import train
  from lift3d.skeleton import H36M17

  full = cpm_ablation.make_config(image_size=args.image_size, stages=args.stages,
                                    preset="rich", quick=args.quick,
                                    trunk_features=args.trunk_features,
                                    stage_features=args.stage_features)
  config = full.cpm
  pose_model = cpm_ablation.load_pose_model(args.pose_model)
  config.fusion = True
  model = settings.cpm_model(config)
  params = train.restore_params(args.run_dir)
  plain = None
  if args.plain_dir:
    config.fusion = False
    plain = (train.restore_params(args.plain_dir), settings.cpm_model(config))
  _, heldout_poses = settings.split_corpus(full.data)
  sources = cpm_ablation.heldout_sources(config, heldout_poses, num_examples=args.eval_examples)
  reports = {}
  for name, source in sources.items():
    data = cpm_ablation.stack_items(source, args.eval_examples)
    reports[name] = diagnose(params, model, pose_model, data, plain=plain)
    _print(name, reports[name], H36M17.names)
  with open(os.path.join(args.run_dir, "diagnosis.json"), "w") as f:
    json.dump(reports, f, indent=2, default=float)


if __name__ == "__main__":
  main()
