"""Readers of OpenPose per-frame JSON files and COCO / AlphaPose results as sequences."""

import json

import numpy as np
import pytest

from lift3d.data import keypoint_files as kf


def _person(seed, num_joints=25, missing=()):
  rng = np.random.default_rng(seed)
  triples = np.concatenate([rng.uniform(0, 500, (num_joints, 2)),
                            rng.uniform(0.2, 1.0, (num_joints, 1))], axis=1)
  for j in missing:
    triples[j] = 0.0  # OpenPose's "not found"
  return triples


def test_natural_order():
  names = ["f_10.json", "f_9.json", "f_100.json", "f_1.json"]
  assert sorted(names, key=kf.natural_key) == ["f_1.json", "f_9.json", "f_10.json", "f_100.json"]
  assert sorted([10, 9, 100], key=kf.natural_key) == [9, 10, 100]


def test_openpose_folder(tmp_path):
  # Frames written out of order, named so that string order would be wrong;
  # two people in frame 9, one in 10, none in 2.
  people = {9: [_person(1, missing=(3,)), _person(2)], 10: [_person(3)], 2: []}
  for frame, persons in people.items():
    data = {"version": 1.3, "people": [
        {"person_id": [-1], "pose_keypoints_2d": p.ravel().tolist(),
         "face_keypoints_2d": []} for p in persons]}
    (tmp_path / f"clip_{frame:d}_keypoints.json").write_text(json.dumps(data))
  (tmp_path / "notes.txt").write_text("ignored")
  seq = kf.read_openpose_folder(tmp_path, 25)
  assert list(seq.frames) == ["clip_2_keypoints.json", "clip_9_keypoints.json",
                              "clip_10_keypoints.json"]
  assert seq.keypoints.shape == (2, 3, 25, 2) and seq.confidence.shape == (2, 3, 25)
  np.testing.assert_array_equal(seq.track_ids, [0, 1])
  # Frame 2 (index 0): nobody.
  assert np.all(seq.confidence[:, 0] == 0) and np.all(np.isnan(seq.keypoints[:, 0]))
  # Frame 9: both people, joint 3 of the first not found.
  np.testing.assert_allclose(seq.keypoints[0, 1, 4], people[9][0][4, :2])
  np.testing.assert_allclose(seq.confidence[1, 1], people[9][1][:, 2])
  assert seq.confidence[0, 1, 3] == 0 and np.all(np.isnan(seq.keypoints[0, 1, 3]))
  # Frame 10: the second track is absent.
  np.testing.assert_allclose(seq.keypoints[0, 2], people[10][0][:, :2])
  assert np.all(seq.confidence[1, 2] == 0)


def test_openpose_tracked_ids(tmp_path):
  for frame, ids in enumerate([[7, 3], [3]]):
    data = {"people": [{"person_id": [i], "pose_keypoints_2d": _person(i).ravel().tolist()}
                       for i in ids]}
    (tmp_path / f"{frame}.json").write_text(json.dumps(data))
  seq = kf.read_openpose_folder(tmp_path, 25)
  np.testing.assert_array_equal(seq.track_ids, [3, 7])
  np.testing.assert_allclose(seq.keypoints[0, 1], _person(3)[:, :2])  # id 3 in frame 1
  assert np.all(seq.confidence[1, 1] == 0)  # id 7 absent in frame 1


@pytest.mark.parametrize("content, match", [
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', "3 keypoint values; expected 75"),
    ('{"persons": []}', "no 'people' list"),
    ("not json", "cannot read OpenPose file"),
])
def test_openpose_bad_files(tmp_path, content, match):
  (tmp_path / "0.json").write_text(content)
  with pytest.raises(ValueError, match=match):
    kf.read_openpose_folder(tmp_path, 25)


def test_openpose_empty_or_missing_folder(tmp_path):
  with pytest.raises(ValueError, match=r"no \.json files"):
    kf.read_openpose_folder(tmp_path, 25)
  with pytest.raises(ValueError, match="not a directory"):
    kf.read_openpose_folder(tmp_path / "nope", 25)


def test_coco_sequence_by_image_id_and_order():
  records = [
      {"image_id": 12, "keypoints": _person(1, 17).ravel().tolist(), "score": 0.9},
      {"image_id": 3, "keypoints": _person(2, 17).ravel().tolist(), "score": 0.8},
      {"image_id": 12, "keypoints": _person(3, 17).ravel().tolist(), "score": 0.7},
  ]
  seq = kf.read_coco_sequence(records, 17)
  np.testing.assert_array_equal(seq.frames, [3, 12])
  assert seq.keypoints.shape == (2, 2, 17, 2)
  np.testing.assert_allclose(seq.keypoints[0, 0], _person(2, 17)[:, :2])
  np.testing.assert_allclose(seq.keypoints[0, 1], _person(1, 17)[:, :2])
  np.testing.assert_allclose(seq.keypoints[1, 1], _person(3, 17)[:, :2])
  assert np.all(seq.confidence[1, 0] == 0)


def test_alphapose_tracks_by_idx():
  # AlphaPose: image_id is the file name; idx the track when tracking is on.
  records = [
      {"image_id": "10.jpg", "idx": 5, "keypoints": _person(1, 26).ravel().tolist()},
      {"image_id": "10.jpg", "idx": 2, "keypoints": _person(2, 26).ravel().tolist()},
      {"image_id": "9.jpg", "idx": 5, "keypoints": _person(3, 26).ravel().tolist()},
  ]
  seq = kf.read_coco_sequence(records, 26)
  np.testing.assert_array_equal(seq.frames, ["9.jpg", "10.jpg"])
  np.testing.assert_array_equal(seq.track_ids, [2, 5])
  np.testing.assert_allclose(seq.keypoints[1, 0], _person(3, 26)[:, :2])
  np.testing.assert_allclose(seq.keypoints[0, 1], _person(2, 26)[:, :2])
  assert np.all(seq.confidence[0, 0] == 0)
  with pytest.raises(ValueError, match="have idx 5"):
    kf.read_coco_sequence([*records, dict(records[0])], 26)
  with pytest.raises(ValueError, match="78"):
    kf.read_coco_sequence(records, 17)
