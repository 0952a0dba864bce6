r"""The `lift3d` command line.

  lift3d lift INPUT --model MODEL.npz --layout coco17 --out OUT.npz [--plot SHEET.png]
         [--num-yaws 100] [--refine] [--batch 4096]

INPUT is one of
- a `.npy` array of keypoints (..., S, 2) in pixels (y down), or (..., S, 3)
  whose last column is a per-joint confidence in [0, 1];
- a `.npz` file with a `keypoints` array (or a single array) of that form and
  an optional `confidence` (or `visibility`) array (..., S);
- a COCO-format keypoint results JSON: a list of
  `{"image_id", "keypoints": [x, y, v] * S, "score"}` (v is read as the joint's
  confidence, clipped to [0, 1]).
S is the number of joints of `--layout`; keypoints are mapped into the H36M17
skeleton with `lift3d.skeleton.convert`, whose confidences weight the lift.

OUT.npz holds the `LiftResult` fields (pose3d in mm, yaw, scale, coeffs,
component, cost, reprojected, valid) with the input's batch shape, plus the
mapped `keypoints` and `confidence` (and `image_id`, `score` for JSON input).
Bad files or arguments print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np

from lift3d.skeleton import LAYOUTS

_EXIT_USAGE = 2


class _InputError(Exception):
  """A problem with the user's files or arguments (reported in one line)."""


def _read_keypoints(path: str, layout: str):
  """Reads INPUT: returns (keypoints (..., S, 2), confidence (..., S) or None, extras dict)."""
  if not os.path.isfile(path):
    raise _InputError(f"input file {path!r} does not exist")
  num_source = LAYOUTS[layout][0].shape[1]
  extras = {}
  suffix = os.path.splitext(path)[1].lower()
  confidence = None
  try:
    if suffix == ".json":
      with open(path) as f:
        records = json.load(f)
      if isinstance(records, dict) and "annotations" in records:
        records = records["annotations"]
      if not isinstance(records, list) or not records:
        raise _InputError(f"{path!r}: expected a non-empty JSON list of COCO keypoint results")
      rows = []
      for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "keypoints" not in rec:
          raise _InputError(f"{path!r}: record {i} has no 'keypoints'")
        kp = np.asarray(rec["keypoints"], np.float64)
        if kp.shape != (3 * num_source,):
          raise _InputError(f"{path!r}: record {i} has {kp.size} keypoint values; layout "
                            f"{layout} needs {3 * num_source} ([x, y, v] * {num_source})")
        rows.append(kp.reshape(num_source, 3))
      array = np.stack(rows)
      keypoints, confidence = array[..., :2], np.clip(array[..., 2], 0.0, 1.0)
      extras["image_id"] = np.asarray([rec.get("image_id", -1) for rec in records])
      extras["score"] = np.asarray([rec.get("score", np.nan) for rec in records], np.float32)
    elif suffix in (".npy", ".npz"):
      data = np.load(path, allow_pickle=False)
      if isinstance(data, np.lib.npyio.NpzFile):
        with data:
          names = list(data.files)
          if "keypoints" in names:
            array = data["keypoints"]
          elif len(names) == 1:
            array = data[names[0]]
          else:
            raise _InputError(f"{path!r}: no 'keypoints' array among {names}")
          for key in ("confidence", "visibility"):
            if key in names:
              confidence = np.asarray(data[key], np.float64)
              break
      else:
        array = data
      array = np.asarray(array, np.float64)
      if array.ndim < 2 or array.shape[-1] not in (2, 3):
        raise _InputError(f"{path!r}: expected keypoints (..., {num_source}, 2) or "
                          f"(..., {num_source}, 3), got {array.shape}")
      keypoints = array[..., :2]
      if array.shape[-1] == 3:
        if confidence is not None:
          raise _InputError(f"{path!r}: confidences given twice (3rd column and an array)")
        confidence = np.clip(array[..., 2], 0.0, 1.0)
    else:
      raise _InputError(f"{path!r}: unsupported input type {suffix!r}; use .npy, .npz or .json")
  except (OSError, ValueError, json.JSONDecodeError) as e:
    if isinstance(e, _InputError):
      raise
    raise _InputError(f"cannot read {path!r}: {e}") from None
  if keypoints.shape[-2] != num_source:
    raise _InputError(f"{path!r}: layout {layout} has {num_source} joints but the keypoints "
                      f"are {keypoints.shape}; pick the right --layout")
  if confidence is not None and confidence.shape != keypoints.shape[:-1]:
    raise _InputError(f"{path!r}: confidence shape {confidence.shape} does not match "
                      f"keypoints {keypoints.shape}")
  return keypoints, confidence, extras


def _lift_all(model, keypoints, confidence, *, batch: int, num_yaws: int, refine: bool):
  """Lifts (N, 17, 2) in fixed-size batches (one compile) with a progress bar."""
  import jax
  from tqdm import tqdm

  from lift3d.lifting import lift

  total = keypoints.shape[0]
  batch = max(1, min(batch, total))
  outputs = []
  for start in tqdm(range(0, total, batch), desc="lifting", unit="batch", disable=total <= batch):
    kp = keypoints[start : start + batch]
    vis = None if confidence is None else confidence[start : start + batch]
    size = kp.shape[0]
    if size < batch:  # pad so every call has the same shape (one compile)
      kp = np.concatenate([kp, np.zeros((batch - size, *kp.shape[1:]), kp.dtype)])
      if vis is not None:
        vis = np.concatenate([vis, np.zeros((batch - size, *vis.shape[1:]), vis.dtype)])
    result = lift(model, kp.astype(np.float32), None if vis is None else vis.astype(np.float32),
                  num_yaws=num_yaws, refine=refine)
    outputs.append(jax.tree.map(lambda x, n=size: np.asarray(x)[:n], result))
  return {name: np.concatenate([getattr(o, name) for o in outputs]) for name in (
      "pose3d", "yaw", "scale", "coeffs", "component", "cost", "reprojected", "valid")}


def _contact_sheet(path: str, keypoints, confidence, result, max_frames: int = 12) -> None:
  """A grid of (input 2D + reprojection, lifted 3D) panels for the first valid frames."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from lift3d.viz.skeleton import draw_skeleton_2d, draw_skeleton_3d

  frames = np.flatnonzero(result["valid"])[:max_frames]
  if frames.size == 0:
    raise _InputError("no frame could be lifted (all invalid); nothing to plot")
  cols = min(4, frames.size)
  rows = -(-frames.size // cols)
  fig = plt.figure(figsize=(4.4 * cols, 2.4 * rows))
  for n, f in enumerate(frames):
    ax = fig.add_subplot(rows, 2 * cols, 2 * n + 1)
    kp = np.where(np.isfinite(keypoints[f]), keypoints[f], np.nan)
    draw_skeleton_2d(ax, np.nan_to_num(kp, nan=np.nanmean(kp)), visibility=confidence[f])
    draw_skeleton_2d(ax, result["reprojected"][f], colour="tab:green", alpha=0.6, linewidth=1.0)
    ax.set_title(f"#{f} 2D (green: reprojected)", fontsize=8)
    ax.tick_params(labelsize=6)
    ax3 = fig.add_subplot(rows, 2 * cols, 2 * n + 2, projection="3d")
    draw_skeleton_3d(ax3, result["pose3d"][f])
    ax3.set_title(f"#{f} 3D (mm), k={int(result['component'][f])}", fontsize=8)
    ax3.tick_params(labelsize=5)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def _cmd_lift(args) -> int:
  from lift3d import pose_model
  from lift3d.skeleton import convert

  if args.num_yaws < 1:
    raise _InputError(f"--num-yaws must be >= 1, got {args.num_yaws}")
  if args.batch < 1:
    raise _InputError(f"--batch must be >= 1, got {args.batch}")
  out_dir = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(out_dir):
    raise _InputError(f"output directory {out_dir!r} does not exist")
  try:
    model = pose_model.load(args.model)
  except (FileNotFoundError, ValueError) as e:
    raise _InputError(f"cannot load model: {e}") from None
  if model.num_joints != 17:
    raise _InputError(f"model {args.model!r} has {model.num_joints} joints; lift3d lifts the "
                      "17-joint H36M17 skeleton")
  keypoints, confidence, extras = _read_keypoints(args.input, args.layout)
  converted = convert(keypoints, args.layout, confidence)
  batch_shape = converted.keypoints.shape[:-2]
  flat_kp = converted.keypoints.reshape(-1, 17, 2)
  flat_conf = converted.confidence.reshape(-1, 17)
  if flat_kp.shape[0] == 0:
    raise _InputError(f"{args.input!r} holds no frames")
  # Without confidences and with every joint finite, take the fast unweighted path.
  weighted = confidence is not None or not np.all(np.isfinite(flat_kp))
  result = _lift_all(model, flat_kp, flat_conf if weighted else None, batch=args.batch,
                     num_yaws=args.num_yaws, refine=args.refine)
  invalid = int((~result["valid"]).sum())
  if invalid:
    logging.warning("%d of %d frames could not be lifted (too few visible joints or "
                    "non-finite input); they hold NaN", invalid, flat_kp.shape[0])
  if args.plot:
    _contact_sheet(args.plot, flat_kp, flat_conf, result)
  arrays = {k: v.reshape(batch_shape + v.shape[1:]) for k, v in result.items()}
  np.savez(args.out, keypoints=converted.keypoints.astype(np.float32),
           confidence=converted.confidence, **arrays, **extras)
  print(f"lifted {flat_kp.shape[0]} frames ({flat_kp.shape[0] - invalid} valid) -> {args.out}"
        + (f", plot {args.plot}" if args.plot else ""))
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="lift3d", description="Lifting from the Deep, in JAX.")
  sub = parser.add_subparsers(dest="command", required=True)
  lift = sub.add_parser("lift", help="lift 2D keypoints to 3D poses with a pose model")
  lift.add_argument("input", help="keypoints: .npy/.npz array or COCO keypoint results .json")
  lift.add_argument("--model", required=True, help="pose model .npz (lift3d.pose_model.save)")
  lift.add_argument("--layout", required=True, choices=sorted(LAYOUTS),
                    help="joint layout of the input keypoints")
  lift.add_argument("--out", required=True, help="output .npz")
  lift.add_argument("--plot", default=None, help="write a contact sheet of skeletons (PNG)")
  lift.add_argument("--num-yaws", type=int, default=100, help="yaws searched (default 100)")
  lift.add_argument("--refine", action="store_true", help="refine the yaw (a few LM steps)")
  lift.add_argument("--batch", type=int, default=4096, help="frames per lift call")
  lift.set_defaults(func=_cmd_lift)
  from lift3d import cli_predict  # the `predict` and `export` commands (issue 14)

  cli_predict.add_commands(sub)
  return parser


def main(argv: list[str] | None = None) -> int:
  """Entry point of the `lift3d` console script; returns the exit status."""
  logging.basicConfig(level=logging.WARNING, format="lift3d: %(levelname)s: %(message)s")
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    return args.func(args)
  except _InputError as e:
    print(f"lift3d: error: {e}", file=sys.stderr)
    return _EXIT_USAGE
  except ValueError as e:  # shape problems found by the library
    print(f"lift3d: error: {e}", file=sys.stderr)
    return _EXIT_USAGE


if __name__ == "__main__":
  sys.exit(main())
