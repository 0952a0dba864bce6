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

from experiments.configs import cpm_h36m, cpm_mpii
from experiments.jobs import cpm_images
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
