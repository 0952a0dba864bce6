"""The real-image CPM configs, smoke variants: fakes made on the fly, 20 steps, loss falls.

Runs experiments/jobs/cpm_images.py in-process on cpm_mpii.py:smoke, then on
cpm_h36m.py:smoke starting from the MPII run's parameters (the fine-tuning
path of the paper's recipe); both compile the same training step once. The
pose model is the small hand-made one of tests/models/tiny.py (the fit has
tests of its own). Most of the time is compiling the fused step (3 minutes
on the 2-core CI machine at a load of ~20, as long as the other training
tests there); tests/data/pipeline_test.py also trains a tiny centre-map CPM
on the same pipeline.
"""

import json
import os

import numpy as np
import pytest

import lift3d
from experiments.configs import cpm_h36m, cpm_mpii, h36m_protocol1
from experiments.jobs import cpm_images, h36m, h36m_images
from lift3d import pose_model
from lift3d import train as lift_train
from tests.models import tiny


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["loss"] for line in f]


def _start(workdir):
  os.makedirs(workdir)
  pose_model.save(os.path.join(workdir, "pose_model.npz"), tiny.pose_model(num_basis=2))


def test_smoke_configs_train_and_evaluate(tmp_path):
  mpii_dir, h36m_dir = str(tmp_path / "mpii"), str(tmp_path / "h36m")
  _start(mpii_dir)
  config = cpm_mpii.get_config("smoke")
  assert config.train.num_steps == 20 and config.data_dir == ""
  metrics = cpm_images.run(config, mpii_dir)
  losses = _losses(mpii_dir)
  assert len(losses) == 20 and np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses
  assert metrics["dataset"] == "mpii" and metrics["split"] == "validation"
  assert metrics["num_examples"] > 0 and np.isfinite(metrics["px_error_crop"])
  for name in ("cpm_eval.json", "cpm_example.png"):
    assert os.path.getsize(os.path.join(mpii_dir, name)) > 0
  # The workdir is a network `lift3d.load_network` reads, framed as trained.
  network = lift3d.load_network(mpii_dir)
  assert network.model.centre_map and network.input_size == config.image_size
  assert network.centre_sigma == config.augment.centre_sigma
  assert network.person_size == config.augment.person_fraction
  # The fake MPII went through the real builder.
  assert os.path.isfile(os.path.join(mpii_dir, "fake", "mpii", "mpii_human_pose_v1_u12_1.mat"))

  _start(h36m_dir)
  config = cpm_h36m.get_config("smoke")
  config.init_from = mpii_dir
  metrics = cpm_images.run(config, h36m_dir)
  losses = _losses(h36m_dir)
  assert len(losses) == 20 and np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses
  # Fine-tuning starts where the MPII run ended: its first loss is lower
  # than the MPII run's first.
  assert losses[0] < _losses(mpii_dir)[0]
  assert metrics["dataset"] == "h36m" and metrics["split"] == "test"
  assert metrics["num_examples"] == config.eval.num_examples
  # Both datasets were mixed in (Human3.6M and the fake MPII).
  assert os.path.isdir(os.path.join(h36m_dir, "tfds", "lift3d_mpii"))
  params = lift_train.restore_params(h36m_dir)
  assert "fusion_logits" in params

  # Protocol #1 from images with the trained CPM, on the same fake frames.
  eval_dir = str(tmp_path / "p1")
  _start(eval_dir)
  config = h36m_protocol1.get_config("smoke")
  config.from_images = True
  config.data_dir = os.path.join(h36m_dir, "fake", "h36m")
  config.h36m.tfds_dir = os.path.join(h36m_dir, "tfds")
  config.images.cpm_workdir = h36m_dir
  # The fake's test frames: S9, S11 x 2 trials x 4 cameras x frames 0, 5, 10, 15.
  config.images.max_frames = 0
  summary = h36m.run(config, eval_dir)
  assert summary["frames"] == 64 and summary["input"] == "images"
  assert np.isfinite(summary["px_error"]) and summary["paper_mm"] == 88.39
  for suffix in ("actions.md", "actions.csv", "2d.md", "2d.csv"):
    with open(os.path.join(eval_dir, f"h36m_protocol1_images_{suffix}")) as f:
      assert "Directions" in f.read()


def test_crop_predictions_map_back_to_frame_pixels(tmp_path):
  """The labels of a centred crop, mapped back, are the frame's labels."""
  from lift3d.data import fake_datasets, pipeline
  from lift3d.data.h36m import images

  truth = fake_datasets.write_h36m_extracted(str(tmp_path / "m"), subjects=("S1", "S11"),
                                             raw_actions=("Directions",), num_frames=6)
  images.prepare(str(tmp_path / "t"), str(tmp_path / "m"))
  records = images.data_source(str(tmp_path / "t"), split="test")
  crops = pipeline.CentredSource(records, input_size=64)
  planted = {(t.camera, t.frame): t.keypoints for t in truth if t.subject == "S11"}
  assert len(records) == len(planted) == 8
  for i in range(len(records)):
    back = h36m_images.crop_to_frame(crops[i]["keypoints2d"], crops[i]["matrix"],
                                     records[i]["crop_offset"])
    want = planted[(records[i]["camera"].decode(), int(records[i]["frame"]))]
    np.testing.assert_allclose(back, want, atol=1e-3)


def test_dataset_selection():
  config = cpm_mpii.get_config("")
  with pytest.raises(ValueError, match=r"set --config.data_dir to your copy of mpii"):
    cpm_images.dataset_dirs(config, "/tmp/unused")
  config.data_dir = "/d/mpii"
  assert cpm_images.dataset_dirs(config, "/w") == ([("mpii", "/d/mpii", 1.0)],
                                                   "~/tensorflow_datasets")
  # A mixed-in dataset needs a weight and a folder.
  config.mix.coco.data_dir = "/d/coco"
  assert [n for n, *_ in cpm_images.dataset_dirs(config, "/w")[0]] == ["mpii"]
  config.mix.coco.weight = 0.5
  assert cpm_images.dataset_dirs(config, "/w")[0] == [("mpii", "/d/mpii", 1.0),
                                                      ("coco", "/d/coco", 0.5)]
  # cpm_h36m mixes MPII in (weight 1) once its folder is given.
  config = cpm_h36m.get_config("")
  config.data_dir, config.mix.mpii.data_dir = "/d/h36m", "/d/mpii"
  assert [(n, w) for n, _, w in cpm_images.dataset_dirs(config, "/w")[0]] == [
      ("h36m", 1.0), ("mpii", 1.0)]
