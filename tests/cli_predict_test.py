"""Tests of `lift3d predict` and `lift3d export` (lift3d/cli_predict.py) end to end."""

import json
import os

import av
import jax
import numpy as np
import pytest
import skimage.data
from PIL import Image

from lift3d import cli, cli_predict, inference
from lift3d.data import synthetic
from lift3d.data.mocap import load_embedded
from lift3d.models import cpm
from tests.models import tiny

L = tiny.NUM_LANDMARKS


@pytest.fixture(scope="module")
def network_file(tmp_path_factory):
  pose_model = tiny.pose_model()
  params = cpm.init(tiny.MODEL, jax.random.key(0), (tiny.IMAGE_SIZE,) * 2, pose_model)
  network = inference.Network(tiny.MODEL, params, input_size=tiny.IMAGE_SIZE, scales=(1.0,),
                              pose_model=pose_model)
  path = str(tmp_path_factory.mktemp("net") / "tiny.msgpack")
  inference.export_network(network, path)
  return path


def _run(capsys, *argv):
  status = cli.main(["predict", *argv, "--num-yaws", "8", "--no-progress"])
  captured = capsys.readouterr()
  return status, captured.out, captured.err


def test_photographs_give_records_overlays_and_one_line_per_bad_input(tmp_path, network_file,
                                                                      capsys):
  # Real photographs shipped with scikit-image, a grey picture, a file that
  # is no picture, and a detections file with a zero-size box.
  folder = tmp_path / "pictures"
  folder.mkdir()
  Image.fromarray(skimage.data.astronaut()).save(folder / "astronaut.png")
  Image.fromarray(skimage.data.coffee()).save(folder / "coffee.jpg")
  Image.fromarray(skimage.data.camera()).save(folder / "camera.png")  # grey
  (folder / "broken.png").write_bytes(b"not a picture")
  (folder / "broken.mp4").write_bytes(b"not a video")
  boxes = [{"image_id": "astronaut.png", "bbox": [150, 20, 230, 480], "category_id": 1},
           {"image_id": "astronaut", "bbox": [10, 10, 0, 30], "category_id": 1},
           {"image_id": "coffee.jpg", "bbox": [0, 0, 50, 50], "category_id": 3}]  # not a person
  (tmp_path / "boxes.json").write_text(json.dumps(boxes))
  out, overlays = tmp_path / "out.json", tmp_path / "overlays"
  status, stdout, stderr = _run(capsys, str(folder), "--network", network_file, "--out", str(out),
                                "--boxes", str(tmp_path / "boxes.json"), "--overlay",
                                str(overlays))
  assert status == 0, stderr
  lines = stderr.strip().splitlines()
  assert len(lines) == 4, stderr
  assert any("camera.png" in line and "grey" in line for line in lines)
  assert any("broken.png" in line and "unreadable picture" in line for line in lines)
  assert any("broken.mp4" in line and "unreadable video" in line for line in lines)
  assert any("astronaut.png" in line and "zero-size" in line for line in lines)
  assert "predicted 2 people" in stdout

  document = json.loads(out.read_text())
  assert document["schema"] == "lift3d.predict/1" and len(document["joints"]) == L
  assert set(document["axes"]) == {"box", "keypoints2d", "pose3d", "yaw"}
  records = document["records"]
  assert [os.path.basename(r["image"]) for r in records] == ["astronaut.png", "coffee.jpg"]
  astronaut, coffee = records
  assert astronaut["box"] == [150, 20, 230, 480]
  height, width = skimage.data.coffee().shape[:2]
  side = max(height, width) * 0.7  # no box: one person centred
  assert coffee["box"] == pytest.approx([(width - side) / 2, (height - side) / 2, side, side])
  for record in records:
    assert record["frame"] is None and record["person"] == 0
    keypoints = np.asarray(record["keypoints2d"])
    assert keypoints.shape == (L, 2) and np.all(np.isfinite(keypoints))
    assert np.asarray(record["confidence"]).shape == (L,)
    if record["valid"]:
      pose = np.asarray(record["pose3d"])
      assert pose.shape == (L, 3) and np.all(np.isfinite(pose)) and record["reason"] == ""
      assert np.isfinite(record["yaw"])
    else:
      assert record["pose3d"] is None and record["reason"]
  assert sorted(os.listdir(overlays)) == ["astronaut.png", "coffee.png"]
  for name in ("astronaut.png", "coffee.png"):
    assert Image.open(overlays / name).size == (800, 400)


def _write_video(path, num_frames: int):
  """Renders of a clip of the corpus written with PyAV at 10 fps."""
  poses = load_embedded().poses[::40][:num_frames]
  source = synthetic.SyntheticPoseSource(poses, image_size=(48, 64), seed=3, length=len(poses))
  with av.open(str(path), mode="w") as container:
    stream = container.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for i in range(len(poses)):
      frame = av.VideoFrame.from_ndarray(source[i]["image"], format="rgb24")
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)
  return poses


def test_a_video_goes_through_frame_by_frame_with_an_mp4_overlay(tmp_path, network_file, capsys):
  video = tmp_path / "clip.mp4"
  poses = _write_video(video, 5)
  out = tmp_path / "out.npz"
  status, stdout, stderr = _run(capsys, str(video), "--network", network_file, "--out", str(out),
                                "--overlay", str(tmp_path / "ov"))
  assert status == 0, stderr
  assert f"predicted {len(poses)} people" in stdout
  with np.load(out) as result:
    assert list(result["frame"]) == list(range(len(poses)))
    assert list(result["person"]) == [0] * len(poses)
    assert result["keypoints2d"].shape == (len(poses), L, 2)
    assert result["pose3d"].shape == (len(poses), L, 3)
    assert np.all(np.isfinite(result["pose3d"][result["valid"]]))
    assert np.all(np.isnan(result["pose3d"][~result["valid"]]))
    assert list(result["lift"]) == ["frame"] * len(poses)
  with av.open(str(tmp_path / "ov" / "clip.mp4")) as container:
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
  assert len(frames) == len(poses) and frames[0].shape == (400, 800, 3)


def test_results_computed_before_an_interruption_are_written(tmp_path, network_file, capsys,
                                                             monkeypatch):
  for name in ("a.png", "b.png", "c.png"):
    Image.fromarray(np.full((20, 30, 3), 100, np.uint8)).save(tmp_path / name)
  real, calls = inference.predict, []

  def interrupted_on_the_second_picture(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise KeyboardInterrupt
    return real(*args, **kwargs)

  monkeypatch.setattr(inference, "predict", interrupted_on_the_second_picture)
  out = tmp_path / "out.json"
  status, _, stderr = _run(capsys, *(str(tmp_path / n) for n in ("a.png", "b.png", "c.png")),
                           "--network", network_file, "--out", str(out))
  assert status == 130 and "interrupted" in stderr
  records = json.loads(out.read_text())["records"]
  assert [os.path.basename(r["image"]) for r in records] == ["a.png"]


def test_bad_arguments_give_one_line_and_status_2(tmp_path, network_file, capsys):
  picture = tmp_path / "a.png"
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(picture)
  for argv, message in [
      ([str(tmp_path / "missing.png"), "--network", network_file, "--out", str(tmp_path / "o.json")],
       "does not exist"),
      ([str(picture), "--network", str(tmp_path / "none.msgpack"), "--out",
        str(tmp_path / "o.json")], "no network at"),
      ([str(picture), "--network", network_file, "--out", str(tmp_path / "o.txt")], ".json or .npz"),
      ([str(picture), "--network", network_file, "--out", str(tmp_path / "o.json"), "--scales",
        "1,x"], "comma-separated"),
  ]:
    status, _, stderr = _run(capsys, *argv)
    assert status == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_box_mappings_take_four_or_five_columns_and_reject_others(tmp_path):
  path = tmp_path / "boxes.json"
  path.write_text(json.dumps({"a.png": [[1, 2, 30, 40, 0.9], [5, 6, 70, 80, 0.5]],
                              "b.png": [[1, 2, 3, 4]], "c.png": []}))
  boxes = cli_predict._read_boxes(str(path))
  np.testing.assert_array_equal(boxes["a.png"], [[1, 2, 30, 40], [5, 6, 70, 80]])
  np.testing.assert_array_equal(boxes["b.png"], [[1, 2, 3, 4]])
  assert boxes["c.png"].shape == (0, 4)
  for bad in ([[1, 2, 3]], [1, 2, 3, 4], "box"):
    path.write_text(json.dumps({"a.png": bad}))
    with pytest.raises(ValueError, match=r"'a\.png' must be a list of"):
      cli_predict._read_boxes(str(path))


def test_video_tracks_keep_every_person_in_place():
  def person(valid, box, keypoints=None):
    return inference.Person(box=np.asarray(box, np.float64),
                            keypoints=np.asarray(keypoints if keypoints is not None
                                                 else np.full((17, 2), np.nan)),
                            confidence=np.ones(17, np.float32), lifted=None, valid=valid)

  points = np.stack(np.meshgrid(np.linspace(10, 30, 17), [0.0]), -1).reshape(17, 2)
  points[:, 1] = np.linspace(40, 90, 17)
  people = [person(True, [0, 0, 5, 5], points), person(False, [100, 100, 20, 40])]
  boxes = cli_predict._follow(people, np.array([[0, 0, 5, 5], [100, 100, 20, 40]]))
  # The valid person's box moves to their landmarks; the other keeps theirs.
  np.testing.assert_allclose(boxes[0], inference.box_from_keypoints(points, np.ones(17)))
  np.testing.assert_array_equal(boxes[1], [100, 100, 20, 40])
  assert cli_predict._follow([], None) is None


def test_sequence_people_lift_each_track_as_a_video_at_its_frame_rate():
  # Two tracks of a planted slow turn (the model's component means, projected
  # with 0.5 px noise); in track 0 the network "found no person" in frames 3
  # and 4 (finite landmarks that must not be used) and frame 7 has a
  # zero-size box. The people come back lifted by one `lift_sequence` call on
  # the tracks at the video's rate, the unseen frames' people unchanged.
  from lift3d import camera
  from lift3d.sequence import frame_rate_weights, lift_sequence

  pose_model = tiny.pose_model()
  rng = np.random.default_rng(4)
  num_frames, rate = 12, 25.0
  means = np.asarray(pose_model.mean)[:2]
  yaw = np.array([[0.5], [2.0]]) + 0.03 * np.arange(num_frames)
  points = np.einsum("tfab,tlb->tfla", np.asarray(camera.yaw_rotation(yaw)), means)
  keypoints = np.asarray(camera.weak_perspective(points, 300.0), np.float32) + np.array(
      [[[[200.0, 240.0]]], [[[420.0, 240.0]]]], np.float32)
  keypoints += rng.normal(scale=0.5, size=keypoints.shape).astype(np.float32)
  confidence = rng.uniform(0.6, 1.0, size=keypoints.shape[:-1]).astype(np.float32)

  def person(n, f, reason=""):
    lifted = None if reason else "per-frame answer"
    kp = np.full((L, 2), np.nan, np.float32) if reason.startswith("zero") else keypoints[n, f]
    return inference.Person(box=np.array([10.0 + n, 20, 100, 200]), keypoints=kp,
                            confidence=confidence[n, f], lifted=lifted, valid=not reason,
                            reason=reason)

  unseen = {(0, 3): "no person: mean landmark confidence 0.100 is below 0.2",
            (0, 4): "no person: mean landmark confidence 0.150 is below 0.2",
            (0, 7): "zero-size or non-finite box (w, h must be > 0)"}
  frames = [[person(n, f, unseen.get((n, f), "")) for n in range(2)] for f in range(num_frames)]
  out = cli_predict._sequence_people(frames, pose_model, rate, None)

  weights = confidence.copy()
  hidden = keypoints.copy()
  for n, f in unseen:
    weights[n, f] = 0.0
    hidden[n, f] = np.nan
  expected = lift_sequence(pose_model, hidden, weights, **frame_rate_weights(rate))
  assert len(out) == num_frames and all(len(row) == 2 for row in out)
  for f in range(num_frames):
    for n in range(2):
      if (n, f) in unseen:
        assert out[f][n] is frames[f][n]
        continue
      got = out[f][n]
      np.testing.assert_array_equal(got.lifted.pose3d, np.asarray(expected.pose3d)[n, f])
      assert got.valid == bool(np.asarray(expected.valid)[n, f])
      assert (got.reason == "") == got.valid
      np.testing.assert_array_equal(got.keypoints, keypoints[n, f])  # the network's 2D kept
  # The planted turn is recovered on the seen frames (a smooth, physical answer).
  assert all(out[f][1].valid for f in range(num_frames))
  yaws = np.array([float(out[f][1].lifted.yaw) for f in range(num_frames)])
  assert np.all(np.abs(np.diff(np.unwrap(yaws)) - 0.03) < 0.03)


def test_a_video_with_sequence_is_lifted_as_one_track(tmp_path, network_file, capsys,
                                                      monkeypatch):
  # The untrained tiny network's landmarks (every frame "seen" at
  # --min-confidence 0) go to `lift_sequence` once, as one track of the
  # video's 6 frames at its 10 fps; the records and the overlay show its answer.
  # (Those landmarks lift to implausible poses, so the records carry the
  # sequence's reasons; the poses themselves are checked by the test above.)
  from lift3d import sequence

  video = tmp_path / "clip.mp4"
  _write_video(video, 6)
  calls = []
  real = sequence.lift_sequence

  def spy(model, keypoints, visibility, **kwargs):
    calls.append((np.asarray(keypoints), np.asarray(visibility), kwargs))
    return real(model, keypoints, visibility, **kwargs)

  monkeypatch.setattr(sequence, "lift_sequence", spy)
  out = tmp_path / "out.json"
  status, stdout, stderr = _run(capsys, str(video), "--network", network_file, "--out", str(out),
                                "--sequence", "--min-confidence", "0", "--overlay",
                                str(tmp_path / "ov"))
  assert status == 0, stderr
  assert "predicted 6 people" in stdout
  assert len(calls) == 1
  keypoints, visibility, kwargs = calls[0]
  assert keypoints.shape == (1, 6, L, 2) and visibility.shape == (1, 6, L)
  assert kwargs == dict(sequence.frame_rate_weights(10.0), num_yaws=8)  # _run passes 8
  records = json.loads(out.read_text())["records"]
  assert [r["frame"] for r in records] == list(range(6))
  assert all(r["lift"] == "sequence" and r["person"] == 0 for r in records)
  np.testing.assert_allclose([r["keypoints2d"] for r in records], keypoints[0], atol=0.01)
  np.testing.assert_allclose(np.clip([r["confidence"] for r in records], 0, 1), visibility[0],
                             atol=1e-4)  # the confidences clipped to [0, 1], as per frame
  answer = real(tiny.pose_model(), keypoints, visibility, **kwargs)
  for f, record in enumerate(records):
    assert record["valid"] == bool(np.asarray(answer.valid)[0, f]), record["reason"]
    if record["valid"]:
      np.testing.assert_allclose(record["pose3d"], np.asarray(answer.pose3d)[0, f], atol=0.06)
    else:
      assert record["pose3d"] is None and record["reason"]
  with av.open(str(tmp_path / "ov" / "clip.mp4")) as container:
    assert sum(1 for _ in container.decode(video=0)) == 6
