"""The pose-model job, the config-to-keyword mapping and the corpus split."""

import inspect
import json
import os

import numpy as np
import pytest

from experiments import settings
from experiments.configs import cpm_synthetic, default, fit_pose_model, h36m_protocol1
from experiments.jobs import pose_model as job
from lift3d import pose_model
from lift3d.data import mocap
from tests.pose_model import synthetic
from tests.pose_model.conftest import STANDARD


def _args():
  args = settings.pose_model_args(fit_pose_model.get_config("smoke").pose_model)
  args["fit_kwargs"].update(STANDARD)  # the sizes the other tests compiled for
  return args


def test_every_config_has_one_shape_per_section():
  def shape(section):
    return {k: shape(v) if hasattr(v, "keys") else type(v).__name__ for k, v in section.items()}

  for variant in ("", "smoke"):
    base = default.get_config(variant)
    for module in (fit_pose_model, cpm_synthetic):
      config = module.get_config(variant)
      assert shape(config) == shape(base), module.__name__
    assert shape(h36m_protocol1.get_config(variant).pose_model) == shape(base.pose_model)
  with pytest.raises(ValueError, match="variant"):
    fit_pose_model.get_config("huge")


def test_sections_map_onto_library_keywords():
  from lift3d import lift, train
  from lift3d.data.synthetic import RenderOptions

  config = default.get_config("smoke")
  fit_params = inspect.signature(pose_model.fit).parameters
  assert set(settings.fit_kwargs(config.pose_model)) <= set(fit_params)
  assert set(settings.lift_kwargs(config.lift)) <= set(inspect.signature(lift).parameters)
  train_params = inspect.signature(train.train).parameters
  assert set(settings.train_kwargs(config.cpm.train)) <= set(train_params)
  render = settings.render_kwargs(config.cpm)
  render_fields = {f for f in RenderOptions.__dataclass_fields__}
  assert set(render) - {"image_size", "seed", "length", "preset"} <= render_fields
  # Every field of each section is used (or is job-level): nothing is silently ignored.
  used = set(settings.pose_model_args(config.pose_model)["fit_kwargs"]) | {
      "seed", "max_poses", "plot_modes", "calibrate", "calibration_frames"}
  assert used == set(config.pose_model.keys())


def test_corpus_split_excludes_the_held_out_clips():
  config = default.get_config("smoke")
  train_poses, heldout_poses = settings.split_corpus(config.data)
  rest, held = mocap.load_embedded().split(tuple(config.data.holdout_clips),
                                           tuple(config.data.holdout_prefixes))
  train, validation = rest.split(tuple(config.data.validation_clips),
                                 tuple(config.data.validation_prefixes))
  assert len(heldout_poses) == len(held.poses) > 0
  np.testing.assert_allclose(heldout_poses, held.poses)
  np.testing.assert_allclose(settings.validation_poses(config.data), validation.poses)
  assert len(validation.poses) > 0
  expected = train.subsample(config.data.frame_stride).poses
  assert train_poses.shape == expected.shape and train_poses.shape[1:] == (17, 3)
  np.testing.assert_allclose(train_poses, expected)
  config.data.corpus = "nonexistent"
  with pytest.raises(ValueError, match=r"config\.data\.corpus"):
    settings.split_corpus(config.data)


def test_fit_and_save_writes_model_figure_and_summary(tmp_path, monkeypatch):
  poses = synthetic.planted_poses(400)[0]
  workdir = str(tmp_path / "work")
  model, summary = job.fit_and_save(poses, workdir, **_args())
  assert summary["num_training_poses"] == 400 and summary["num_poses_fitted"] == 800
  assert summary["num_components"] == 2 and summary["num_basis"] == 3
  assert np.isfinite(summary["final_log_likelihood"]) and summary["fit_seconds"] > 0
  for name in ("pose_model.npz", "pose_model_components.png", "pose_model_summary.json"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  with open(os.path.join(workdir, "pose_model_summary.json")) as f:
    assert json.load(f)["num_components"] == 2
  # load_or_fit loads the saved model instead of fitting again.
  monkeypatch.setattr(job, "fit_and_save", lambda *a, **k: pytest.fail("load_or_fit refitted"))
  again = job.load_or_fit(None, workdir, **_args())
  np.testing.assert_array_equal(again.mean, model.mean)


def test_load_or_fit_fits_when_absent_and_caps_the_poses(tmp_path):
  poses = synthetic.planted_poses(500, seed=2)[0]
  args = dict(_args(), max_poses=400)
  model = job.load_or_fit(poses, str(tmp_path), filename="other.npz", report=False, **args)
  assert model.mean.shape == (2, 17, 3)
  assert sorted(os.listdir(tmp_path)) == ["other.npz"]  # report=False: the model only
  # The cap keeps 400 evenly strided poses: the same fit as on those poses.
  kept = poses[np.linspace(0, 499, 400).round().astype(int)]
  direct, _ = job.fit_and_save(kept, str(tmp_path / "direct"), report=False, **_args())
  np.testing.assert_allclose(model.mean, direct.mean, atol=1e-6)
