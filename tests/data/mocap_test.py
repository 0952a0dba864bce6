"""Tests of lift3d.data.mocap: the embedded corpus, MocapCorpus and the H36M reader."""

import numpy as np
import pytest

from experiments.configs.parts import data as data_config
from lift3d import skeleton as skeleton_lib
from lift3d.data import mocap
from lift3d.skeleton import H36M17

UP = np.array([0.0, 1.0, 0.0])
# Clips where the performer stays on their feet throughout.
UPRIGHT_CLIPS = ("humanoid3d_walk", "humanoid3d_run", "humanoid3d_punch", "humanoid3d_jump",
                 "humanoid3d_dance_a", "humanoid3d_dance_b")


@pytest.fixture(scope="module")
def corpus():
  """The DeepMimic part of the embedded corpus."""
  return mocap.load_embedded(sources=("deepmimic",))


@pytest.fixture(scope="module")
def full_corpus():
  return mocap.load_embedded()


def _joint(name):
  return H36M17.index(name)


# --- The embedded corpus -----------------------------------------------------


def test_embedded_shapes_and_values(corpus):
  assert corpus.poses.shape == (1618, 17, 3)
  assert corpus.poses.dtype == np.float32
  assert corpus.clip_ids.shape == (1618,) and corpus.clip_ids.dtype == np.int32
  assert corpus.num_clips == 15
  assert all(n.startswith("humanoid3d_") for n in corpus.clip_names)
  assert np.all(np.isfinite(corpus.poses))
  # Every clip is present and its frames are contiguous.
  counts = np.bincount(corpus.clip_ids, minlength=15)
  assert np.all(counts > 0)
  assert np.count_nonzero(np.diff(corpus.clip_ids)) == 14
  # Metres: a person is between 1.3 and 2.2 m tall when upright.
  walk = corpus.clip_poses("humanoid3d_walk")
  height = walk[:, _joint("Head"), 1] - walk[:, [_joint("LFoot"), _joint("RFoot")], 1].min(1)
  assert 1.3 < np.median(height) < 2.2


def test_embedded_sources(full_corpus, corpus):
  cmu = mocap.load_embedded(sources=("cmu",))
  hdm = mocap.load_embedded(sources=("hdm05",))
  assert (len(cmu), cmu.num_clips) == (10260, 61) and (len(hdm), hdm.num_clips) == (13776, 288)
  assert all(n.startswith("cmu/") for n in cmu.clip_names)
  assert all(n.startswith("hdm05/") for n in hdm.clip_names)
  assert len(full_corpus) == len(cmu) + len(hdm) + len(corpus)
  assert full_corpus.num_clips == 61 + 288 + 15
  np.testing.assert_array_equal(full_corpus.clip_poses("cmu/02_01"), cmu.clip_poses("cmu/02_01"))
  # Real people in metres: upright walkers are 1.4 to 2.1 m tall.
  walk = full_corpus.clip_poses("cmu/07_01")
  height = walk[:, _joint("Head"), 1] - walk[:, [_joint("LFoot"), _joint("RFoot")], 1].min(1)
  assert 1.4 < np.median(height) < 2.1
  with pytest.raises(ValueError, match="unknown or no mocap sources"):
    mocap.load_embedded(sources=("cmu", "mocapdb"))


def test_default_split_holds_out_and_validates_whole_clips(full_corpus):
  cfg = data_config.get()
  rest, heldout = full_corpus.split(cfg.holdout_clips, cfg.holdout_prefixes)
  train, validation = rest.split(cfg.validation_clips, cfg.validation_prefixes)
  assert set(cfg.holdout_clips) <= set(heldout.clip_names)
  assert any(n.startswith("hdm05/mm_") for n in heldout.clip_names)
  assert not any(n.startswith("hdm05/mm_") for n in train.clip_names + validation.clip_names)
  assert any(n.startswith("hdm05/tr_") for n in validation.clip_names)
  assert len(train) + len(validation) + len(heldout) == len(full_corpus)
  # Several real activities are held out.
  assert sum(n.startswith("cmu/") for n in heldout.clip_names) >= 5
  with pytest.raises(ValueError, match="no clip name starts with"):
    full_corpus.split((), ("hdm05/zz_",))


def test_frame_rates(corpus):
  # The clips mix 16, 24, 30 and 60 fps; most frames are at 60.
  assert corpus.frame_rate == 60.0
  assert corpus.clip_rate("humanoid3d_walk") == 30.0
  assert corpus.clip_rate("humanoid3d_cartwheel") == 60.0
  assert set(corpus.clip_frame_rates) == {16.0, 24.0, 30.0, 60.0}


def test_every_limb_keeps_its_length(corpus):
  # Rigid-body forward kinematics: each limb has one length in all frames of all clips.
  for parent, child in H36M17.limbs:
    length = np.linalg.norm(corpus.poses[:, child] - corpus.poses[:, parent], axis=-1)
    assert length.max() - length.min() < 1e-3, (H36M17.names[child], length.min(), length.max())
    assert length.min() > 0.05


def test_limbs_are_left_right_symmetric(corpus):
  pose = corpus.poses[0]
  mirror = H36M17.mirror_permutation
  lengths = np.array([np.linalg.norm(pose[c] - pose[p]) for p, c in H36M17.limbs])
  mirrored = np.array([np.linalg.norm(pose[mirror[c]] - pose[mirror[p]]) for p, c in H36M17.limbs])
  np.testing.assert_allclose(lengths, mirrored, atol=1e-5)


def test_y_is_up(corpus):
  for name in UPRIGHT_CLIPS:
    poses = corpus.clip_poses(name)
    head = poses[:, _joint("Head"), 1]
    feet = poses[:, [_joint("LFoot"), _joint("RFoot")], 1].max(1)
    hip = poses[:, _joint("Hip"), 1]
    assert np.all(head > hip) and np.all(hip > feet), name
  # Over the whole corpus (flips and rolls included) the head is above the feet mostly.
  head = corpus.poses[:, _joint("Head"), 1]
  feet = corpus.poses[:, [_joint("LFoot"), _joint("RFoot")], 1].max(1)
  assert np.mean(head > feet) > 0.85


@pytest.mark.parametrize("clip", ["humanoid3d_walk", "humanoid3d_run"])
def test_right_joints_are_on_the_right(corpus, clip):
  # Walking forwards, the body's right is (direction of travel) x up; the
  # labels must agree with it, independently of the humanoid's own axes.
  poses = corpus.clip_poses(clip)
  velocity = np.gradient(poses[:, _joint("Hip")], axis=0)
  velocity[:, 1] = 0.0
  right = np.cross(velocity, UP)
  right /= np.linalg.norm(right, axis=-1, keepdims=True)
  for r, left in (("RHip", "LHip"), ("RShoulder", "LShoulder")):
    across = poses[:, _joint(r)] - poses[:, _joint(left)]
    side = np.einsum("fi,fi->f", across, right)
    assert np.all(side > 0), (clip, r)
    assert side.mean() > 0.5 * np.linalg.norm(across, axis=-1).mean()


def test_load_embedded_missing_file(tmp_path):
  with pytest.raises(ValueError, match="not found"):
    mocap.load_embedded(tmp_path / "nope.npz")


# --- MocapCorpus -------------------------------------------------------------


def _toy_corpus(rates=(10.0, 20.0, 10.0)):
  # Clip c, frame f: every joint at (c, f, joint index), so frames are identifiable.
  clips = []
  for c, length in enumerate((5, 3, 7)):
    poses = np.zeros((length, 17, 3), np.float32)
    poses[..., 0] = c
    poses[..., 1] = np.arange(length)[:, None]
    poses[..., 2] = np.arange(17)
    clips.append((f"clip{c}", poses))
  return mocap.from_clips(clips, rates)


def test_from_clips_layout():
  corpus = _toy_corpus()
  assert len(corpus) == 15
  np.testing.assert_array_equal(corpus.clip_ids, [0] * 5 + [1] * 3 + [2] * 7)
  np.testing.assert_array_equal(corpus.poses[:, 0, 0], corpus.clip_ids)
  assert corpus.frame_rate == 10.0  # 12 of 15 frames are at 10 fps
  assert corpus.clip_frame_rates == (10.0, 20.0, 10.0)
  assert mocap.from_clips([("a", np.zeros((2, 17, 3)))], 5.0).clip_frame_rates is None


def test_split_and_select():
  corpus = _toy_corpus()
  train, held = corpus.split(["clip2", "clip0"])
  assert held.clip_names == ("clip0", "clip2")  # corpus order, ids renumbered
  assert train.clip_names == ("clip1",)
  assert len(held) == 12 and len(train) == 3
  np.testing.assert_array_equal(held.clip_ids, [0] * 5 + [1] * 7)
  np.testing.assert_array_equal(held.poses[:, 0, 0], [0] * 5 + [2] * 7)
  np.testing.assert_array_equal(held.clip_poses("clip2"), corpus.clip_poses("clip2"))
  assert held.frame_rate == 10.0 and held.clip_frame_rates is None
  assert train.frame_rate == 20.0 and train.clip_frame_rates is None
  with pytest.raises(ValueError, match="unknown clip names"):
    corpus.split(["clip0", "walk"])
  with pytest.raises(ValueError, match="sequence of clip names"):
    corpus.select("clip0")


def test_subsample_per_clip():
  corpus = _toy_corpus()
  sub = corpus.subsample(3)
  # Frames 0, 3 of clip0 (5 frames), 0 of clip1 (3), 0, 3, 6 of clip2 (7).
  np.testing.assert_array_equal(sub.clip_ids, [0, 0, 1, 2, 2, 2])
  np.testing.assert_array_equal(sub.poses[:, 0, 1], [0, 3, 0, 0, 3, 6])
  assert sub.frame_rate == pytest.approx(10.0 / 3)
  assert sub.clip_frame_rates == pytest.approx((10.0 / 3, 20.0 / 3, 10.0 / 3))
  assert corpus.subsample(1) is corpus
  for bad in (0, -2, 1.5):
    with pytest.raises(ValueError, match="stride"):
      corpus.subsample(bad)


def test_corpus_rejects_bad_shapes():
  with pytest.raises(ValueError, match=r"\(N, 17, 3\)"):
    mocap.MocapCorpus(np.zeros((4, 32, 3)), np.zeros(4), ("a",), 30.0)
  with pytest.raises(ValueError, match="clip_ids"):
    mocap.MocapCorpus(np.zeros((4, 17, 3)), np.zeros(3), ("a",), 30.0)
  with pytest.raises(ValueError, match="clip_ids must lie"):
    mocap.MocapCorpus(np.zeros((2, 17, 3)), np.array([0, 1]), ("a",), 30.0)
  with pytest.raises(ValueError, match="frame_rate"):
    mocap.MocapCorpus(np.zeros((2, 17, 3)), np.zeros(2), ("a",), 0.0)


# --- Human3.6M data_3d_h36m.npz ----------------------------------------------


def _write_h36m(path, positions):
  # The layout of the widely used file: one pickled dict under "positions_3d".
  np.savez_compressed(path, positions_3d=positions)


def test_load_h36m_npz(tmp_path):
  rng = np.random.default_rng(0)
  positions = {
      "S1": {"Walking": rng.normal(size=(4, 32, 3)), "Eating 2": rng.normal(size=(2, 32, 3))},
      "S5": {"Sitting": rng.normal(size=(3, 32, 3))},
  }
  # Plant a recognisable pose in S1/Walking frame 0: H36M32 joint 15 (head
  # top, H36M17 "Head") 1.7 m up (z in H36M's world), joint 0 (pelvis) at the
  # world point (0.5, 2.0, 0.9).
  positions["S1"]["Walking"][0, 0] = (0.5, 2.0, 0.9)
  positions["S1"]["Walking"][0, 15] = (0.5, 2.0, 1.7)
  path = tmp_path / "data_3d_h36m.npz"
  _write_h36m(path, positions)

  corpus = mocap.load_h36m_npz(path)
  assert corpus.clip_names == ("S1/Eating 2", "S1/Walking", "S5/Sitting")
  assert len(corpus) == 9 and corpus.frame_rate == 50.0
  walk = corpus.clip_poses("S1/Walking")
  # z up -> y up; H36M's +y becomes our -z; x is unchanged.
  np.testing.assert_allclose(walk[0, _joint("Hip")], (0.5, 0.9, -2.0), atol=1e-6)
  np.testing.assert_allclose(walk[0, _joint("Head")], (0.5, 1.7, -2.0), atol=1e-6)
  # Every joint: the H36M32 index map, then (x, y, z) -> (x, z, -y).
  for target, source in enumerate(skeleton_lib.H36M32_TO_17):
    x, y, z = np.moveaxis(positions["S5"]["Sitting"][:, source], -1, 0)
    np.testing.assert_allclose(
        corpus.clip_poses("S5/Sitting")[:, target], np.stack([x, z, -y], -1), atol=1e-6)

  only_s5 = mocap.load_h36m_npz(path, subjects=["S5"], frame_rate=25.0)
  assert only_s5.clip_names == ("S5/Sitting",) and only_s5.frame_rate == 25.0


def test_load_h36m_npz_rotation_keeps_sides(tmp_path):
  # A proper rotation keeps a right-handed body right-handed: (right x forward) . up
  # has the same sign before and after.
  pose = np.zeros((1, 32, 3))
  pose[0, 1] = (0.1, 0.0, 0.0)  # right hip along +x
  pose[0, 6] = (-0.1, 0.0, 0.0)  # left hip
  pose[0, 13] = (0.0, 0.0, 0.5)  # thorax up (z)
  pose[0, 15] = (0.0, -0.1, 0.7)  # head top, leaning forward along -y
  path = tmp_path / "h36m.npz"
  _write_h36m(path, {"S9": {"Pose": pose}})

  def handedness(p, up_axis):
    right = p[_joint("RHip")] - p[_joint("LHip")]
    up = np.eye(3)[up_axis]
    forward = p[_joint("Head")] - p[_joint("Thorax")]
    forward = forward - forward.dot(up) * up
    return np.sign(np.cross(right, forward).dot(up))

  before = skeleton_lib.convert(pose[0], "h36m32").keypoints
  after = mocap.load_h36m_npz(path).poses[0]
  assert handedness(after, 1) == handedness(before, 2) != 0


def test_load_h36m_npz_errors(tmp_path):
  with pytest.raises(ValueError, match=r"no Human3\.6M file"):
    mocap.load_h36m_npz(tmp_path / "missing.npz")
  wrong_key = tmp_path / "wrong_key.npz"
  np.savez(wrong_key, positions_2d=np.zeros(3))
  with pytest.raises(ValueError, match="positions_3d"):
    mocap.load_h36m_npz(wrong_key)
  good = tmp_path / "good.npz"
  _write_h36m(good, {"S1": {"Walking": np.zeros((2, 32, 3))}})
  with pytest.raises(ValueError, match="unknown subjects"):
    mocap.load_h36m_npz(good, subjects=["S2"])
  bad_shape = tmp_path / "bad_shape.npz"
  _write_h36m(bad_shape, {"S1": {"Walking": np.zeros((2, 17, 3))}})
  with pytest.raises(ValueError, match=r"\(F, 32, 3\)"):
    mocap.load_h36m_npz(bad_shape)
