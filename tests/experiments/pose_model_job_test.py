"""The pose-model job and its config (fit on stand-in poses; the corpus split on the real one)."""

import json
import os

import numpy as np
import pytest

from experiments.configs import fit_pose_model
from experiments.jobs import pose_model as job
from lift3d import pose_model
from lift3d.data import mocap
from tests.pose_model import synthetic
from tests.pose_model.conftest import STANDARD


def _config():
  config = fit_pose_model.get_config("smoke")
  config.pose_model.update(STANDARD)  # the sizes the other tests compiled for
  return config


def test_config_keys_are_fit_arguments():
  import inspect

  params = inspect.signature(pose_model.fit).parameters
  for variant in ("", "smoke"):
    config = fit_pose_model.get_config(variant)
    assert config.job == "pose_model"
    assert set(job.fit_kwargs(config.pose_model)) <= set(params), set(job.fit_kwargs(
        config.pose_model)) - set(params)
  with pytest.raises(ValueError, match="variant"):
    fit_pose_model.get_config("huge")


def test_training_poses_exclude_the_held_out_clips():
  config = fit_pose_model.get_config("smoke")
  poses = job.training_poses(config)
  corpus = mocap.load_embedded()
  train, held = corpus.split(tuple(config.data.holdout_clips))
  assert len(held.poses) > 0
  expected = train.subsample(config.data.frame_stride).poses
  assert poses.shape == expected.shape and poses.shape[1:] == (17, 3)
  np.testing.assert_allclose(poses, expected)


def test_run_writes_model_figure_and_summary(tmp_path, monkeypatch):
  poses = synthetic.planted_poses(400)[0]
  monkeypatch.setattr(job, "training_poses", lambda config: poses)
  workdir = str(tmp_path / "work")
  summary = job.run(_config(), workdir)
  assert summary["num_training_poses"] == 400 and summary["num_poses_fitted"] == 800
  assert summary["num_components"] == 2 and summary["num_basis"] == 3
  assert np.isfinite(summary["final_log_likelihood"]) and summary["fit_seconds"] > 0
  for name in (job.MODEL_FILE, job.FIGURE_FILE, job.SUMMARY_FILE):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  with open(os.path.join(workdir, job.SUMMARY_FILE)) as f:
    assert json.load(f)["num_components"] == 2
  model = pose_model.load(os.path.join(workdir, job.MODEL_FILE))
  # load_or_fit loads the saved model instead of fitting again.
  monkeypatch.setattr(job, "run", lambda *a: pytest.fail("load_or_fit refitted"))
  again = job.load_or_fit(_config(), workdir)
  np.testing.assert_array_equal(again.mean, model.mean)


def test_load_or_fit_fits_when_absent(tmp_path, monkeypatch):
  poses = synthetic.planted_poses(400, seed=2)[0]
  monkeypatch.setattr(job, "training_poses", lambda config: poses)
  model = job.load_or_fit(_config(), str(tmp_path))
  assert model.mean.shape == (2, 17, 3)
  assert os.path.exists(tmp_path / job.MODEL_FILE)
