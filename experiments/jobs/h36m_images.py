"""Human3.6M protocols from images: the fused CPM on the test frames (issue 13).

Run by experiments/jobs/h36m.py when `config.from_images` is True
(`--config.from_images=True` on h36m_protocol{1,2,3}.py). Steps:
1. the protocol's frames as person crops (`lift3d.data.h36m.images.prepare`,
   from the original videos or the extracted frames in `config.data_dir`);
2. the pose model: `<workdir>/pose_model.npz`, or fitted on the training
   frames' 3D poses (world frame via the calibration, one camera per frame,
   y up) with `config.pose_model`;
3. the trained CPM of `config.images.cpm_workdir` (its `config.images.model`
   settings; the centre map as the fourth channel) on centred crops of every
   test frame: 2D landmarks (mapped back to frame pixels) and the fused CPM's
   lifted 3D pose;
4. the paper-style tables beside the paper's numbers:
   `h36m_<protocol>_images_actions.{md,csv}` (the protocol's 3D error, mm),
   `h36m_<protocol>_images_2d.{md,csv}` (2D error, frame pixels) and a JSON
   summary `h36m_<protocol>_images.json`.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging

from experiments import settings
from lift3d import eval as lift_eval
from lift3d import files
from lift3d import train as lift_train
from lift3d.data import pipeline
from lift3d.data.h36m import builder as pose_builder
from lift3d.data.h36m import cameras, images, splits
from lift3d.models import cpm
from lift3d.progress import bar as progress_bar
from lift3d.skeleton import EVAL14_INDICES

_TEXT = ("subject", "action", "camera")


def _training_poses(train_records) -> np.ndarray:
  """(N, 17, 3) metres, y up: the training frames' poses in the world frame, one camera."""
  rows = [r for r in (train_records[i] for i in range(len(train_records)))
          if r["camera"].decode() == pose_builder.TRAIN_CAMERA]
  if not rows:
    raise ValueError("the training split has no frames of camera "
                     f"{pose_builder.TRAIN_CAMERA}: cannot fit the pose model")
  world = np.stack([cameras.camera_to_world(r["pose3d_camera"].astype(np.float64),
                                            cameras.get_camera(r["subject"].decode(),
                                                               r["camera"].decode()))
                    for r in rows])
  return cameras.world_to_model(world / 1000.0).astype(np.float32)


def build_model(images_cfg) -> cpm.CPM:
  """The fused CPM of `config.images.model` with the centre-map channel."""
  fields = dict(images_cfg.model.to_dict())
  fields["trunk_features"] = tuple(int(f) for f in fields["trunk_features"])
  return cpm.CPM(fusion=bool(images_cfg.fusion), centre_map=True, **fields)


def crop_to_frame(points: np.ndarray, matrix: np.ndarray, crop_offset: np.ndarray) -> np.ndarray:
  """(L, 2) network-crop pixels -> frame pixels (inverse crop map, then the record's offset).

  Args:
    points: (L, 2) pixels of the network's crop.
    matrix: (2, 3) the crop's map from record-image pixels to crop pixels.
    crop_offset: (2,) the record's offset in the frame.

  Returns:
    (L, 2) float64 frame pixels.
  """
  matrix = np.asarray(matrix, np.float64)
  inverse = np.linalg.inv(matrix[:, :2])
  return (np.asarray(points, np.float64) - matrix[:, 2]) @ inverse.T + crop_offset


def predict_frames(params, model, pose_model, records, *, input_size: int,
                   person_fraction: float, batch_size: int, max_frames: int = 0) -> dict:
  """The CPM on centred crops of `records`.

  Returns:
    dict of (N, ...) arrays: "keypoints2d" predicted and "truth2d" (frame
    pixels), "pose3d" predicted (mm, y up, root-centred lift frame), "true3d"
    (same frame), "valid", and the text fields subject, action, camera.
  """
  source = pipeline.CentredSource(records, input_size=input_size,
                                  person_fraction=person_fraction)
  num = len(source)
  indices = (np.linspace(0, num - 1, max_frames).round().astype(int)
             if max_frames and num > max_frames else np.arange(num))
  out: dict[str, list] = {}
  for start in progress_bar(range(0, len(indices), batch_size), desc="h36m images",
                            unit="batch"):
    part = indices[start:start + batch_size]
    crops = [source[int(i)] for i in part]
    recs = [records[int(i)] for i in part]
    pred = jax.device_get(cpm.predict(params, model, np.stack([c["image"] for c in crops]),
                                      pose_model))
    for k, (crop, rec) in enumerate(zip(crops, recs, strict=True)):
      back = crop_to_frame(pred.keypoints2d[k], crop["matrix"], rec["crop_offset"])
      true = cameras.camera_to_lift(rec["pose3d_camera"].astype(np.float64))
      values = {"keypoints2d": back, "truth2d": rec["keypoints"] + rec["crop_offset"],
                "pose3d": pred.pose3d[k], "true3d": true - true[0], "valid": pred.valid[k],
                **{t: rec[t].decode() for t in _TEXT}}
      for key, v in values.items():
        out.setdefault(key, []).append(v)
  return {k: np.asarray(v) for k, v in out.items()}


def run(config, workdir: str) -> dict:
  """Evaluates the trained CPM on a protocol's test frames; returns the summary."""
  cfg, icfg = config.h36m, config.images
  protocol = splits.get_protocol(cfg.protocol)
  if not config.data_dir:
    raise ValueError("set --config.data_dir to your Human3.6M copy with images (the original "
                     "videos or the extracted frames; see lift3d/data/h36m/images.py)")
  if not icfg.cpm_workdir:
    raise ValueError("set --config.images.cpm_workdir to the workdir of a trained CPM "
                     "(experiments/configs/cpm_h36m.py)")
  os.makedirs(workdir, exist_ok=True)
  step = int(icfg.train_frame_step)
  images.prepare(cfg.tfds_dir, config.data_dir, protocol.name, train_frame_step=step)
  train_records = images.data_source(cfg.tfds_dir, protocol.name, "train", train_frame_step=step)
  test_records = images.data_source(cfg.tfds_dir, protocol.name, "test", train_frame_step=step)
  from experiments.jobs import pose_model as pose_model_job

  # The training poses are read only when the model must be fitted.
  model_path = os.path.join(workdir, pose_model_job.MODEL_FILE)
  poses = None if os.path.exists(model_path) else _training_poses(train_records)
  pose_model = pose_model_job.load_or_fit(poses, workdir, report=False,
                                          **settings.pose_model_args(config.pose_model))
  model = build_model(icfg)
  params = lift_train.restore_params(os.path.expanduser(str(icfg.cpm_workdir)))
  data = predict_frames(params, model, pose_model, test_records,
                        input_size=int(icfg.image_size), person_fraction=float(icfg.person_fraction),
                        batch_size=int(icfg.batch_size), max_frames=int(icfg.max_frames))
  pred = np.where(data["valid"][:, None, None], data["pose3d"], np.nan).astype(np.float64)
  if protocol.metric == "mpjpe":
    error = lift_eval.mpjpe(pred, data["true3d"], root_index=0, joints=protocol.joints)
  else:
    error = lift_eval.pa_mpjpe(np.nan_to_num(pred), data["true3d"], joints=protocol.joints)
    error = np.where(data["valid"], error, np.nan)
  error = np.asarray(error)
  px = np.asarray(lift_eval.pixel_error(data["keypoints2d"], data["truth2d"]))
  ok = np.isfinite(error)
  metric_name = "MPJPE" if protocol.metric == "mpjpe" else "PA-MPJPE"
  stem = os.path.join(workdir, f"h36m_{protocol.name}_images")
  table3d = lift_eval.group_table(
      error[ok], data["action"][ok], order=lift_eval.H36M_ACTIONS,
      title=f"Human3.6M {protocol.name} from images (fused CPM): {metric_name} over "
            f"{len(protocol.joints)} joints (mm)",
      reference={"Average": protocol.paper_mm}, reference_name="paper")
  table2d = lift_eval.group_table(
      px, data["action"], order=lift_eval.H36M_ACTIONS, units="px",
      title=f"Human3.6M {protocol.name} from images: 2D error of the fused CPM (frame pixels)",
      reference={"Average": splits.PAPER_2D_ERROR_PX}, reference_name="paper")
  lift_eval.write_table(table3d, f"{stem}_actions")
  lift_eval.write_table(table2d, f"{stem}_2d")
  summary = {
      "protocol": protocol.name,
      "metric": protocol.metric,
      "input": "images",
      "frames": len(error),
      "valid_frames": int(ok.sum()),
      "average_mm": table3d.average,
      "paper_mm": protocol.paper_mm,
      "per_action_mm": table3d.as_dict(),
      "px_error": table2d.average,
      "paper_px_error": splits.PAPER_2D_ERROR_PX,
      "paper_cpm_px_error": splits.PAPER_CPM_2D_ERROR_PX,
      "pa_mpjpe14_mm": float(np.nanmean(np.where(
          data["valid"], np.asarray(lift_eval.pa_mpjpe(np.nan_to_num(pred), data["true3d"],
                                                       joints=EVAL14_INDICES)), np.nan)))
      if ok.any() else float("nan"),
  }
  files.write_json(f"{stem}.json", summary)
  logging.info("h36m %s from images: %s %.2f mm (paper %.2f), 2D %.2f px (paper %.2f)",
               protocol.name, metric_name, summary["average_mm"], protocol.paper_mm,
               summary["px_error"], splits.PAPER_2D_ERROR_PX)
  return summary
