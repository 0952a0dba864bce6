"""Tests of the `lift3d` command line on sequences: OpenPose folders, multi-frame COCO
results with --sequence, and export-bvh read back by lift3d.data.bvh."""

import inspect
import json

import numpy as np
import pytest
from sequence_test import PITCH_ROTATION, T, _model, _pitched, _planted

import lift3d
from lift3d import cli, pose_model, sequence
from lift3d.data import bvh, bvh_writer
from lift3d.sequence import lift_sequence
from lift3d.skeleton import BODY25_NAMES, COCO17_NAMES, H36M17, convert


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("model") / "model.npz"
  pose_model.save(path, _model())
  return str(path)


def _h(h36m, name):
  return h36m[..., H36M17.index(name), :]


def _body25(h36m):
  """BODY_25 joints placed at the H36M17 joints (head and feet points near them)."""
  ear_mid = (_h(h36m, "Head") + 0.5 * _h(h36m, "Thorax")) / 1.5
  near = {"Nose": "Neck/Nose", "Neck": "Thorax", "MidHip": "Hip", "RAnkle": "RFoot",
          "LAnkle": "LFoot", "REye": "Neck/Nose", "LEye": "Neck/Nose", "LBigToe": "LFoot",
          "LSmallToe": "LFoot", "LHeel": "LFoot", "RBigToe": "RFoot", "RSmallToe": "RFoot",
          "RHeel": "RFoot"}
  joints = []
  for name in BODY25_NAMES:
    if name in ("REar", "LEar"):
      joints.append(ear_mid)
    else:
      joints.append(_h(h36m, near.get(name, name)))
  return np.stack(joints, axis=-2)


def test_openpose_folder_per_frame_and_sequence(tmp_path, model_path, capsys):
  keypoints, _, _ = _planted()
  body = _body25(keypoints)
  folder = tmp_path / "openpose"
  folder.mkdir()
  for f in range(len(body)):
    people = [{"person_id": [-1], "pose_keypoints_2d": np.concatenate(
        [body[f], np.ones((25, 1))], 1).ravel().tolist()}]
    if f >= 35:  # a second person enters at frame 35
      people.append({"person_id": [-1], "pose_keypoints_2d": np.concatenate(
          [body[f] + 150.0, np.full((25, 1), 0.9)], 1).ravel().tolist()})
    (folder / f"video_{f:012d}_keypoints.json").write_text(json.dumps({"people": people}))
  out = tmp_path / "frames.npz"
  assert cli.main(["lift", str(folder), "--model", model_path, "--layout", "body25", "--out",
                   str(out), "--num-yaws", str(T)]) == 0
  with np.load(out) as data:
    assert data["pose3d"].shape == (2, len(body), 17, 3)
    np.testing.assert_array_equal(data["valid"][1], np.arange(len(body)) >= 35)
    assert data["frames"][0] == "video_000000000000_keypoints.json"
  seq_out = tmp_path / "seq.npz"
  assert cli.main(["lift", str(folder), "--sequence", "--model", model_path, "--layout",
                   "body25", "--out", str(seq_out), "--num-yaws", str(T), "--fps", "25"]) == 0
  assert "temporally smoothed" in capsys.readouterr().out
  with np.load(seq_out) as data:
    assert data["pose3d"].shape == (2, len(body), 17, 3) and float(data["fps"]) == 25.0
    converted = convert(body, "body25", np.ones(body.shape[:-1]))
    # Two tracks, as the command lifts them (so the compiled program is reused),
    # with the temporal weights converted to the 25 fps of --fps.
    direct = lift_sequence(_model(), np.stack([converted.keypoints.astype(np.float32)] * 2),
                           np.stack([converted.confidence] * 2), num_yaws=T,
                           **sequence.frame_rate_weights(25.0))
    np.testing.assert_allclose(data["pose3d"][0], np.asarray(direct.pose3d[0]), atol=1e-2)
    # Track 1 is absent for 35 frames, more than the default gap limit (30).
    assert not data["valid"][1, :35].any() and data["valid"][1, 35:].all()


def test_coco_sequence_and_export_bvh(tmp_path, model_path):
  keypoints, _, _ = _planted()
  from_h36m = {"nose": "Neck/Nose", "left_eye": "Head", "right_eye": "Head",
               "left_ear": "Head", "right_ear": "Head"}
  coco = np.stack([_h(keypoints, from_h36m.get(n, _coco_to_h36m(n))) for n in COCO17_NAMES],
                  axis=-2)
  order = np.random.default_rng(0).permutation(len(coco))  # records out of time order
  records = [{"image_id": int(100 + f), "category_id": 1, "score": 0.9, "keypoints":
              np.concatenate([coco[f], np.ones((17, 1))], 1).ravel().tolist()} for f in order]
  (tmp_path / "res.json").write_text(json.dumps(records))
  out = tmp_path / "out.npz"
  assert cli.main(["lift", str(tmp_path / "res.json"), "--sequence", "--model", model_path,
                   "--layout", "coco17", "--out", str(out), "--num-yaws", str(T)]) == 0
  with np.load(out) as data:
    np.testing.assert_array_equal(data["frames"], 100 + np.arange(len(coco)))
    poses, valid = data["pose3d"][0], data["valid"][0]
  # The hand model is random, not human: frames whose answer is implausible
  # (docs/method.md §4.5) are not valid, and export-bvh holds the last valid pose.
  assert valid.mean() > 0.3
  index = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1))
  poses = poses[np.where(index < 0, np.argmax(valid), index)]
  bvh_path = tmp_path / "out.bvh"
  assert cli.main(["export-bvh", str(out), str(bvh_path), "--fps", "50"]) == 0
  parsed = bvh.read_bvh(bvh_path)
  assert parsed.frame_time == pytest.approx(0.02) and parsed.motion.shape[0] == len(coco)
  back = bvh.to_h36m17(parsed.names, bvh.forward_kinematics(parsed),
                       bvh_writer.H36M17_FROM_BVH) * 10.0  # cm -> mm
  expected = bvh_writer.fix_bone_lengths(poses, bvh_writer.bone_lengths(poses, valid))
  np.testing.assert_allclose(back, expected, atol=1.0)  # the 1 mm
  assert np.abs(back - expected).max() < 0.01  # what 6 decimals of cm actually give
  # Bone lengths from the model instead.
  assert cli.main(["export-bvh", str(out), str(bvh_path), "--model", model_path,
                   "--units", "m"]) == 0
  parsed = bvh.read_bvh(bvh_path)
  back = bvh.to_h36m17(parsed.names, bvh.forward_kinematics(parsed), bvh_writer.H36M17_FROM_BVH)
  parents = np.maximum(np.asarray(H36M17.parents), 0)
  np.testing.assert_allclose(np.linalg.norm(back - back[:, parents], axis=-1)[:, 1:] * 1000,
                             np.broadcast_to(bvh_writer.model_bone_lengths(_model())[1:],
                                             (len(coco), 16)), atol=1e-2)


def _coco_to_h36m(name):
  side, _, part = name.partition("_")
  return side[0].upper() + {"ankle": "Foot"}.get(part, part.capitalize())


@pytest.mark.parametrize("argv, match", [
    (["lift", "{kp}", "--sequence", "--refine"], "--refine applies"),
    (["lift", "{flat}", "--sequence"], "a sequence needs keypoints"),
    (["export-bvh", "{missing}", "{out}"], "does not exist"),
    (["export-bvh", "{kp}", "{out}"], "no 'pose3d'"),
])
def test_bad_sequence_input_gives_one_line(tmp_path, model_path, capsys, argv, match):
  np.savez(tmp_path / "kp.npz", keypoints=np.zeros((4, 5, 17, 2)))
  np.save(tmp_path / "flat.npy", np.zeros((17, 2)))
  names = {"kp": str(tmp_path / "kp.npz"), "flat": str(tmp_path / "flat.npy"),
           "missing": str(tmp_path / "nope.npz"), "out": str(tmp_path / "o.bvh")}
  argv = [a.format(**names) for a in argv]
  if argv[0] == "lift":
    argv += ["--model", model_path, "--layout", "h36m17", "--out", str(tmp_path / "o.npz")]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("lift3d: error:") and err.count("\n") == 1 and match in err, err


def test_sequence_respects_overwrite(tmp_path, model_path, capsys):
  """`lift --sequence` leaves an existing output alone unless --overwrite (-f) is given."""
  keypoints, _, _ = _planted()
  np.save(tmp_path / "kp.npy", keypoints[:12].astype(np.float32))
  out = tmp_path / "o.npz"
  out.write_bytes(b"keep me")
  argv = ["lift", str(tmp_path / "kp.npy"), "--sequence", "--model", model_path, "--layout",
          "h36m17", "--out", str(out), "--num-yaws", str(T)]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("lift3d: error:") and err.count("\n") == 1 and "--overwrite" in err, err
  assert out.read_bytes() == b"keep me"
  assert cli.main([*argv, "-f"]) == 0
  with np.load(out) as data:
    assert data["pose3d"].shape == (12, 17, 3)
  assert not list(tmp_path.glob("o.npz.tmp-*"))


def test_sequence_with_pitch_is_lift_sequence_with_the_camera_rotation(tmp_path, model_path):
  # `--sequence --pitch DEG` lifts as `lift_sequence(..., camera_rotation=E)` does, E the
  # camera pitched down by DEG (here 0.25 rad, `PITCH_ROTATION`).
  keypoints, _, _ = _pitched()
  np.save(tmp_path / "kp.npy", keypoints)
  out = tmp_path / "o.npz"
  assert cli.main(["lift", str(tmp_path / "kp.npy"), "--sequence", "--model", model_path,
                   "--layout", "h36m17", "--out", str(out), "--num-yaws", str(T),
                   "--pitch", repr(float(np.degrees(0.25)))]) == 0
  direct = lift_sequence(_model(), keypoints, num_yaws=T, camera_rotation=PITCH_ROTATION)
  with np.load(out) as data:
    np.testing.assert_array_equal(data["valid"], np.asarray(direct.valid))
    np.testing.assert_allclose(data["pose3d"], np.asarray(direct.pose3d), atol=1e-3)


def test_sheet_frames_spread_over_a_video():
  valid = np.ones(100, bool)
  valid[[0, 1, 50]] = False
  lifted = np.ones(100, bool)
  # Per frame: the first valid ones, then the implausible ones.
  np.testing.assert_array_equal(cli._sheet_frames(valid, lifted, 4, False), [2, 3, 4, 5])
  # Tracks in time order: spread evenly over the valid frames, first and last included.
  frames = cli._sheet_frames(valid, lifted, 12, True)
  assert frames.size == 12 and frames[0] == 2 and frames[-1] == 99
  assert np.all(np.diff(frames) > 0) and valid[frames].all()
  assert np.ptp(np.diff(frames)) <= 2  # even steps over the 97 valid frames
  # A short video shows every valid frame; none valid: the lifted ones.
  np.testing.assert_array_equal(cli._sheet_frames(valid[:6], lifted[:6], 12, True), [2, 3, 4, 5])
  none = np.zeros(5, bool)
  np.testing.assert_array_equal(cli._sheet_frames(none, lifted[:5], 12, True), np.arange(5))


def test_yaw_timeline_unwraps_turns_and_leaves_gaps():
  # Two tracks turning at ±0.4 rad a frame through several full turns, stored mod 2π.
  frames = np.arange(60)
  turns = np.stack([0.4 * frames, 3.0 - 0.4 * frames])
  valid = np.ones(turns.shape, bool)
  valid[1, 20:23] = False
  degrees = cli._yaw_timeline(np.mod(turns, 2 * np.pi), valid)
  np.testing.assert_allclose(degrees[0], np.degrees(turns[0]), atol=1e-9)
  assert np.isnan(degrees[1, 20:23]).all()
  seen = valid[1]
  np.testing.assert_allclose(degrees[1, seen], np.degrees(turns[1, seen]), atol=1e-9)


def test_sequence_contact_sheet_and_all_invalid(tmp_path, model_path, capsys):
  keypoints, _, _ = _planted()
  np.save(tmp_path / "kp.npy", np.stack([keypoints, keypoints[::-1] + 100.0]).astype(np.float32))
  png = tmp_path / "sheet.png"
  assert cli.main(["lift", str(tmp_path / "kp.npy"), "--sequence", "--model", model_path,
                   "--layout", "h36m17", "--out", str(tmp_path / "o.npz"), "--plot", str(png),
                   "--num-yaws", str(T)]) == 0
  assert png.stat().st_size > 50_000
  # Nothing liftable: the results are saved, the plot is reported impossible (exit 1).
  np.save(tmp_path / "nan.npy", np.full((1, 8, 17, 2), np.nan, np.float32))
  capsys.readouterr()
  assert cli.main(["lift", str(tmp_path / "nan.npy"), "--sequence", "--model", model_path,
                   "--layout", "h36m17", "--out", str(tmp_path / "n.npz"), "--plot",
                   str(tmp_path / "n.png"), "--num-yaws", str(T)]) == 1
  assert "nothing to plot" in capsys.readouterr().err
  assert (tmp_path / "n.npz").exists() and not (tmp_path / "n.png").exists()


def test_num_yaws_defaults_to_each_modes_library_default(tmp_path, model_path, monkeypatch):
  # Without --num-yaws, `lift --sequence` leaves the grid to lift_sequence's
  # default (None: `sequence.default_num_yaws`) and per-frame lifting takes
  # lift's (100); an explicit value wins. The lifting calls are intercepted to
  # read the grid they are given (what they compute with it is tested above).
  class Called(Exception):
    pass

  seen = {}

  def record(name):
    def call(*args, num_yaws, **kwargs):
      seen[name] = num_yaws
      raise Called
    return call

  monkeypatch.setattr(cli, "_lift_all", record("frames"))
  monkeypatch.setattr(sequence, "lift_sequence", record("sequence"))
  keypoints, _, _ = _planted()
  np.save(tmp_path / "kp.npy", keypoints[:8].astype(np.float32))
  argv = ["lift", str(tmp_path / "kp.npy"), "--model", model_path, "--layout", "h36m17",
          "--out", str(tmp_path / "o.npz")]
  for extra in ([], ["--sequence"]):
    with pytest.raises(Called):
      cli.main([*argv, *extra])
  lift_default = inspect.signature(lift3d.lift).parameters["num_yaws"].default
  assert seen == {"frames": lift_default, "sequence": None}
  assert inspect.signature(lift_sequence).parameters["num_yaws"].default is None
  with pytest.raises(Called):
    cli.main([*argv, "--sequence", "--num-yaws", "30"])
  assert seen["sequence"] == 30
