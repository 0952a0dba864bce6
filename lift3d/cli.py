r"""The `lift3d` command line.

  lift3d lift INPUT --model MODEL.npz --layout coco17 --out OUT.npz [--plot SHEET.png]
         [--num-yaws T] [--refine] [--batch 4096] [--overwrite] [--sequence] [--fps 30]
  lift3d export-bvh RESULT.npz OUT.bvh [--track 0] [--fps 30] [--units cm] [--model M.npz]

INPUT is one of
- a `.npy` array of keypoints (..., S, 2) in pixels (y down), or (..., S, 3)
  whose last column is a per-joint confidence in [0, 1];
- a `.npz` file with a `keypoints` array (or a single array) of that form and
  an optional `confidence` (or `visibility`) array (..., S);
- a COCO-format keypoint results JSON: a list of
  `{"image_id", "keypoints": [x, y, v] * S, "score"}` (v is read as the joint's
  confidence, clipped to [0, 1]).
- a folder of OpenPose per-frame JSON files (`people[i].pose_keypoints_2d`),
  read as a sequence (frames in file-name order, one track per person index
  or OpenPose `person_id`).
With `--sequence`, a multi-frame COCO / AlphaPose results JSON is grouped
into frames by `image_id` (one track per person index, or AlphaPose's
`idx`), an array (..., F, S, 2) is read as tracks of F frames, and every
track is lifted as a video by `lift3d.sequence.lift_sequence`; the outputs
are (tracks, frames, ...) with `frames` and `track_ids`.
S is the number of joints of `--layout`; keypoints are mapped into the H36M17
skeleton with `lift3d.skeleton.convert`, whose confidences weight the lift.

OUT.npz holds the `LiftResult` fields (pose3d in mm, yaw, scale, coeffs,
component, cost, reprojected, size, mahalanobis, residual, plausible, valid) with the input's batch shape, plus the
mapped `keypoints` and `confidence` (and `image_id`, `score` for JSON input).
It is written at exactly the path given (a NumPy .npz archive whatever the
name); if OUT is an existing folder (or ends in a path separator) the file is
`OUT/<input name>_lifted.npz`. An existing OUT or SHEET is never replaced
unless `--overwrite` (`-f`) is given; files are written whole or not at all.

Bad files or arguments print one line on stderr and exit with status 2,
before any work. The results are saved before the contact sheet is drawn: if
no frame could be lifted there is nothing to plot, which is reported (exit 1)
after OUT is written.

`export-bvh` writes one track of a result as BVH motion on the H36M17
skeleton (`lift3d.data.bvh_writer`): fixed bone lengths (the sequence's
median, or the `--model`'s mean pose), joint rotations solved per frame,
ZXY rotation channels in degrees, lengths in `--units` (default centimetres),
y up; invalid frames repeat the previous valid pose.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np

from lift3d import files
from lift3d.skeleton import LAYOUTS

_EXIT_FAILED = 1  # the work was done and saved, a later step could not be
_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130


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
      _check_numpy_file(path, suffix)
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
  except (OSError, ValueError, EOFError, json.JSONDecodeError) as e:
    if isinstance(e, _InputError):
      raise
    if isinstance(e, json.JSONDecodeError):
      raise _InputError(f"{path!r} is not valid JSON ({e}); expected COCO keypoint results") \
          from None
    if "pickled" in str(e):
      raise _InputError(f"{path!r} holds Python objects, not a numeric array; save the "
                        "keypoints as a float array with numpy.save") from None
    raise _InputError(f"cannot read {path!r}: {e}") from None
  if keypoints.shape[-2] != num_source:
    raise _InputError(f"{path!r}: layout {layout} has {num_source} joints but the keypoints "
                      f"are {keypoints.shape}; pick the right --layout")
  if confidence is not None and confidence.shape != keypoints.shape[:-1]:
    raise _InputError(f"{path!r}: confidence shape {confidence.shape} does not match "
                      f"keypoints {keypoints.shape}")
  return keypoints, confidence, extras


_NUMPY_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}


def _check_numpy_file(path: str, suffix: str) -> None:
  """Raises `_InputError` unless `path` starts like a NumPy `.npy` / `.npz` file."""
  with open(path, "rb") as f:
    head = f.read(6)
  if not head:
    raise _InputError(f"input file {path!r} is empty")
  magic = _NUMPY_MAGIC[suffix]
  if not head.startswith(magic):
    kind = "text" if all(32 <= b < 127 or b in b"\t\r\n" for b in head) else "binary data"
    writer = "numpy.save" if suffix == ".npy" else "numpy.savez"
    raise _InputError(f"{path!r} is not a NumPy {suffix} file (it starts with {kind} "
                      f"{head!r}); write the keypoints with {writer}, or use a COCO .json")


def _output_path(out: str, input_path: str) -> str:
  """The file `--out` names: OUT itself, or `OUT/<input name>_lifted.npz` for a folder."""
  if os.path.isdir(out) or out.endswith(("/", os.sep)):
    stem = os.path.splitext(os.path.basename(input_path))[0] or "keypoints"
    return os.path.join(out, f"{stem}_lifted.npz")
  return out


def _check_writable(path: str, what: str, overwrite: bool) -> None:
  """Raises `_InputError` if `path` cannot be written (before any work is done)."""
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise _InputError(f"{what} folder {folder!r} does not exist; create it first")
  if os.path.isdir(path):
    raise _InputError(f"{what} {path!r} is a folder; give a file name")
  if os.path.exists(path) and not overwrite:
    raise _InputError(f"{what} {path!r} exists; pass --overwrite (-f) to replace it")
  if not os.access(folder, os.W_OK):
    raise _InputError(f"{what} folder {folder!r} is not writable")


def _lift_all(model, keypoints, confidence, *, batch: int, num_yaws: int, refine: bool,
              reconstruction: str = "blend", camera_rotation=None):
  """Lifts (N, 17, 2) in fixed-size batches (one compile) with a progress bar."""
  import jax

  from lift3d.lifting import lift
  from lift3d.progress import bar as progress_bar

  total = keypoints.shape[0]
  batch = max(1, min(batch, total))
  outputs = []
  for start in progress_bar(range(0, total, batch), desc="lifting", unit="batch", disable=total <= batch):
    kp = keypoints[start : start + batch]
    vis = None if confidence is None else confidence[start : start + batch]
    size = kp.shape[0]
    if size < batch:  # pad so every call has the same shape (one compile)
      kp = np.concatenate([kp, np.zeros((batch - size, *kp.shape[1:]), kp.dtype)])
      if vis is not None:
        vis = np.concatenate([vis, np.zeros((batch - size, *vis.shape[1:]), vis.dtype)])
    result = lift(model, kp.astype(np.float32), None if vis is None else vis.astype(np.float32),
                  num_yaws=num_yaws, refine=refine, reconstruction=reconstruction,
                  camera_rotation=camera_rotation)
    outputs.append(jax.tree.map(lambda x, n=size: np.asarray(x)[:n], result))
  return {name: np.concatenate([getattr(o, name) for o in outputs]) for name in (
      "pose3d", "yaw", "scale", "coeffs", "component", "cost", "reprojected", "size",
      "mahalanobis", "residual", "plausible", "valid")}


def _plot_format(path: str) -> str:
  """The image format of `--plot` from its extension (png when it has none)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg

  suffix = os.path.splitext(path)[1].lower().lstrip(".") or "png"
  supported = FigureCanvasAgg.get_supported_filetypes()
  if suffix not in supported:
    raise _InputError(f"--plot {path!r}: unknown image type {suffix!r}; use one of "
                      f"{', '.join(sorted(supported))}")
  return suffix


def _sheet_frames(valid, lifted, max_frames: int, timed: bool):
  """Flat indices of the frames a contact sheet shows: valid ones first, then
  lifted but implausible ones; the first `max_frames` of them, or for tracks
  in time order (`timed`) `max_frames` spread evenly over them (consecutive
  video frames look alike), in time order."""
  chosen = np.flatnonzero(valid)
  if chosen.size == 0 or not timed:
    chosen = np.concatenate([chosen, np.flatnonzero(lifted & ~valid)])
  if not timed or chosen.size <= max_frames:
    return chosen[:max_frames]
  return chosen[np.unique(np.round(np.linspace(0, chosen.size - 1, max_frames)).astype(int))]


def _yaw_timeline(yaw, valid):
  """(tracks, frames) yaw (radians) -> unwrapped degrees, NaN where not valid.

  Unwrapped along each track over its valid frames in order (across a gap,
  by the smaller turn), so that a turn through 360° reads as one line.
  """
  degrees = np.full(yaw.shape, np.nan)
  for track in range(yaw.shape[0]):
    seen = np.flatnonzero(valid[track] & np.isfinite(yaw[track]))
    if seen.size:
      degrees[track, seen] = np.degrees(np.unwrap(yaw[track, seen]))
  return degrees


def _draw_timeline(fig, spec, result, tracks, sampled):
  """Yaw and component over time, one line per track (at most 8), below the panels."""
  from matplotlib.ticker import MaxNLocator

  num_tracks, num_frames = tracks
  shown = min(num_tracks, 8)
  yaw = _yaw_timeline(result["yaw"].reshape(tracks), result["valid"].reshape(tracks))
  component = result["component"].reshape(tracks).astype(float)
  component[~result["valid"].reshape(tracks)] = np.nan
  frames = np.arange(num_frames)
  cells = spec.subgridspec(1, 2, wspace=0.25)
  ax_yaw, ax_k = fig.add_subplot(cells[0]), fig.add_subplot(cells[1])
  for p in range(shown):
    label = f"track {p}"
    ax_yaw.plot(frames, yaw[p], lw=1.2, label=label)
    ax_k.step(frames, component[p], where="mid", lw=1.2, label=label)
  for ax in (ax_yaw, ax_k):
    for f in sampled:  # the frames drawn above
      if f // num_frames < shown:
        ax.axvline(f % num_frames, color="0.8", lw=0.6, zorder=0)
    ax.set_xlabel("frame", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_xlim(0, max(num_frames - 1, 1))
  ax_yaw.set_ylabel("yaw (degrees, unwrapped)", fontsize=8)
  ax_yaw.set_title("subject's yaw over time (gaps: frames not valid; grey: frames shown above)",
                   fontsize=9)
  ax_k.set_ylabel("pose-model component", fontsize=8)
  top = int(np.nanmax(component[:shown], initial=0.0))
  ax_k.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
  ax_k.set_ylim(-0.5, top + 0.5)
  ax_k.set_title("component over time", fontsize=9)
  if shown > 1:
    ax_yaw.legend(fontsize=7, ncol=min(shown, 4))
  if num_tracks > shown:
    ax_k.text(1.0, 1.02, f"first {shown} of {num_tracks} tracks", transform=ax_k.transAxes,
              ha="right", fontsize=7)


def _contact_sheet(file, keypoints, confidence, result, *, image_format: str = "png",
                   max_frames: int = 12, tracks: tuple[int, int] | None = None) -> None:
  """A grid of (input 2D + reprojection, lifted 3D) panels for the first valid frames.

  Joints with confidence 0 (hidden, or derived from a hidden joint) are not
  drawn at their stored coordinates: their limbs are left out of the input
  skeleton; the reprojection (green) shows where the lift puts them.
  `tracks` (number of tracks, frames per track): the input is tracks of
  frames in time order (a flat frame index is track · frames + frame); the
  panels then show frames spread over the videos, and a last row plots the
  yaw and the component of every track over time.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.lines import Line2D
  from matplotlib.ticker import MaxNLocator

  from lift3d.viz.skeleton import LEFT_COLOUR, RIGHT_COLOUR, draw_skeleton_2d, draw_skeleton_3d

  # Valid frames first, then lifted but implausible ones (titled as such).
  lifted = result["component"] >= 0
  frames = _sheet_frames(result["valid"], lifted, max_frames, tracks is not None)
  cols = max(1, min(3, frames.size))
  rows = -(-frames.size // cols)
  timeline = 3.0 if tracks is not None else 0.0  # inches for the row over time
  width, height = 7.0 * cols, 3.6 * rows + timeline + 0.9  # 0.9 for the key and x labels
  fig = plt.figure(figsize=(width, height))
  # A gap of 0.8 inches above the row over time (hspace is in mean row heights).
  outer = fig.add_gridspec(2 if timeline else 1, 1, height_ratios=[3.6 * rows, timeline]
                           if timeline else None, hspace=0.8 / ((3.6 * rows + timeline) / 2),
                           left=0.7 / width, right=1 - 0.5 / width, top=1 - 0.3 / height,
                           bottom=0.9 / height)
  grid = outer[0].subgridspec(rows, 2 * cols, width_ratios=[1.0, 1.3] * cols, wspace=0.35,
                              hspace=0.35)
  if timeline:
    _draw_timeline(fig, outer[1], result, tracks, frames)
  for n, f in enumerate(frames):
    ax = fig.add_subplot(grid[n // cols, 2 * (n % cols)])
    seen = confidence[f] > 0
    kp = np.where(seen[:, None] & np.isfinite(keypoints[f]), keypoints[f], np.nan)
    draw_skeleton_2d(ax, kp, visibility=confidence[f])
    draw_skeleton_2d(ax, result["reprojected"][f], colour="tab:green", alpha=0.6, linewidth=1.0)
    hidden = int((~seen).sum())
    name = f"frame {f}" if tracks is None else f"track {f // tracks[1]}, frame {f % tracks[1]}"
    ax.set_title(f"{name}: input 2D" + (f" ({hidden} hidden joints)" if hidden else ""),
                 fontsize=9)
    ax.set_xlabel("x (px)", fontsize=8)
    ax.set_ylabel("y (px)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax3 = fig.add_subplot(grid[n // cols, 2 * (n % cols) + 1], projection="3d")
    draw_skeleton_3d(ax3, result["pose3d"][f])
    ax3.set_title(f"{name}: lifted 3D (mm), component {int(result['component'][f])}",
                  fontsize=9)
    for axis in (ax3.xaxis, ax3.yaxis, ax3.zaxis):
      axis.set_major_locator(MaxNLocator(3))
    ax3.tick_params(labelsize=6, pad=0)
    ax3.set_xlabel("x (mm)", fontsize=7, labelpad=-2)
    ax3.set_ylabel("z (mm)", fontsize=7, labelpad=-2)
    ax3.set_zlabel("y (mm)", fontsize=7, labelpad=-2)
  key = [Line2D([], [], color=LEFT_COLOUR, lw=2, label="left limbs"),
         Line2D([], [], color=RIGHT_COLOUR, lw=2, label="right limbs"),
         Line2D([], [], color="black", lw=2, label="spine, head"),
         Line2D([], [], color="tab:green", lw=1, label="3D pose reprojected")]
  fig.legend(handles=key, loc="lower center", ncol=len(key), fontsize=8, frameon=False)
  fig.savefig(file, format=image_format, dpi=100)
  plt.close(fig)


def _checked_outputs(args) -> str:
  """The --out path, with --out and --plot checked before any work (so a bad path never
  costs a lift); an existing file is replaced only with --overwrite."""
  out = _output_path(args.out, args.input)
  _check_writable(out, "--out", args.overwrite)
  if args.plot:
    _check_writable(args.plot, "--plot", args.overwrite)
    _plot_format(args.plot)
    if os.path.abspath(args.plot) == os.path.abspath(out):
      raise _InputError("--plot and --out name the same file")
  return out


def _camera_rotation(pitch_deg):
  """`--pitch` (degrees, positive looking down) as the camera rotation E, or None (level)."""
  if pitch_deg is None:
    return None
  from lift3d import camera

  return np.asarray(camera.elevation_rotation(np.deg2rad(pitch_deg)), np.float32)


def _check_pitch(pitch_deg) -> None:
  if pitch_deg is not None and not (np.isfinite(pitch_deg) and abs(pitch_deg) < 90):
    raise _InputError(f"--pitch must be an angle in degrees between -90 and 90, got {pitch_deg}")


def _nothing_to_plot(total: int, out: str) -> int:
  """Reports that no frame of `total` could be lifted (the results are in `out`): exit 1."""
  print(f"lift3d: error: no frame could be lifted (all {total}: too few visible joints or "
        f"non-finite input); nothing to plot, results are in {out}", file=sys.stderr)
  return _EXIT_FAILED


def _cmd_lift(args) -> int:
  from lift3d.skeleton import convert

  _check_pitch(args.pitch)
  if args.num_yaws < 1:
    raise _InputError(f"--num-yaws must be >= 1, got {args.num_yaws}")
  if args.batch < 1:
    raise _InputError(f"--batch must be >= 1, got {args.batch}")
  out = _checked_outputs(args)
  if not os.path.isfile(args.model):
    raise _InputError(f"model file {args.model!r} does not exist")
  # The input is read (NumPy only) before JAX is imported, so its errors come fast.
  keypoints, confidence, extras = _read_keypoints(args.input, args.layout)
  from lift3d import pose_model

  try:
    model = pose_model.load(args.model)
  except (FileNotFoundError, ValueError, OSError, EOFError) as e:
    raise _InputError(f"cannot load model {args.model!r}: {e}") from None
  if model.num_joints != 17:
    raise _InputError(f"model {args.model!r} has {model.num_joints} joints; lift3d lifts the "
                      "17-joint H36M17 skeleton")
  converted = convert(keypoints, args.layout, confidence)
  batch_shape = converted.keypoints.shape[:-2]
  flat_kp = converted.keypoints.reshape(-1, 17, 2)
  flat_conf = converted.confidence.reshape(-1, 17)
  if flat_kp.shape[0] == 0:
    raise _InputError(f"{args.input!r} holds no frames (keypoints {keypoints.shape})")
  # Without confidences and with every joint finite, take the fast unweighted path.
  weighted = confidence is not None or not np.all(np.isfinite(flat_kp))
  result = _lift_all(model, flat_kp, flat_conf if weighted else None, batch=args.batch,
                     num_yaws=args.num_yaws, refine=args.refine,
                     reconstruction=args.reconstruction,
                     camera_rotation=_camera_rotation(args.pitch))
  total = flat_kp.shape[0]
  invalid = int((~result["valid"]).sum())
  if invalid and not (args.plot and invalid == total):  # (that case is the error below)
    lifted = int((result["component"] >= 0).sum())
    logging.warning("%d of %d frames are not valid: %d could not be lifted (too few visible "
                    "joints or non-finite input; they hold NaN), %d were lifted to an "
                    "implausible pose (see `size`, `mahalanobis`, `residual`)", invalid, total,
                    total - lifted, lifted - (total - invalid))
  arrays = {k: v.reshape(batch_shape + v.shape[1:]) for k, v in result.items()}
  # The results first: nothing computed is lost if the plot cannot be drawn.
  files.write_atomically(out, lambda f: np.savez(
      f, keypoints=converted.keypoints.astype(np.float32), confidence=converted.confidence,
      **arrays, **extras))
  args.written = out
  print(f"lifted {total} frames ({total - invalid} valid) -> {out}")
  if args.plot:
    if not np.any(result["component"] >= 0):
      return _nothing_to_plot(total, out)
    files.write_atomically(args.plot, lambda f: _contact_sheet(f, flat_kp, flat_conf, result,
                                                          image_format=_plot_format(args.plot)))
    print(f"contact sheet -> {args.plot}")
  return 0


class _OneLineParser(argparse.ArgumentParser):
  """argparse with usage mistakes in one line (`lift3d: error: ...; see ... --help`), exit 2."""

  def error(self, message: str):
    self.exit(_EXIT_USAGE, f"lift3d: error: {message}; see `{self.prog} --help`\n")
# ---------------------------------------------------------------------------
# Sequences (issue 16): folders of OpenPose files, multi-frame COCO / AlphaPose
# results, `--sequence`, and `export-bvh`.

_RESULT_FIELDS = ("pose3d", "yaw", "scale", "coeffs", "component", "cost", "reprojected", "size",
                  "mahalanobis", "residual", "plausible", "valid")


def _load_model_17(path: str):
  from lift3d import pose_model

  try:
    model = pose_model.load(path)
  except (FileNotFoundError, ValueError) as e:
    raise _InputError(f"cannot load model: {e}") from None
  if model.num_joints != 17:
    raise _InputError(f"model {path!r} has {model.num_joints} joints; lift3d lifts the "
                      "17-joint H36M17 skeleton")
  return model


def _read_sequence(path: str, layout: str):
  """INPUT as tracks of frames: (keypoints (..., F, S, 2), confidence or None, extras)."""
  from lift3d.data import keypoint_files

  num_source = LAYOUTS[layout][0].shape[1]
  try:
    if os.path.isdir(path):
      seq = keypoint_files.read_openpose_folder(path, num_source)
    elif os.path.splitext(path)[1].lower() == ".json" and os.path.isfile(path):
      try:
        with open(path) as f:
          records = json.load(f)
      except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _InputError(f"cannot read {path!r}: {e}") from None
      seq = keypoint_files.read_coco_sequence(records, num_source, where=repr(path))
    else:
      keypoints, confidence, _ = _read_keypoints(path, layout)
      if keypoints.ndim < 3:
        raise _InputError(f"{path!r}: a sequence needs keypoints (..., F, {num_source}, 2), "
                          f"got {keypoints.shape}")
      return keypoints, confidence, {}
  except ValueError as e:
    raise _InputError(str(e)) from None
  if seq.keypoints.shape[0] == 0:
    raise _InputError(f"{path!r}: no person in any frame")
  return seq.keypoints, seq.confidence, {"frames": seq.frames, "track_ids": seq.track_ids}


def _cmd_lift_sequence(args) -> int:
  """`lift` for a folder of OpenPose files, or any input with --sequence."""
  import jax

  from lift3d.sequence import frame_rate_weights, lift_sequence
  from lift3d.skeleton import convert

  _check_pitch(args.pitch)
  if args.num_yaws is not None and args.num_yaws < 3:
    raise _InputError(f"--num-yaws must be >= 3, got {args.num_yaws}")
  if args.sequence and args.refine:
    raise _InputError("--refine applies to per-frame lifting; drop it or --sequence")
  if args.fps is not None and not args.fps > 0:
    raise _InputError(f"--fps must be positive, got {args.fps}")
  out = _checked_outputs(args)
  model = _load_model_17(args.model)
  keypoints, confidence, extras = _read_sequence(args.input, args.layout)
  converted = convert(keypoints, args.layout, confidence)
  batch_shape = converted.keypoints.shape[:-2]
  flat_kp = converted.keypoints.reshape(-1, 17, 2)
  flat_conf = converted.confidence.reshape(-1, 17)
  weighted = confidence is not None or not np.all(np.isfinite(flat_kp))
  if args.sequence:
    # The temporal weights were validated at 30 fps; --fps converts them.
    weights = {} if args.fps is None else frame_rate_weights(args.fps)
    result = lift_sequence(model, converted.keypoints.astype(np.float32),
                           converted.confidence if weighted else None, num_yaws=args.num_yaws,
                           reconstruction=args.reconstruction,
                           camera_rotation=_camera_rotation(args.pitch), **weights)
    result = {k: np.asarray(jax.device_get(getattr(result, k))).reshape(
        (-1, *np.shape(getattr(result, k))[len(batch_shape):])) for k in _RESULT_FIELDS}
  else:
    result = _lift_all(model, flat_kp, flat_conf if weighted else None, batch=args.batch,
                       num_yaws=args.num_yaws, refine=args.refine,
                       reconstruction=args.reconstruction,
                       camera_rotation=_camera_rotation(args.pitch))
  invalid = int((~result["valid"]).sum())
  if invalid:
    logging.warning("%d of %d frames are not valid (not liftable, or implausible)", invalid,
                    flat_kp.shape[0])
  arrays = {k: v.reshape(batch_shape + v.shape[1:]) for k, v in result.items()}
  if args.fps is not None:
    extras["fps"] = np.float64(args.fps)
  # The results first: nothing computed is lost if the plot cannot be drawn.
  files.write_atomically(out, lambda f: np.savez(
      f, keypoints=converted.keypoints.astype(np.float32), confidence=converted.confidence,
      **arrays, **extras))
  args.written = out
  if args.plot:
    if not np.any(result["component"] >= 0):
      return _nothing_to_plot(flat_kp.shape[0], out)
    files.write_atomically(args.plot, lambda f: _contact_sheet(
        f, flat_kp, flat_conf, result, image_format=_plot_format(args.plot),
        tracks=(int(np.prod(batch_shape[:-1])), batch_shape[-1])))
  shape = "x".join(str(n) for n in batch_shape)
  print(f"lifted {flat_kp.shape[0]} frames ({shape}: tracks x frames; "
        f"{flat_kp.shape[0] - invalid} valid"
        f"{', temporally smoothed' if args.sequence else ''}) -> {out}"
        + (f", plot {args.plot}" if args.plot else ""))
  return 0


def _cmd_lift_dispatch(args) -> int:
  if args.num_yaws is None and not args.sequence:  # lift's default (lift_sequence has its own)
    args.num_yaws = 100
  if args.sequence or os.path.isdir(args.input):
    return _cmd_lift_sequence(args)
  return _cmd_lift(args)


def _cmd_export_bvh(args) -> int:
  from lift3d.data import bvh_writer

  if not os.path.isfile(args.result):
    raise _InputError(f"result file {args.result!r} does not exist")
  try:
    with np.load(args.result, allow_pickle=False) as data:
      if "pose3d" not in data.files:
        raise _InputError(f"{args.result!r} has no 'pose3d' (write it with `lift3d lift`)")
      poses = np.asarray(data["pose3d"], np.float64)
      valid = (np.asarray(data["valid"], bool) if "valid" in data.files
               else np.all(np.isfinite(poses), axis=(-1, -2)))
      fps = float(data["fps"]) if "fps" in data.files else None
  except (OSError, ValueError) as e:
    raise _InputError(f"cannot read {args.result!r}: {e}") from None
  if poses.ndim < 3 or poses.shape[-2:] != (17, 3):
    raise _InputError(f"{args.result!r}: pose3d is {poses.shape}, expected (..., F, 17, 3)")
  poses = poses.reshape(-1, *poses.shape[-3:])
  valid = valid.reshape(poses.shape[:2])
  if not 0 <= args.track < poses.shape[0]:
    raise _InputError(f"--track {args.track} out of range: the result has {poses.shape[0]} "
                      "track(s)")
  poses, valid = poses[args.track], valid[args.track]
  if not valid.any():
    raise _InputError(f"track {args.track} has no valid frame")
  # Invalid frames hold the last valid pose (the first valid one before it).
  index = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1))
  index = np.where(index < 0, np.argmax(valid), index)
  poses = poses[index]
  fps = args.fps if args.fps is not None else (fps or 30.0)
  if not fps > 0:
    raise _InputError(f"--fps must be positive, got {fps}")
  if args.model:
    lengths = bvh_writer.model_bone_lengths(_load_model_17(args.model))
  else:
    lengths = bvh_writer.bone_lengths(poses, valid)
  out_dir = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(out_dir):
    raise _InputError(f"output directory {out_dir!r} does not exist")
  bvh = bvh_writer.poses_to_bvh(poses, lengths, frame_time=1.0 / fps, units=args.units)
  bvh_writer.write_bvh(args.out, bvh)
  print(f"wrote {poses.shape[0]} frames at {fps:g} fps, lengths in {args.units} "
        f"({int((~valid).sum())} invalid frames hold the previous pose) -> {args.out}")
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = _OneLineParser(prog="lift3d", description="Lifting from the Deep, in JAX.")
  sub = parser.add_subparsers(dest="command", required=True)
  lift = sub.add_parser("lift", help="lift 2D keypoints to 3D poses with a pose model")
  lift.add_argument("input", help="keypoints: .npy/.npz array, COCO / AlphaPose keypoint "
                    "results .json, or a folder of OpenPose per-frame .json files")
  lift.add_argument("--model", required=True, help="pose model .npz (lift3d.pose_model.save)")
  lift.add_argument("--layout", required=True, choices=sorted(LAYOUTS),
                    help="joint layout of the input keypoints")
  lift.add_argument("--out", required=True,
                    help="output .npz file, written at exactly this path (a folder: "
                         "FOLDER/<input name>_lifted.npz)")
  lift.add_argument("--plot", default=None,
                    help="write a contact sheet of skeletons (PNG); for tracks of frames, "
                    "frames spread over the videos and the yaw and component over time")
  lift.add_argument("-f", "--overwrite", action="store_true",
                    help="replace an existing --out / --plot file")
  lift.add_argument("--num-yaws", type=int, default=None,
                    help="yaws searched (default 100 per frame; with --sequence "
                         "lift_sequence's default: 32 at 30 fps, more at a higher --fps)")
  lift.add_argument("--refine", action="store_true", help="refine the yaw (a few LM steps)")
  lift.add_argument("--batch", type=int, default=4096, help="frames per lift call")
  lift.add_argument("--reconstruction", choices=("blend", "model"), default="blend",
                    help="blend (default): joints moved towards the observed 2D, the model's "
                         "depth kept; model: the model pose alone")
  lift.add_argument("--pitch", type=float, default=None,
                    help="the camera's pitch in degrees, positive looking down at the person "
                         "(lift3d.camera.elevation_rotation); default: a level camera. The "
                         "3D poses are in the camera's frame")
  lift.add_argument("--sequence", action="store_true",
                    help="lift tracks of frames as videos (lift3d.sequence.lift_sequence)")
  lift.add_argument("--fps", type=float, default=None,
                    help="frame rate, stored with the result (for export-bvh); with --sequence "
                         "the temporal weights, validated at 30 fps, are converted to it "
                         "(lift3d.sequence.frame_rate_weights)")
  lift.set_defaults(func=_cmd_lift_dispatch)
  export = sub.add_parser("export-bvh", help="write a lifted sequence as BVH motion")
  export.add_argument("result", help="RESULT.npz written by `lift3d lift`")
  export.add_argument("out", help="output .bvh")
  export.add_argument("--track", type=int, default=0, help="which track (person) to export")
  export.add_argument("--fps", type=float, default=None,
                      help="frame rate (default: the result's, else 30)")
  export.add_argument("--units", choices=("mm", "cm", "m"), default="cm",
                      help="length unit of the file (default cm)")
  export.add_argument("--model", default=None,
                      help="take bone lengths from this pose model (default: the median "
                           "lengths of the sequence)")
  export.set_defaults(func=_cmd_export_bvh)
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
  except KeyboardInterrupt:
    written = getattr(args, "written", None)
    print("lift3d: interrupted" + (f" after writing {written}" if written else
                                   "; nothing was written"), file=sys.stderr)
    return _EXIT_INTERRUPTED
  except _InputError as e:
    print(f"lift3d: error: {e}", file=sys.stderr)
    return _EXIT_USAGE
  except ValueError as e:  # shape problems found by the library
    print(f"lift3d: error: {e}", file=sys.stderr)
    return _EXIT_USAGE
  except OSError as e:  # e.g. the disk filled up while writing
    print(f"lift3d: error: {e}", file=sys.stderr)
    return _EXIT_FAILED


if __name__ == "__main__":
  sys.exit(main())
