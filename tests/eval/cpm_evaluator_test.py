"""The CPM evaluator: its jitted predict step and its metrics against direct computation."""

import jax
import numpy as np
import pytest

from lift3d.eval.cpm_evaluator import CPMEvaluator
from lift3d.models import cpm
from tests.models import tiny


class _WithTruth(tiny.BlobSource):
  """Blob images with a made-up 3D truth (metres) and one joint out of frame."""

  def __getitem__(self, index):
    item = dict(super().__getitem__(index))
    item["pose3d"] = (tiny.STICK + 0.01 * index).astype(np.float32)
    item["in_frame"] = np.arange(tiny.NUM_LANDMARKS) != index % tiny.NUM_LANDMARKS
    return item


def test_evaluator_matches_predict_and_numpy_metrics():
  source = _WithTruth(4)
  pose_model = tiny.pose_model()
  params = cpm.init(tiny.MODEL, jax.random.key(0), (tiny.IMAGE_SIZE,) * 2, pose_model)
  evaluator = CPMEvaluator(tiny.MODEL, pose_model, source, num_examples=99, batch_size=2,
                           min_confidence=0.0)
  assert evaluator.num_examples == 4  # at most len(source)
  result = evaluator.run(params)
  px, mpjpe, valid = [], [], []
  for start in (0, 2):  # the evaluator's batches (one shape: one compilation each way)
    items = [source[i] for i in range(start, start + 2)]
    images = np.stack([it["image"] for it in items])
    pred = jax.device_get(cpm.predict(params, tiny.MODEL, images, pose_model,
                                      min_confidence=0.0))
    for n, it in enumerate(items):
      dist = np.linalg.norm(pred.keypoints2d[n] - it["keypoints2d"], axis=-1)
      px.append(dist[it["in_frame"]].mean())
      pose, truth = pred.pose3d[n], it["pose3d"] * 1000.0
      error = np.linalg.norm((pose - pose[0]) - (truth - truth[0]), axis=-1).mean()
      mpjpe.append(error if pred.valid[n] else np.nan)  # no 3D error without a valid pose
      valid.append(bool(pred.valid[n]))
  np.testing.assert_allclose(result.px_error, px, rtol=1e-5)
  np.testing.assert_allclose(result.mpjpe_mm, mpjpe, rtol=1e-4)
  np.testing.assert_array_equal(result.valid, valid)
  assert result.metrics["num_examples"] == 4
  assert result.metrics["px_error"] == pytest.approx(np.mean(px), rel=1e-5)
  assert result.metrics["valid_fraction"] == pytest.approx(np.mean(valid))
  if any(valid):
    assert result.metrics["mpjpe_mm"] == pytest.approx(np.mean(np.array(mpjpe)[valid]),
                                                        rel=1e-4)
  assert result.first_batch["image"].shape == (2, tiny.IMAGE_SIZE, tiny.IMAGE_SIZE, 3)
  assert result.first_prediction.pose3d.shape == (2, tiny.NUM_LANDMARKS, 3)


def test_evaluator_refuses_empty_settings():
  with pytest.raises(ValueError, match="batch_size"):
    CPMEvaluator(tiny.MODEL, tiny.pose_model(), tiny.BlobSource(2), num_examples=2,
                 batch_size=0)
