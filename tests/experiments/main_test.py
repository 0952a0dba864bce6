"""End-to-end: README command 1's launcher on the smoke variant of the default config.

Runs `python -m experiments.main` in a subprocess, as a user would, and checks
that every step of the demo wrote its outputs, that command-line overrides reach
the library, and that the numbers written are real (a loadable model; lifting
errors that agree across the outputs and beat the mean pose alone; videos whose
sequence lift is smoother than per-frame lifting; the requested number of
training steps).
"""

import json
import os
import subprocess
import sys

import numpy as np

import lift3d
from lift3d import pose_model

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _launch(workdir, *overrides):
  cmd = [sys.executable, "-m", "experiments.main",
         "--config=experiments/configs/default.py:smoke", f"--workdir={workdir}", *overrides]
  return subprocess.run(cmd, cwd=_REPO, capture_output=True, text=True, timeout=900)


def _mean_pose_pa_mpjpe() -> float:
  """PA-MPJPE (mm) of the training mean pose on the smoke config's held-out poses."""
  from experiments import settings
  from experiments.configs import default
  from lift3d.eval import pa_mpjpe

  train, heldout = settings.split_corpus(default.get_config("smoke").data)
  train = np.asarray(train, np.float64)
  mean = np.mean(train - train[:, :1], axis=0) * 1000.0
  truth = np.asarray(heldout, np.float64) * 1000.0
  return float(np.mean(pa_mpjpe(np.broadcast_to(mean, truth.shape), truth)))


def test_default_smoke_runs_every_step(tmp_path):
  work = str(tmp_path / "run")
  proc = _launch(work, "--config.cpm.train.num_steps=3", "--config.pose_model.num_components=2")
  assert proc.returncode == 0, proc.stderr[-3000:]
  for name in ("pose_model.npz", "pose_model_components.png", "lifting_results.md",
               "lifting_examples.png", "metrics.jsonl", "cpm_example.png", "cpm_results.md",
               "summary.json", "network.json", "predict_example.png", "prior_calibration.md",
               "video_results.md"):
    assert os.path.getsize(os.path.join(work, name)) > 0, name
  model = pose_model.load(os.path.join(work, "pose_model.npz"))
  assert model.num_components == 2  # the command-line override reached the fit
  # The lifting's prior was chosen on the validation clips and saved with the model.
  assert model.obs_noise is not None and model.prior_weight is not None
  np.testing.assert_allclose(float(np.sum(model.weights)), 1.0, rtol=1e-5)
  with open(os.path.join(work, "summary.json")) as f:
    summary = json.load(f)
  assert summary["results"] == {"lifting": os.path.join(work, "lifting_results.md"),
                                "video": os.path.join(work, "video_results.md"),
                                "cpm": os.path.join(work, "cpm_results.md")}
  # The video step: the smoke config's 4 held-out clips as 24-frame videos. The
  # sequence fills the frames per-frame lifting cannot lift (whole-person
  # dropouts) and removes most of the frame-to-frame jitter.
  with open(os.path.join(work, "video_results.json")) as f:
    video = json.load(f)
  assert video["rows"] == summary["video"]["rows"] and video["ratios"] == summary["video"]["ratios"]
  per_frame = video["rows"]["lift (per frame)"]
  sequence = video["rows"]["lift_sequence, all its frames"]
  assert sequence["valid"] > per_frame["valid"] > 0.3, video["rows"]
  assert video["ratios"]["accel"] < 0.5, video["ratios"]
  for row in video["rows"].values():
    assert 0 < row["pa_mpjpe"] <= row["mpjpe"] < 300, row
  with open(os.path.join(work, "cpm_results.md")) as f:
    assert "after 3 training steps" in f.read()
  with open(os.path.join(work, "lifting_results.json")) as f:
    assert json.load(f)["rows"] == summary["lifting"]["rows"]
  rows = summary["lifting"]["rows"]
  prior_only = _mean_pose_pa_mpjpe()
  assert len(rows) == 2, rows  # the mixture and the single-PPCA baseline
  for row in rows.values():
    # Smoke: 96 frames; implausible answers are not valid (most are plausible).
    assert row["frames"] == 96 and row["valid_fraction"] >= 0.7, row
    assert 0 < row["pa_mpjpe_mean"] <= row["mpjpe_mean"], row
  # The mixture's lifts use the 2D: they beat the prior alone (the training
  # mean pose, similarity-aligned to each held-out frame).
  mixture = next(v for k, v in rows.items() if k.startswith("mixture"))
  assert mixture["pa_mpjpe_mean"] < 0.9 * prior_only, (mixture, prior_only)
  with open(os.path.join(work, "metrics.jsonl")) as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps and steps[-1] == 3
  # The workdir is a network that lift3d.load_network (and `lift3d export`) reads.
  network = lift3d.load_network(work)
  assert network.pose_model.num_components == 2 and network.input_size == 32
  # Its validity threshold was chosen on held-out renders with and without a
  # person, and it is the one the evaluation reports.
  with open(os.path.join(work, "cpm_eval.json")) as f:
    evaluation = json.load(f)
  assert network.min_confidence == evaluation["min_confidence"] > 0
  assert 0 <= evaluation["people_below_min_confidence"] <= 1
  # The evaluation judged validity by that threshold (it ran after the
  # calibration), and its table says so.
  with open(os.path.join(work, "cpm_results.md")) as f:
    assert f"calibrated `min_confidence` ({evaluation['min_confidence']:.3f})" in f.read()


def test_unknown_job_is_a_clear_error(tmp_path):
  proc = _launch(str(tmp_path / "bad"), "--config.job=nonexistent")
  assert proc.returncode != 0
  assert "experiments/jobs/nonexistent.py" in proc.stderr
