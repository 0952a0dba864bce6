"""Tests of the `lift3d lift` command line."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from lift3d import camera, cli, pose_model
from lift3d.lifting import lift
from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import COCO17_NAMES, H36M17
from tests.lifting.planted import limb_norm

K, J, L, T, B = 2, 3, 17, 24, 6


def _model():
  rng = np.random.default_rng(0)
  mean = rng.normal(size=(K, L, 3)) * 0.25
  mean -= mean.mean(axis=1, keepdims=True)
  mean /= limb_norm(mean)[:, None, None]  # normalised units, as a fitted model's
  basis = np.stack([np.linalg.qr(rng.normal(size=(3 * L, J)))[0].T.reshape(J, L, 3)
                    for _ in range(K)])
  return PoseModel(mean=jnp.asarray(mean, jnp.float32), basis=jnp.asarray(basis, jnp.float32),
                   variances=jnp.full((K, J), 0.005, jnp.float32),
                   noise=jnp.full((K,), 1e-4, jnp.float32),
                   weights=jnp.full((K,), 0.5, jnp.float32),
                   limb_scale=jnp.asarray(0.5, jnp.float32))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("model") / "model.npz"
  pose_model.save(path, _model())
  return str(path)


def _poses(seed=0):
  """(B, 17, 3) model poses at random yaws (model units)."""
  model = _model()
  rng = np.random.default_rng(seed)
  comps = rng.integers(0, K, size=B)
  poses = np.asarray(model.mean)[comps]
  rot = np.asarray(camera.yaw_rotation(rng.uniform(0, 2 * np.pi, size=B)))
  return np.einsum("bac,blc->bla", rot, poses)


def _keypoints(seed=0):
  """(B, 17, 2) pixels of model poses at random yaws."""
  return np.array(camera.weak_perspective(_poses(seed), 200.0 * np.ones(B),
                                          translation=np.full((B, 2), 300.0)), np.float32)


def test_npy_with_confidence_column(tmp_path, model_path, capsys):
  kp = _keypoints()
  conf = np.ones((B, L), np.float32)
  conf[:, 2] = 0.0
  kp[:, 2] = np.nan
  np.save(tmp_path / "kp.npy", np.concatenate([kp, conf[..., None]], -1))
  out = tmp_path / "out.npz"
  code = cli.main(["lift", str(tmp_path / "kp.npy"), "--model", model_path, "--layout",
                   "h36m17", "--out", str(out), "--num-yaws", str(T)])
  assert code == 0
  assert "lifted 6 frames (6 valid)" in capsys.readouterr().out
  with np.load(out) as data:
    assert data["pose3d"].shape == (B, L, 3) and data["valid"].all()
    direct = lift(pose_model.load(model_path), kp, conf, num_yaws=T)
    np.testing.assert_allclose(data["pose3d"], np.asarray(direct.pose3d), atol=1e-3)
    np.testing.assert_array_equal(data["confidence"][:, 2], 0.0)


def test_reconstruction_flag(tmp_path, model_path):
  rng = np.random.default_rng(1)
  kp = _keypoints() + rng.normal(scale=3.0, size=(B, L, 2)).astype(np.float32)
  np.save(tmp_path / "kp.npy", kp)
  model = pose_model.load(model_path)
  for mode in ("model", "blend"):
    out = tmp_path / f"{mode}.npz"
    assert cli.main(["lift", str(tmp_path / "kp.npy"), "--model", model_path, "--layout",
                     "h36m17", "--out", str(out), "--num-yaws", str(T),
                     "--reconstruction", mode]) == 0
    with np.load(out) as data:
      direct = lift(model, kp, num_yaws=T, reconstruction=mode)
      np.testing.assert_allclose(data["pose3d"], np.asarray(direct.pose3d), atol=1e-3)
  with np.load(tmp_path / "model.npz") as a, np.load(tmp_path / "blend.npz") as b:
    assert np.abs(a["pose3d"] - b["pose3d"]).max() > 1.0  # the noise moves the blend


def test_pitch_flag_is_the_camera_rotation(tmp_path, model_path, capsys):
  # --pitch 12: the frames seen from a camera pitched down by 12°; the command
  # lifts them as `lift` with that camera's rotation does.
  rotation = np.asarray(camera.elevation_rotation(np.deg2rad(12.0)), np.float32)
  kp = np.asarray(camera.weak_perspective(_poses(), 300.0, rotation=rotation,
                                          translation=np.array([320.0, 240.0])), np.float32)
  np.save(tmp_path / "kp.npy", kp)
  out = tmp_path / "out.npz"
  assert cli.main(["lift", str(tmp_path / "kp.npy"), "--model", model_path, "--layout",
                   "h36m17", "--out", str(out), "--num-yaws", str(T), "--pitch", "12"]) == 0
  direct = lift(pose_model.load(model_path), kp, num_yaws=T, camera_rotation=rotation)
  with np.load(out) as data:
    np.testing.assert_allclose(data["pose3d"], np.asarray(direct.pose3d), atol=1e-3)
  code = cli.main(["lift", str(tmp_path / "kp.npy"), "--model", model_path, "--layout",
                   "h36m17", "--out", str(tmp_path / "o2.npz"), "--pitch", "95"])
  err = capsys.readouterr().err
  assert code == 2 and "--pitch must be an angle" in err and err.count("\n") == 1, err


def test_coco_json_with_plot(tmp_path, model_path):
  h36m = _keypoints(1)
  # COCO joints from H36M17 positions (a plausible mapping for a round trip).
  from_h36m = {"nose": "Neck/Nose", "left_shoulder": "LShoulder", "right_shoulder": "RShoulder",
               "left_elbow": "LElbow", "right_elbow": "RElbow", "left_wrist": "LWrist",
               "right_wrist": "RWrist", "left_hip": "LHip", "right_hip": "RHip",
               "left_knee": "LKnee", "right_knee": "RKnee", "left_ankle": "LFoot",
               "right_ankle": "RFoot", "left_eye": "Head", "right_eye": "Head",
               "left_ear": "Head", "right_ear": "Head"}
  coco = np.stack([h36m[:, H36M17.index(from_h36m[n])] for n in COCO17_NAMES], axis=1)
  records = [{"image_id": 100 + i, "category_id": 1, "score": 0.9,
              "keypoints": np.concatenate([coco[i], np.ones((17, 1))], 1).ravel().tolist()}
             for i in range(B)]
  (tmp_path / "res.json").write_text(json.dumps(records))
  out, png = tmp_path / "out.npz", tmp_path / "sheet.png"
  code = cli.main(["lift", str(tmp_path / "res.json"), "--model", model_path, "--layout",
                   "coco17", "--out", str(out), "--plot", str(png), "--num-yaws", str(T)])
  assert code == 0
  with np.load(out) as data:
    np.testing.assert_array_equal(data["image_id"], 100 + np.arange(B))
    assert data["pose3d"].shape == (B, L, 3) and (data["component"] >= 0).all()
    # The hand model is random, not human: joints COCO lacks (derived from the
    # others) may leave a frame implausible, so not valid (docs/method.md §4.5).
    assert data["valid"].mean() > 0.5 and set(data.files) >= {"size", "plausible"}
  assert png.stat().st_size > 10_000


@pytest.mark.parametrize("case", ["missing", "garbage", "wrong_joints", "bad_model", "bad_json"])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, model_path, capsys, case):
  path = tmp_path / "in.npy"
  model = model_path
  if case == "garbage":
    path.write_bytes(b"not a numpy file")
  elif case == "wrong_joints":
    np.save(path, np.zeros((3, 16, 2)))
  elif case == "bad_model":
    np.save(path, _keypoints())
    model = str(tmp_path / "in.npy")
  elif case == "bad_json":
    path = tmp_path / "in.json"
    path.write_text('[{"keypoints": [1, 2]}]')
  code = cli.main(["lift", str(path), "--model", model, "--layout", "h36m17",
                   "--out", str(tmp_path / "o.npz")])
  err = capsys.readouterr().err
  assert code == 2
  assert err.startswith("lift3d: error:") and err.count("\n") == 1, err
  assert "Traceback" not in err


def test_bad_layout_is_a_usage_error(model_path):
  with pytest.raises(SystemExit) as exc:
    cli.main(["lift", "x.npy", "--model", model_path, "--layout", "nope", "--out", "o.npz"])
  assert exc.value.code == 2
