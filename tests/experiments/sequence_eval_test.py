"""The error summaries and figure of experiments/benchmarks/sequence_eval.py, on planted errors."""

import numpy as np

from experiments.benchmarks import sequence_eval


def _planted():
  rng = np.random.default_rng(0)
  truth = rng.normal(size=(3, 10, 17, 3)) * 100.0
  truth -= truth[:, :, :1]
  frames = np.ones((3, 10), bool)
  frames[1, :4] = False
  frames[2] = False
  return truth, frames


def test_per_video_mpjpe_and_axis_errors_of_planted_offsets():
  truth, frames = _planted()
  # Every joint but the root moved by (3, 0, -4) mm in video 0 and by (0, 6, 8) in video 1:
  # per-joint errors 5 and 10 mm on 16 of 17 joints.
  pred = truth.copy()
  pred[0, :, 1:] += [3.0, 0.0, -4.0]
  pred[1, :, 1:] += [0.0, 6.0, 8.0]
  per_video = sequence_eval.per_video_mpjpe(pred, truth, frames)
  np.testing.assert_allclose(per_video[:2], [5.0 * 16 / 17, 10.0 * 16 / 17])
  assert np.isnan(per_video[2])  # no frame compared
  # Over the 16 frames compared (10 of video 0, 6 of video 1), per axis.
  expected = (np.array([3.0, 0.0, 4.0]) * 10 + np.array([0.0, 6.0, 8.0]) * 6) / 16 * 16 / 17
  np.testing.assert_allclose(sequence_eval.axis_errors(pred, truth, frames), expected)


def test_error_figure_is_written(tmp_path):
  truth, frames = _planted()
  frames[2] = True
  lift_pose = truth + 20.0
  lift_pose[:, :, 0] = 0.0
  seq_pose = truth + 10.0
  seq_pose[:, :, 0] = 0.0
  path = tmp_path / "errors.png"
  sequence_eval.error_figure(path, truth, lift_pose, seq_pose, frames)
  assert path.stat().st_size > 20_000


class _LinearCorpus:
  """One 30 fps clip whose joints move linearly in time: pose(t) = start + t · velocity."""

  clip_names = ("walk",)

  def __init__(self):
    rng = np.random.default_rng(1)
    self.start, self.velocity = rng.normal(size=(17, 3)), rng.normal(size=(17, 3))

  def clip_rate(self, name):
    return 30.0

  def clip_poses(self, name):
    return self.start + np.arange(10)[:, None, None] / 30.0 * self.velocity


def test_resampled_clips_interpolate_in_time_and_keep_their_duration():
  corpus = _LinearCorpus()
  for rate in (60.0, 120.0, 45.0):
    resampled = sequence_eval.Resampled(corpus, rate)
    poses = resampled.clip_poses("walk")
    times = np.arange(len(poses)) / rate  # seconds
    np.testing.assert_allclose(poses, corpus.start + times[:, None, None] * corpus.velocity,
                               atol=1e-12)
    # The same 9/30 s as the source's 10 frames (to within one new frame).
    assert 9 / 30 - 1 / rate < times[-1] <= 9 / 30 + 1e-9
    assert resampled.clip_rate("walk") == rate and resampled.clip_names == ("walk",)
