"""End-to-end test of the Human3.6M protocol runner on a tiny fake copy."""

import csv
import json
import os
import tempfile

import numpy as np
import pytest

from experiments.configs import h36m_protocol1, h36m_protocol3
from experiments.jobs import h36m as job
from lift3d.data.h36m import cameras as cams
from lift3d.skeleton import EVAL14_INDICES, H36M32_TO_17
from tests.data import h36m_fake as fake


def _config(module, manual, tfds_dir, **overrides):
  config = module.get_config("smoke")
  config.data_dir = manual
  config.h36m.tfds_dir = tfds_dir
  config.h36m.max_frames_per_action = 0  # every test frame of the fake copy
  for k, v in overrides.items():
    setattr(config.h36m, k, v)
  return config


def _truth_lift_frame(subject, raw, camera_id, frames):
  """Planted 3D in the lift frame, root-centred, computed without the dataset code."""
  world = fake.world_poses(subject, raw).astype(np.float64)[frames][:, list(H36M32_TO_17)] * 1000
  c = cams.get_camera(subject, camera_id)
  pc = (world - c.centre) @ c.rotation.T
  pc = pc * np.array([1.0, -1.0, -1.0])  # y up, z to the viewer
  return pc - pc[:, :1]


def _quick_model(poses_m):
  """A one-component PPCA of the normalised poses, by numpy (no alignment): fast."""
  from lift3d import pose_model

  normalised, scale = pose_model.normalize(poses_m)
  x = np.asarray(normalised, np.float64).reshape(len(poses_m), -1)
  mean = x.mean(0)
  _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
  eig = sv**2 / len(x)
  j = 4
  noise = max(eig[j:].mean(), 1e-6)
  return pose_model.PoseModel(
      mean=mean.reshape(1, 17, 3).astype(np.float32),
      basis=vt[:j].reshape(1, j, 17, 3).astype(np.float32),
      variances=np.maximum(eig[:j] - noise, 1e-6)[None].astype(np.float32),
      noise=np.array([noise], np.float32), weights=np.ones(1, np.float32),
      limb_scale=np.float32(np.mean(scale)))


def _training_poses_model_frame():
  """Planted training poses (metres, y up): what the runner must fit on."""
  out = []
  for subject in ("S1", "S5", "S6", "S7", "S8"):
    for raw in fake.RAW_ACTIONS:
      world = fake.world_poses(subject, raw).astype(np.float64)[:, list(H36M32_TO_17)]
      frames = np.arange(0, fake.num_frames(subject, raw), 5)
      out.append(world[frames] @ cams.WORLD_TO_MODEL.T)
  return np.concatenate(out)


@pytest.fixture(scope="module")
def runs():
  from lift3d import pose_model

  with tempfile.TemporaryDirectory() as root:
    manual = fake.write_npz(os.path.join(root, "manual"))
    tfds_dir = os.path.join(root, "tfds")
    work = os.path.join(root, "work")
    os.makedirs(work)
    # A fitted model in the workdir is used as it is (the fit itself is
    # covered by test_fit_path and the slow test below).
    pose_model.save(os.path.join(work, "pose_model.npz"),
                    _quick_model(_training_poses_model_frame()))
    first = job.run(_config(h36m_protocol1, manual, tfds_dir, num_worst=2), work)
    cache = os.path.join(work, "h36m_protocol1")
    mtimes = {f: os.path.getmtime(os.path.join(cache, f)) for f in os.listdir(cache)}
    second = job.run(_config(h36m_protocol1, manual, tfds_dir, num_worst=0), work)
    mtimes2 = {f: os.path.getmtime(os.path.join(cache, f)) for f in os.listdir(cache)}
    p3 = job.run(_config(h36m_protocol3, manual, tfds_dir, input="gt", num_worst=0), work)
    yield {"work": work, "first": first, "second": second, "p3": p3, "manual": manual,
           "tfds": tfds_dir, "mtimes": (mtimes, mtimes2)}


def test_fit_path_uses_the_training_poses(runs, monkeypatch):
  from lift3d import pose_model

  seen = {}

  def fake_fit(poses, **kwargs):
    seen["poses"], seen["kwargs"] = np.asarray(poses), kwargs
    return pose_model.FitResult(_quick_model(np.asarray(poses)), 2 * len(poses), None, None,
                                np.zeros(1), np.zeros(1), 0.0, {})

  monkeypatch.setattr(pose_model, "fit_detailed", fake_fit)
  with tempfile.TemporaryDirectory() as work:
    config = _config(h36m_protocol1, runs["manual"], runs["tfds"], num_worst=0)
    config.pose_model.max_poses = 0
    job.run(config, work)
    assert os.path.exists(os.path.join(work, "pose_model.npz"))
  want = _training_poses_model_frame()
  np.testing.assert_allclose(seen["poses"], want, atol=1e-4)  # metres, y up, once per frame
  assert seen["kwargs"]["num_components"] == config.pose_model.num_components


@pytest.mark.slow
def test_real_fit_end_to_end():
  with tempfile.TemporaryDirectory() as root:
    manual = fake.write_npz(os.path.join(root, "manual"))
    s = job.run(_config(h36m_protocol1, manual, os.path.join(root, "tfds")),
                os.path.join(root, "work"))
    assert os.path.exists(os.path.join(root, "work", "pose_model.npz"))
    assert s["valid_frames"] == s["frames"] and np.isfinite(s["average_mm"])


def test_tables_and_files(runs):
  work, s = runs["work"], runs["first"]
  assert s["input"] == "detections"  # the fake copy has a detections file
  for suffix in ("_actions.md", "_actions.csv", "_subjects.md", "_subjects.csv", ".json",
                 "_worst.png"):
    assert os.path.exists(os.path.join(work, f"h36m_protocol1{suffix}")), suffix
  with open(os.path.join(work, "h36m_protocol1_actions.csv")) as f:
    rows = list(csv.reader(f))
  assert [r[0] for r in rows[1:]] == [*job.lift_eval.H36M_ACTIONS, "Average"]
  assert rows[-1][2] == "88.39"  # the paper's figure beside ours
  with open(os.path.join(work, "h36m_protocol1.json")) as f:
    assert json.load(f)["average_mm"] == pytest.approx(s["average_mm"])
  # Detections are the ground truth moved by a known offset.
  assert s["input_2d_error_px"] == pytest.approx(np.linalg.norm(fake.DETECTION_OFFSET), rel=1e-4)


def test_errors_match_an_independent_computation(runs):
  work, s = runs["work"], runs["first"]
  per_action, plausible_errors = {}, []
  for action in ("Directions", "Photo"):
    with np.load(os.path.join(work, "h36m_protocol1", f"{action}.npz")) as f:
      pred, valid, error = f["pred"], f["valid"], f["error"]
      assert f["lifted"].all()
    # The smoke model is tiny: some lifts are implausible (valid False, docs/method.md
    # §4.5) but every frame is lifted, and the errors cover every frame.
    assert valid.any() and not valid.all() and np.all(np.isfinite(pred))
    per_action[action] = (pred, error, valid)
  # Rebuild the protocol-1 frames of the fake copy in the runner's order
  # (sorted by subject, action, camera, frame within each action).
  for action, raws in (("Directions", ("Directions", "Directions 1")),
                       ("Photo", ("TakingPhoto 1",))):
    truth = []
    for subject in ("S9", "S11"):  # the dataset's order: the protocol's subjects
      for raw in raws:
        for cid in cams.CAMERA_IDS:
          frames = np.arange(0, fake.num_frames(subject, raw), 5)
          truth.append(_truth_lift_frame(subject, raw, cid, frames))
    truth = np.concatenate(truth)
    pred, error, valid = per_action[action]
    assert pred.shape == truth.shape
    want = np.mean(np.linalg.norm(pred - truth, axis=-1), axis=-1)
    np.testing.assert_allclose(error, want, rtol=1e-4, atol=1e-3)
    # The per-action error averages every lifted frame, implausible ones included.
    assert s["per_action_mm"][action] == pytest.approx(np.mean(want), rel=1e-4)
    plausible_errors.append(want[valid])
  assert s["average_mm"] == pytest.approx(
      np.mean([s["per_action_mm"]["Directions"], s["per_action_mm"]["Photo"]]))
  plausible_errors = np.concatenate(plausible_errors)
  assert s["plausible_frames"] == len(plausible_errors)
  assert s["plausible_frame_average_mm"] == pytest.approx(np.mean(plausible_errors), rel=1e-4)
  # The lifted poses are human-sized and not wildly off (a weak test: the
  # smoke model is tiny), and MPJPE >= PA-MPJPE-style errors on average.
  assert 0 < s["pa_mpjpe_mm"] < 300
  assert s["mpjpe_mm"] >= s["n_mpjpe_mm"] - 1e-6


def test_resume_reuses_cached_actions(runs):
  before, after = runs["mtimes"]
  assert before == after
  assert runs["second"]["per_action_mm"] == pytest.approx(runs["first"]["per_action_mm"],
                                                          nan_ok=True)


def test_protocol3_frontal_trial1_pa(runs):
  s, work = runs["p3"], runs["work"]
  assert s["input"] == "gt" and s["input_2d_error_px"] == pytest.approx(0.0, abs=1e-6)
  expected = 2 * (fake.num_frames("S9", "Directions") + fake.num_frames("S9", "TakingPhoto 1"))
  assert s["frames"] == expected
  with np.load(os.path.join(work, "h36m_protocol3", "Directions.npz")) as f:
    pred, error = f["pred"], f["error"]
  truth = np.concatenate([
      _truth_lift_frame(subject, "Directions", cams.FRONTAL_CAMERA,
                        np.arange(fake.num_frames(subject, "Directions")))
      for subject in ("S9", "S11")
  ])
  want = job.lift_eval.pa_mpjpe(pred, truth, joints=EVAL14_INDICES)
  np.testing.assert_allclose(error, want, rtol=1e-4, atol=1e-3)
