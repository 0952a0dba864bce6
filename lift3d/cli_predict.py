r"""The `lift3d predict` and `lift3d export` commands (issue 14).

  lift3d export WORKDIR OUT.msgpack
  lift3d predict INPUT... --network NET --out OUT.json [--boxes BOXES.json] [--overlay DIR]
         [--scales 0.8,1,1.25] [--num-yaws 100] [--min-confidence 0.2] [--pose-model M.npz]
         [--sequence]

`export` writes a training workdir's network (parameters, config, pose model)
into one file that `--network` (and `lift3d.load_network`) reads without
orbax. `predict` runs `lift3d.predict` on pictures, folders of pictures and
videos (one record per person per picture or frame).

INPUT: picture files (.png, .jpg, ...), folders (their pictures and videos,
sorted by name), videos (.mp4, .avi, ...; decoded with PyAV).

BOXES (optional): person detections in COCO format, either a results list
`[{"image_id", "bbox": [x, y, w, h], "score", "category_id"}, ...]` (records
with a `category_id` other than 1, person, are ignored) whose `image_id` is a
file name (with or without folder and suffix) or the index of the file among
the inputs (0-based), or a COCO dataset `{"images": [{"id", "file_name"}],
"annotations": [...]}`, or a mapping `{file name: [[x, y, w, h], ...]}`.
Pictures without an entry get one person roughly centred. In a video the boxes
apply to the first frame; each later frame's boxes follow the previous frame's
valid people (the box around their 2D landmarks), falling back to the first
frame's boxes when there is none.

`--sequence`: each video's tracks (`person` n in every frame) are lifted as
sequences by `lift3d.sequence.lift_sequence`, with the weights converted to
the video's frame rate (`lift3d.sequence.frame_rate_weights`), instead of frame
by frame: a temporally coherent 3D pose (issue 16). The 2D landmarks and
their confidences are the network's, as without it; frames where the network
finds no person (or whose box has zero size) do not enter the sequence and
stay not valid, and a person whose sequence lift is not valid in a frame gets
`valid` false there with the reason. Pictures are lifted frame by frame.

OUT.json schema (`"schema": "lift3d.predict/1"`):
  {"schema", "network", "joints": [17 names], "axes": {...}, "skipped": [...],
   "records": [{"image": path, "frame": int or null, "person": int,
                "box": [x, y, w, h], "keypoints2d": [[x, y] * 17],
                "confidence": [17], "pose3d": [[x, y, z] * 17] or null,
                "yaw": float or null, "valid": bool, "reason": str,
                "lift": "frame" or "sequence"}]}
Axes: `box` pixels, (x, y) its top-left corner with the picture's top-left
corner at (0, 0) (COCO); `keypoints2d` pixels, x right, y down, pixel centres at
integers; `pose3d` millimetres in the camera frame, x right, y up, z towards the
viewer, root joint (Hip) at 0; `yaw` radians about the vertical (the lift's θ).
`pose3d` and `yaw` are null where `valid` is false. `lift` says how the 3D pose
was found: "sequence" for the frames of a video lifted with `--sequence`
(including those left not valid), "frame" otherwise (also for the frames of a
video whose run was interrupted before its end). OUT.npz holds the same
fields as arrays (N records; NaN where not valid).

`--overlay DIR`: per picture `DIR/<name>.png`, per video `DIR/<name>.mp4`: the
2D skeletons over the picture beside the 3D poses (left blue, right red).

Unreadable or grey pictures and zero-size boxes print one line each and are
skipped. The records computed so far are always written, also when the run
is interrupted (the frames of an interrupted video then as lifted frame by
frame).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys

import numpy as np

SCHEMA = "lift3d.predict/1"
AXES = {
    "box": "pixels: x, y of the top-left corner (picture's top-left corner at 0, 0), width, "
           "height (COCO)",
    "keypoints2d": "pixels: x right, y down, pixel centres at integer coordinates",
    "pose3d": "millimetres, camera frame: x right, y up, z towards the viewer; root joint (Hip) "
              "at 0",
    "yaw": "radians, rotation of the pose about the vertical (y) axis",
}


def add_commands(sub) -> None:
  """Adds the `predict` and `export` subcommands to the `lift3d` argument parser."""
  export = sub.add_parser("export", help="write a trained network into one portable file")
  export.add_argument("workdir", help="training workdir (checkpoints/, network.json)")
  export.add_argument("out", help="output file, e.g. network.msgpack")
  export.set_defaults(func=_cmd_export)

  predict = sub.add_parser("predict", help="2D and 3D poses of people in pictures and videos")
  predict.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="picture files, folders of pictures, videos")
  predict.add_argument("--network", required=True,
                       help="a file from `lift3d export`, or a training workdir")
  predict.add_argument("--out", required=True, help="results, .json or .npz")
  predict.add_argument("--boxes", default=None, help="COCO-format person detections (.json)")
  predict.add_argument("--overlay", default=None, metavar="DIR",
                       help="write an overlay per picture (PNG) and per video (MP4) here")
  predict.add_argument("--pose-model", default=None,
                       help="pose model .npz (default: the network's own)")
  predict.add_argument("--scales", default=None,
                       help="comma-separated crop scales (default: the network's)")
  predict.add_argument("--num-yaws", type=int, default=None,
                       help="yaws searched (default 100 per frame; with --sequence, "
                            "lift_sequence's default for the video's frame rate)")
  predict.add_argument("--min-confidence", type=float, default=None,
                       help="validity threshold on the mean map value (default: the network's)")
  predict.add_argument("--sequence", action="store_true",
                       help="lift each video's people as sequences (lift3d.sequence."
                            "lift_sequence, weights converted to the video's frame rate)")
  predict.add_argument("--no-progress", action="store_true", help="no progress bar")
  predict.set_defaults(func=_cmd_predict)


def _cmd_export(args) -> int:
  from lift3d import inference

  out_dir = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(out_dir):
    raise ValueError(f"output directory {out_dir!r} does not exist")
  if not os.path.isdir(args.workdir):
    raise ValueError(f"workdir {args.workdir!r} does not exist")
  network = inference.load_network(args.workdir)
  if network.pose_model is None:
    logging.warning("%s has no pose_model.npz: the file holds no pose model", args.workdir)
  inference.export_network(network, args.out)
  print(f"exported {args.workdir} -> {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")
  return 0


def _follow(people, boxes):
  """The next video frame's (P, 4) boxes: one per person, in the same order.

  A valid person's box moves to the box around their confident landmarks; a
  person who is not valid in this frame keeps the box they had, so that
  nobody is dropped and `person` indexes the same track in every frame.
  """
  from lift3d import inference

  if not people:
    return boxes
  follow = []
  for person in people:
    box = None
    if person.valid:
      box = inference.box_from_keypoints(person.keypoints, person.confidence,
                                         min_confidence=0.1)
    follow.append(box if box is not None and np.all(box[2:] > 0) else np.asarray(person.box))
  return np.stack(follow).astype(np.float64)


def _read_boxes(path: str) -> dict:
  """BOXES.json -> {key: (P, 4) array}; keys are image ids / file names as given."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"cannot read boxes {path!r}: {e}") from None
  boxes: dict = {}
  if isinstance(data, dict) and "annotations" in data:
    names = {img.get("id"): img.get("file_name") for img in data.get("images", [])
             if isinstance(img, dict)}
    data = [dict(rec, image_id=names.get(rec.get("image_id"), rec.get("image_id")))
            for rec in data["annotations"] if isinstance(rec, dict)]
  if isinstance(data, dict):
    for key, rows in data.items():
      try:
        array = np.asarray(rows, np.float64).reshape(len(rows), -1) if len(rows) else None
      except (TypeError, ValueError):
        array = np.zeros((0, 0))
      if array is None:
        array = np.zeros((0, 4))
      # [x, y, w, h] rows, optionally with a fifth (score) column.
      if array.ndim != 2 or array.shape[1] not in (4, 5):
        raise ValueError(f"boxes {path!r}: {key!r} must be a list of [x, y, w, h] (or "
                         f"[x, y, w, h, score]) boxes, got {rows!r}")
      boxes[str(key)] = array[:, :4]
    return boxes
  if not isinstance(data, list):
    raise ValueError(f"boxes {path!r}: expected a COCO results list, a COCO dataset or a "
                     "mapping of file names to boxes")
  for i, rec in enumerate(data):
    if not isinstance(rec, dict) or "bbox" not in rec or "image_id" not in rec:
      raise ValueError(f"boxes {path!r}: record {i} needs 'image_id' and 'bbox'")
    if rec.get("category_id", 1) != 1:
      continue
    bbox = np.asarray(rec["bbox"], np.float64)
    if bbox.shape != (4,):
      raise ValueError(f"boxes {path!r}: record {i} has bbox {rec['bbox']}; expected [x, y, w, h]")
    key = str(rec["image_id"])
    boxes[key] = np.concatenate([boxes.get(key, np.zeros((0, 4))), bbox[None]])
  return boxes


def _boxes_for(boxes: dict | None, path: str, index: int):
  """The boxes of input `index` at `path`: those of every key naming it (None if none)."""
  if boxes is None:
    return None
  name = os.path.basename(path)
  keys = dict.fromkeys((path, name, os.path.splitext(name)[0], str(index)))
  found = [boxes[key] for key in keys if key in boxes]
  return np.concatenate(found) if found else None


def _records(path: str, frame, people, skipped: list[str] | None) -> list[dict]:
  """JSON-able records of one picture's people (zero-size boxes reported, unless
  `skipped` is None, and dropped)."""
  out = []
  for n, person in enumerate(people):
    if person.reason.startswith("zero-size"):
      if skipped is not None:
        line = (f"{path}{'' if frame is None else f' frame {frame}'} box #{n} "
                f"{list(person.box)}: {person.reason}; skipped")
        print(f"lift3d: {line}", file=sys.stderr)
        skipped.append(line)
      continue
    rnd = lambda a, d: np.round(np.asarray(a, np.float64), d).tolist()  # noqa: E731
    out.append({
        "image": path,
        "frame": frame,
        "person": n,
        "box": rnd(person.box, 2),
        "keypoints2d": rnd(person.keypoints, 2),
        "confidence": rnd(person.confidence, 4),
        "pose3d": rnd(person.lifted.pose3d, 1) if person.valid else None,
        "yaw": round(float(person.lifted.yaw), 4) if person.valid else None,
        "valid": bool(person.valid),
        "reason": person.reason,
        "lift": "frame",
    })
  return out


# Reasons of `inference.predict` for which the network saw no person: such
# frames do not enter a track's sequence lift.
_NO_PERSON = ("no person", "zero-size")


def _sequence_people(frames_people: list, pose_model, frame_rate: float, num_yaws):
  """The people of a video's frames with their tracks lifted as sequences.

  frames_people: F lists of `inference.Person` (index n: the same track in
  every frame, as `_follow` keeps them). Each track's landmarks, weighted by
  their confidences (clipped to [0, 1], as `inference.predict` lifts them), go
  to `lift_sequence` at `frame_rate` frames/s (`frame_rate_weights`); frames
  where the network found no person are unobserved there and keep their
  records. Returns the F lists with `lifted`, `valid` and `reason` replaced.
  """
  import dataclasses

  import jax

  from lift3d.sequence import frame_rate_weights, lift_sequence

  num_frames = len(frames_people)
  num_tracks = max(len(people) for people in frames_people)
  num_joints = pose_model.mean.shape[1]
  keypoints = np.full((num_tracks, num_frames, num_joints, 2), np.nan, np.float32)
  weights = np.zeros((num_tracks, num_frames, num_joints), np.float32)
  seen = np.zeros((num_tracks, num_frames), bool)
  for f, people in enumerate(frames_people):
    for n, person in enumerate(people):
      if not person.reason.startswith(_NO_PERSON):
        seen[n, f] = True
        keypoints[n, f] = person.keypoints
        weights[n, f] = np.clip(np.nan_to_num(person.confidence), 0.0, 1.0)
  if not seen.any():  # nobody in any frame: nothing to lift
    return frames_people
  weights = np.where(np.all(np.isfinite(keypoints), axis=-1), weights, 0.0)
  rate_weights = frame_rate_weights(frame_rate)
  lifted = jax.tree.map(np.asarray, lift_sequence(pose_model, keypoints, weights,
                                                  num_yaws=num_yaws, **rate_weights))
  out = []
  for f, people in enumerate(frames_people):
    row = []
    for n, person in enumerate(people):
      if not seen[n, f]:
        row.append(person)
        continue
      mine = jax.tree.map(lambda x, n=n, f=f: x[n, f], lifted)
      reason = ""
      if int(mine.component) < 0 or not np.all(np.isfinite(mine.pose3d)):
        reason = (f"the sequence lift failed here (more than {rate_weights['max_gap']} frames "
                  "from a liftable one, or a scale that is not positive)")
      elif not bool(mine.valid):
        reason = (f"implausible 3D pose in the sequence lift (size {float(mine.size):.2f} of the "
                  f"training size, Mahalanobis norm {float(mine.mahalanobis):.1f}, reprojection "
                  f"residual {float(mine.residual):.2f}; docs/method.md §4.5)")
      row.append(dataclasses.replace(person, lifted=mine, valid=not reason, reason=reason))
    out.append(row)
  return out


def _write(path: str, network: str, records: list[dict], skipped: list[str]) -> None:
  """Writes OUT (.json or .npz) atomically."""
  from lift3d.skeleton import H36M17

  tmp = f"{path}.tmp"
  if path.lower().endswith(".npz"):
    num = len(records)
    nan = lambda *s: np.full(s, np.nan, np.float32)  # noqa: E731
    arrays = {
        "image": np.asarray([r["image"] for r in records], str),
        "frame": np.asarray([-1 if r["frame"] is None else r["frame"] for r in records], np.int64),
        "person": np.asarray([r["person"] for r in records], np.int64),
        "box": np.asarray([r["box"] for r in records], np.float32).reshape(num, 4),
        "keypoints2d": np.asarray([r["keypoints2d"] for r in records], np.float32).reshape(
            num, H36M17.num_joints, 2),
        "confidence": np.asarray([r["confidence"] for r in records], np.float32).reshape(
            num, H36M17.num_joints),
        "pose3d": np.stack([np.asarray(r["pose3d"], np.float32) if r["valid"]
                            else nan(H36M17.num_joints, 3) for r in records]) if num
                  else nan(0, H36M17.num_joints, 3),
        "yaw": np.asarray([r["yaw"] if r["valid"] else np.nan for r in records], np.float32),
        "valid": np.asarray([r["valid"] for r in records], bool),
        "reason": np.asarray([r["reason"] for r in records], str),
        "lift": np.asarray([r["lift"] for r in records], str),
        "joints": np.asarray(H36M17.names),
    }
    with open(tmp, "wb") as f:
      np.savez(f, **arrays)
  else:
    document = {"schema": SCHEMA, "network": network, "joints": list(H36M17.names),
                "axes": AXES, "skipped": skipped, "records": records}
    with open(tmp, "w") as f:
      json.dump(document, f)
  os.replace(tmp, path)


def _overlay_path(directory: str, path: str, suffix: str, used: set) -> str:
  stem = os.path.splitext(os.path.basename(path))[0]
  candidate, n = os.path.join(directory, stem + suffix), 1
  while candidate in used:
    candidate, n = os.path.join(directory, f"{stem}_{n}{suffix}"), n + 1
  used.add(candidate)
  return candidate


def _cmd_predict(args) -> int:
  from lift3d import inference, media, progress
  from lift3d import pose_model as pose_model_lib
  from lift3d.viz import overlay

  if not args.out.lower().endswith((".json", ".npz")):
    raise ValueError(f"--out must end in .json or .npz, got {args.out!r}")
  out_dir = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(out_dir):
    raise ValueError(f"output directory {out_dir!r} does not exist")
  if args.num_yaws is not None and args.num_yaws < 1:
    raise ValueError(f"--num-yaws must be >= 1, got {args.num_yaws}")
  # Per frame: `inference.predict`'s own default unless given.
  frame_yaws = {} if args.num_yaws is None else {"num_yaws": args.num_yaws}
  scales = None
  if args.scales:
    try:
      scales = tuple(float(s) for s in args.scales.split(","))
    except ValueError:
      raise ValueError(f"--scales must be comma-separated numbers, got {args.scales!r}") from None
  files = media.expand_inputs(args.inputs)
  boxes = _read_boxes(args.boxes) if args.boxes else None
  network = inference.load_network(args.network)
  pose_model = None
  if args.pose_model:
    try:
      pose_model = pose_model_lib.load(args.pose_model)
    except (FileNotFoundError, ValueError) as e:
      raise ValueError(f"cannot load pose model: {e}") from None
  elif network.pose_model is None:
    raise ValueError(f"{args.network!r} holds no pose model; pass --pose-model")
  if args.overlay:
    os.makedirs(args.overlay, exist_ok=True)

  def run(image, image_boxes):
    return inference.predict(
        network, pose_model, [image], None if image_boxes is None else [image_boxes],
        scales=scales, min_confidence=args.min_confidence, **frame_yaws)[0]

  records: list[dict] = []
  skipped: list[str] = []
  skipped_files = 0
  used: set = set()
  status = 0
  bar = progress.bar(total=len(files), unit="file", desc="predict", disable=args.no_progress)
  try:
    for index, path in enumerate(files):
      first_boxes = _boxes_for(boxes, path, index)
      try:
        if media.is_video(path):
          rate = media.video_rate(path)
          overlay_file = (_overlay_path(args.overlay, path, ".mp4", used) if args.overlay
                          else None)
          # With --sequence the overlay is drawn after the sequence lift (a
          # second decoding of the video), so that it shows the smoothed poses.
          writer = (media.VideoWriter(overlay_file, fps=rate)
                    if overlay_file and not args.sequence else None)
          tracked = first_boxes
          first_record, frames, video_people = len(records), 0, []
          with writer if writer is not None else contextlib.nullcontext():
            for frame, image in enumerate(media.read_video(path)):
              people = run(image, tracked)
              records.extend(_records(path, frame, people, skipped))
              tracked = _follow(people, tracked)
              frames += 1
              if args.sequence:  # kept for the sequence lift (not otherwise: long videos)
                video_people.append(people)
              if writer is not None:
                writer.write(overlay.overlay_array(image, people, title=f"{path} #{frame}"))
              bar.set_postfix(frames=frames)
          if frames == 0:
            raise media.MediaError(f"{path}: no frames")
          if args.sequence:
            video_people = _sequence_people(
                video_people, network.pose_model if pose_model is None else pose_model, rate,
                args.num_yaws)
            records[first_record:] = [  # (the zero-size boxes were reported above)
                dict(record, lift="sequence")
                for frame, people in enumerate(video_people)
                for record in _records(path, frame, people, None)]
            if overlay_file:
              with media.VideoWriter(overlay_file, fps=rate) as writer:
                for frame, (image, people) in enumerate(zip(media.read_video(path),
                                                            video_people, strict=False)):
                  writer.write(overlay.overlay_array(image, people,
                                                     title=f"{path} #{frame} (sequence)"))
        else:
          image = media.read_image(path)
          people = run(image, first_boxes)
          records.extend(_records(path, None, people, skipped))
          if args.overlay:
            overlay.save_overlay(_overlay_path(args.overlay, path, ".png", used), image, people,
                                 title=os.path.basename(path))
      except media.MediaError as e:
        print(f"lift3d: skipping {e}", file=sys.stderr)
        skipped.append(str(e))
        skipped_files += 1
      bar.update(1)
  except KeyboardInterrupt:
    print(f"lift3d: interrupted; writing the {len(records)} records computed so far",
          file=sys.stderr)
    status = 130
  finally:
    bar.close()
    _write(args.out, args.network, records, skipped)
  valid = sum(r["valid"] for r in records)
  print(f"predicted {len(records)} people ({valid} valid) in {len(files) - skipped_files} of "
        f"{len(files)} inputs -> {args.out}" + (f", overlays in {args.overlay}"
                                                if args.overlay else ""))
  return status
