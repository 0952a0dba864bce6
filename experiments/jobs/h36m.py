"""Human3.6M protocols #1-#3 (docs/method.md §7): fit, lift, score, tabulate, plot.

`run(config, workdir)`:
1. converts the user's copy (`config.data_dir`, the TFDS manual directory) to
   array_record once (`lift3d.data.h36m.prepare`);
2. loads `<workdir>/pose_model.npz` or fits the pose model on the 3D poses of
   the training subjects (world frame turned y up, one copy per frame) and
   saves it;
3. lifts the protocol's test 2D (ground truth, or detections when the copy
   has them and `config.h36m.input` allows) action by action, each camera with
   its rotation E, and caches each action's errors in
   `<workdir>/h36m_<protocol>/<action>.npz` (a rerun resumes; a changed
   setting or model recomputes);
4. writes the per-action table (15 actions + average, mm, the paper's figure
   beside ours) and the per-subject table as Markdown and CSV, a JSON summary
   and a plot of the worst frames.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from absl import logging

from experiments import settings
from lift3d import eval as lift_eval
from lift3d import files
from lift3d.data import h36m
from lift3d.progress import bar as progress_bar
from lift3d.skeleton import EVAL14_INDICES

_FIELDS = ("subject", "action", "subaction", "camera", "frame", "pose3d_camera",
           "pose2d_gt", "pose2d_det", "has_detection")


def _training_poses(train_source) -> np.ndarray:
  """(N, 17, 3) float32 metres, y up: the 3D poses of the training split, one per frame."""
  arrays = h36m.read_arrays(train_source, fields=("pose3d_world",))
  if not arrays:
    raise ValueError("the training split is empty: no 3D poses of S1, S5, S6, S7, S8")
  world = arrays["pose3d_world"]  # one record per frame
  return h36m.world_to_model(world.astype(np.float64) / 1000.0).astype(np.float32)


def _fingerprint(model_path: str, settings_used: list, dataset: list) -> str:
  """Hash of everything a cached action depends on: model, settings, dataset."""
  h = hashlib.sha256()
  with open(model_path, "rb") as f:
    h.update(f.read())
  h.update(json.dumps([*settings_used, *dataset]).encode())
  return h.hexdigest()[:16]


def _lift_action(model, data, sel, *, use_det: bool, use_camera_rotation: bool,
                 batch_size: int, num_yaws: int, refine: bool) -> dict:
  """Lifts the frames `sel` of `data` group by group (subject, camera); returns arrays."""
  from lift3d import lift

  n = len(sel)
  pred = np.full((n, 17, 3), np.nan, np.float32)
  reproj = np.full((n, 17, 2), np.nan, np.float32)
  valid = np.zeros(n, bool)
  lifted = np.zeros(n, bool)
  subjects, cameras = data["subject"][sel], data["camera"][sel]
  key2d = "pose2d_det" if use_det else "pose2d_gt"
  for subject, cid in sorted(set(zip(subjects, cameras, strict=True))):
    group = np.flatnonzero((subjects == subject) & (cameras == cid))
    rotation = None
    if use_camera_rotation:
      rotation = h36m.lift_rotation(h36m.get_camera(subject, cid)).astype(np.float32)
    for start in range(0, len(group), batch_size):
      part = group[start:start + batch_size]
      keypoints = data[key2d][sel[part]]
      visibility = None
      finite = np.all(np.isfinite(keypoints), axis=-1)
      if not finite.all():  # missing detections: hide those joints
        visibility = finite.astype(np.float32)
        keypoints = np.where(finite[..., None], keypoints, 0.0)
      # (`lift` pads the frames to its own buckets, so that few programs compile.)
      res = lift(model, keypoints, visibility, num_yaws=num_yaws, refine=refine,
                 camera_rotation=rotation)
      pred[part] = np.asarray(res.pose3d)
      reproj[part] = np.asarray(res.reprojected)
      valid[part] = np.asarray(res.valid)
      lifted[part] = np.asarray(res.component) >= 0
  return {"pred": pred, "reprojected": reproj, "valid": valid, "lifted": lifted}


def _score(pred, true_lift, protocol) -> dict[str, np.ndarray]:
  """Per-frame errors (mm) of every metric; the protocol's one is "error"."""
  metrics = {
      "mpjpe": lift_eval.mpjpe(pred, true_lift, root_index=0),
      "pa_mpjpe": lift_eval.pa_mpjpe(pred, true_lift, joints=EVAL14_INDICES),
      "pa_mpjpe17": lift_eval.pa_mpjpe(pred, true_lift),
      "n_mpjpe": lift_eval.n_mpjpe(pred, true_lift),
      "pck3d": lift_eval.pck3d(pred, true_lift),
      "pck3d_auc": lift_eval.pck3d_auc(pred, true_lift),
  }
  if protocol.metric == "mpjpe":
    metrics["error"] = lift_eval.mpjpe(pred, true_lift, root_index=0, joints=protocol.joints)
  else:
    metrics["error"] = lift_eval.pa_mpjpe(pred, true_lift, joints=protocol.joints)
  return metrics


def _plot_worst(path, data, indices, cache, errors, num: int):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from lift3d.viz.skeleton import draw_skeleton_2d, draw_skeleton_3d

  order = np.argsort(-np.nan_to_num(errors, nan=-1.0))[:num]
  if not len(order):
    return None
  fig = plt.figure(figsize=(4.0 * len(order), 8.0))
  for col, k in enumerate(order):
    i = indices[k]
    ax = fig.add_subplot(2, len(order), col + 1)
    draw_skeleton_2d(ax, data["pose2d_gt"][i], colour="0.6")
    if np.all(np.isfinite(cache["reprojected"][k])):
      draw_skeleton_2d(ax, cache["reprojected"][k])
    ax.set_title(f"{data['subject'][i]} {data['action'][i]} cam {data['camera'][i][-3:]} "
                 f"#{data['frame'][i]}\n{errors[k]:.0f} mm", fontsize=8)
    ax3 = fig.add_subplot(2, len(order), len(order) + col + 1, projection="3d")
    true = h36m.camera_to_lift(data["pose3d_camera"][i])
    draw_skeleton_3d(ax3, true - true[0], colour="0.6")
    if np.all(np.isfinite(cache["pred"][k])):
      draw_skeleton_3d(ax3, cache["pred"][k])
  fig.suptitle("Worst frames: grey = ground truth, colour = ours (2D: reprojection)")
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return path


def evaluate_protocol(data_dir: str, workdir: str, *, protocol: str, tfds_dir: str,
                      train_frame_step: int, input_2d: str, use_camera_rotation: bool,
                      num_yaws: int, refine: bool, batch_size: int,
                      max_frames_per_action: int, num_worst: int,
                      pose_model_args: dict) -> dict:
  """Runs one Human3.6M protocol (see the module docstring); returns the summary.

  Args:
    data_dir: the user's Human3.6M copy (the TFDS manual directory).
    workdir: outputs, the cached pose model and per-action results.
    protocol: "protocol1", "protocol2" or "protocol3".
    tfds_dir: where the array_record files go.
    train_frame_step: every n-th training frame enters the dataset.
    input_2d: "gt", "detections" or "auto" (detections when the copy has them).
    use_camera_rotation: pass each camera's rotation E to the lifting.
    num_yaws, refine: `lift3d.lift` keywords.
    batch_size: frames per `lift` call.
    max_frames_per_action: test frames per action (0: all).
    num_worst: worst frames drawn.
    pose_model_args: `experiments.jobs.pose_model.load_or_fit` keywords.
  """
  from experiments.jobs import pose_model as pose_model_job

  spec = h36m.get_protocol(protocol)
  if not data_dir:
    raise ValueError("set --config.data_dir to your Human3.6M copy (the TFDS manual directory)")
  os.makedirs(workdir, exist_ok=True)
  builder = h36m.prepare(tfds_dir, data_dir, spec.name, train_frame_step=train_frame_step)
  sources = builder.as_data_source()
  model_path = os.path.join(workdir, pose_model_job.MODEL_FILE)
  # The training poses are read only when the model must be fitted.
  poses = None if os.path.exists(model_path) else _training_poses(sources["train"])
  model = pose_model_job.load_or_fit(poses, workdir, report=False, **pose_model_args)

  data = h36m.read_arrays(sources["test"], fields=_FIELDS)
  if not data:
    raise ValueError(f"{spec.name}: the test split is empty")
  has_det = bool(np.all(data["has_detection"]))
  if input_2d not in ("auto", "gt", "detections"):
    raise ValueError(f"config.h36m.input must be auto, gt or detections, got {input_2d!r}")
  if input_2d == "detections" and not has_det:
    raise ValueError("config.h36m.input='detections' but the copy has no detections file")
  use_det = input_2d == "detections" or (input_2d == "auto" and has_det)
  true_lift = h36m.camera_to_lift(data["pose3d_camera"]).astype(np.float32)

  cache_dir = os.path.join(workdir, f"h36m_{spec.name}")
  os.makedirs(cache_dir, exist_ok=True)
  fingerprint = _fingerprint(
      model_path, [protocol, use_det, num_yaws, refine, use_camera_rotation,
                   max_frames_per_action],
      [os.path.abspath(os.path.expanduser(data_dir)), builder.info.full_name,
       len(data["frame"])])
  present = set(data["action"].tolist())
  actions = [a for a in lift_eval.H36M_ACTIONS if a in present]
  actions += sorted(present - set(actions))
  per_frame: dict[str, list] = {}
  index_parts, worst_cache = [], {"pred": [], "reprojected": []}
  for action in progress_bar(actions, desc=f"h36m {spec.name}", unit="action"):
    sel = np.flatnonzero(data["action"] == action)
    if max_frames_per_action and len(sel) > max_frames_per_action:
      sel = sel[np.linspace(0, len(sel) - 1, max_frames_per_action).round().astype(int)]
    path = os.path.join(cache_dir, f"{action}.npz")
    cached = None
    if os.path.exists(path):
      with np.load(path) as f:
        if (str(f["fingerprint"]) == fingerprint and np.array_equal(f["indices"], sel)
            and "lifted" in f.files):
          cached = {k: f[k] for k in f.files}
    if cached is None:
      out = _lift_action(model, data, sel, use_det=use_det,
                         use_camera_rotation=use_camera_rotation, batch_size=batch_size,
                         num_yaws=num_yaws, refine=refine)
      scores = _score(out["pred"], true_lift[sel], spec)
      inputs = data["pose2d_det" if use_det else "pose2d_gt"][sel]
      scores["input_px"] = lift_eval.pixel_error(inputs, data["pose2d_gt"][sel],
                                                 np.isfinite(inputs).all(-1).astype(np.float32))
      scores["reprojection_px"] = lift_eval.pixel_error(
          np.nan_to_num(out["reprojected"]), data["pose2d_gt"][sel],
          out["valid"][:, None].repeat(17, 1).astype(np.float32))
      cached = {**out, **scores, "indices": sel, "fingerprint": np.asarray(fingerprint)}
      np.savez_compressed(path, **cached)
    index_parts.append(sel)
    for k in ("error", "mpjpe", "pa_mpjpe", "pa_mpjpe17", "n_mpjpe", "pck3d", "pck3d_auc",
              "input_px", "reprojection_px", "valid", "lifted"):
      per_frame.setdefault(k, []).append(cached[k])
    worst_cache["pred"].append(cached["pred"])
    worst_cache["reprojected"].append(cached["reprojected"])

  indices = np.concatenate(index_parts)
  frame = {k: np.concatenate(v) for k, v in per_frame.items()}
  frame["valid"] = frame["valid"].astype(bool)
  frame["lifted"] = frame["lifted"].astype(bool)
  worst = {k: np.concatenate(v) for k, v in worst_cache.items()}
  # The headline averages every lifted frame, as the paper's numbers do: the
  # frames the lift flags as implausible (docs/method.md §4.5) are likely
  # among the worst, so leaving them out would flatter the comparison. Frames
  # that could not be lifted (too few finite joints) are left out and counted.
  ok = frame["lifted"] & np.isfinite(frame["error"])
  plausible = ok & frame["valid"]
  metric_name = "MPJPE" if spec.metric == "mpjpe" else "PA-MPJPE"
  title = (f"Human3.6M {spec.name}: {metric_name} over {len(spec.joints)} joints (mm), "
           f"input {'detections' if use_det else 'ground-truth 2D'}; {int(ok.sum())} of "
           f"{len(ok)} frames lifted, {int(plausible.sum())} of them plausible")
  action_table = lift_eval.group_table(
      frame["error"][ok], data["action"][indices][ok], title=title,
      order=lift_eval.H36M_ACTIONS, reference={"Average": spec.paper_mm},
      reference_name="paper")
  subject_table = lift_eval.group_table(
      frame["error"][ok], data["subject"][indices][ok], title=title, group_name="subject",
      order=spec.test_subjects)
  stem = os.path.join(workdir, f"h36m_{spec.name}")
  lift_eval.write_table(action_table, f"{stem}_actions")
  lift_eval.write_table(subject_table, f"{stem}_subjects")
  plot = _plot_worst(f"{stem}_worst.png", data, indices, worst,
                     np.where(ok, frame["error"], np.nan), num_worst)

  def mean(k):
    return float(np.mean(frame[k][ok])) if ok.any() else float("nan")

  summary = {
      "protocol": spec.name,
      "metric": spec.metric,
      "input": "detections" if use_det else "gt",
      "frames": len(indices),
      "valid_frames": int(ok.sum()),
      "plausible_frames": int(plausible.sum()),
      "average_mm": action_table.average,
      "plausible_frame_average_mm": (float(np.mean(frame["error"][plausible]))
                                     if plausible.any() else float("nan")),
      "frame_average_mm": action_table.frame_average,
      "paper_mm": spec.paper_mm,
      "per_action_mm": action_table.as_dict(),
      "per_subject_mm": subject_table.as_dict(),
      "mpjpe_mm": mean("mpjpe"),
      "pa_mpjpe_mm": mean("pa_mpjpe"),
      "pa_mpjpe17_mm": mean("pa_mpjpe17"),
      "n_mpjpe_mm": mean("n_mpjpe"),
      "pck3d_150mm": mean("pck3d"),
      "pck3d_auc": mean("pck3d_auc"),
      "input_2d_error_px": mean("input_px"),
      "reprojection_2d_error_px": mean("reprojection_px"),
      "paper_2d_error_px": h36m.splits.PAPER_2D_ERROR_PX,
      "worst_frames_plot": plot,
  }
  files.write_json(f"{stem}.json", summary)
  logging.info("h36m %s: %s %.2f mm (paper %.2f) on %d frames; tables in %s_*.md",
               spec.name, metric_name, summary["average_mm"], spec.paper_mm,
               summary["frames"], stem)
  return summary


def run(config, workdir: str) -> dict:
  """Runs the protocol of `config.h36m` on `config.data_dir`; returns the summary."""
  if config.get("from_images", False):  # the CPM on the test frames (issue 13)
    from experiments.jobs import h36m_images

    return h36m_images.run(config, workdir)
  return evaluate_protocol(config.data_dir, workdir, **settings.h36m_args(config))
