"""Tests of lift3d.data.pipeline: layouts, mixing, determinism, worker processes."""

import os
import tempfile

import numpy as np
import pytest

from lift3d.data import augment, coco, fake_datasets, mpii, pipeline
from lift3d.skeleton import COCO17_NAMES, H36M17, MPII16_NAMES

SIZE = 64


@pytest.fixture(scope="module")
def sources():
  with tempfile.TemporaryDirectory() as root:
    data_dir = os.path.join(root, "tfds")
    fake_datasets.write_mpii(os.path.join(root, "mpii"), num_images=6)
    fake_datasets.write_coco(os.path.join(root, "coco"), num_images=3)
    mpii.prepare(data_dir, os.path.join(root, "mpii"))
    coco.prepare(data_dir, os.path.join(root, "coco"))
    yield mpii.data_source(data_dir, "train"), coco.data_source(data_dir, "train")


def test_layouts_to_h36m17_with_mask():
  mp = np.arange(32, dtype=np.float32).reshape(16, 2)
  mp[MPII16_NAMES.index("l_wrist")] = np.nan
  vis = np.ones(16, np.float32)
  vis[MPII16_NAMES.index("r_knee")] = 0
  kp, v = pipeline.to_h36m17(mp, vis, "mpii16")
  j = H36M17.index
  np.testing.assert_array_equal(kp[j("RFoot")], mp[MPII16_NAMES.index("r_ankle")])
  np.testing.assert_allclose(kp[j("Spine")], (mp[6] + mp[7]) / 2)  # pelvis-thorax middle
  assert np.isnan(kp[j("LWrist")]).all() and v[j("LWrist")] == 0  # missing: no loss
  assert v[j("RKnee")] == 0 and np.isfinite(kp[j("RKnee")]).all()  # hidden but labelled
  assert np.isfinite(kp).all(axis=-1).sum() == 16
  kp, _ = pipeline.to_h36m17(mp, vis, "mpii16", drop_estimated=True)
  assert np.isnan(kp[j("Spine")]).all() and np.isnan(kp[j("Neck/Nose")]).all()
  co = np.full((17, 2), np.nan, np.float32)
  co[COCO17_NAMES.index("left_hip")] = (10, 20)
  co[COCO17_NAMES.index("right_hip")] = (20, 20)
  kp, v = pipeline.to_h36m17(co, np.ones(17), "coco17")
  np.testing.assert_array_equal(kp[j("Hip")], [15, 20])
  assert np.isfinite(kp).all(axis=-1).sum() == 3  # Hip, LHip, RHip


def test_mixing_weights_and_determinism(sources):
  mp, co = sources
  options = augment.AugmentOptions(input_size=SIZE)
  source = pipeline.TrainingSource([mp, co], (3.0, 1.0), seed=5, options=options)
  picks = np.array([source.choose(i)[0] for i in range(2000)])
  # Binomial(2000, 1/4): 500 ± 19.4; 5 standard deviations.
  assert abs(np.sum(picks == 1) - 500) < 5 * 19.4
  records = [source.choose(i)[1] for i in range(2000) if picks[i] == 0]
  assert set(records) == set(range(len(mp)))
  # An item is a function of (seed, index) only: any order, any copy.
  again = pipeline.TrainingSource([mp, co], (3.0, 1.0), seed=5, options=options)
  for i in (7, 3, 7):
    a, b = source[i], again[i]
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  other = pipeline.TrainingSource([mp, co], (3.0, 1.0), seed=6, options=options)
  assert not np.array_equal(other[7]["image"], source[7]["image"])
  item = source[3]
  assert item["image"].shape == (SIZE, SIZE, 4) and item["image"].dtype == np.uint8
  assert item["keypoints2d"].shape == (17, 2) and item["visibility"].shape == (17,)
  # The centre map peaks where the box centre went.
  peak = np.unravel_index(np.argmax(item["image"][..., 3]), (SIZE, SIZE))
  assert np.abs(np.array(peak) - (SIZE - 1) / 2).max() <= 0.05 * SIZE + 1
  with pytest.raises(ValueError, match="weights"):
    pipeline.TrainingSource([mp, co], (1.0,))


def test_centred_crop_labels(sources):
  mp, _ = sources
  crops = pipeline.CentredSource(mp, input_size=SIZE, person_fraction=0.6)
  record, item = mp[0], crops[0]
  kp, _ = pipeline.to_h36m17(record["keypoints"], record["visibility"], "mpii16")
  centre, size = pipeline.person_centre_and_size(record["box"])
  zoom = 0.6 * SIZE / size
  np.testing.assert_allclose(item["keypoints2d"], (kp - centre) * zoom + (SIZE - 1) / 2,
                             rtol=1e-5, atol=1e-4)


def test_targets_and_worker_processes(sources):
  mp, co = sources
  source = pipeline.TrainingSource([mp, co], seed=1, options=augment.AugmentOptions(
      input_size=SIZE), target_stride=8)
  item = source[0]
  np.testing.assert_allclose(
      item["targets"], augment.belief_targets(item["keypoints2d"], 8, 8, stride=8, sigma=1.0))
  keys = ("image", "keypoints2d", "visibility")
  plain = pipeline.batches(source, batch_size=3, seed=2, start=1, keys=keys)
  workers = pipeline.batches(source, batch_size=3, seed=2, start=1, worker_count=2, keys=keys)
  for _ in range(3):
    a, b = next(plain), next(workers)
    for k in keys:
      np.testing.assert_array_equal(a[k], b[k])


def test_centre_map_cpm_trains_on_the_crops(sources, tmp_path):
  """A tiny plain CPM with the centre-map channel learns from mixed MPII/COCO crops."""
  import json

  from lift3d import train
  from lift3d.models import cpm
  from tests.models import tiny

  model = cpm.CPM(num_stages=2, trunk_features=(4, 8), trunk_convs=1, feature_channels=8,
                  stage_features=8, stage1_kernel=3, stage_kernel=3, stage_convs=1, num_yaws=8,
                  fusion=False, centre_map=True)
  source = pipeline.TrainingSource(list(sources), seed=0, options=augment.AugmentOptions(
      input_size=16, centre_sigma=3.0))
  with pytest.raises(ValueError, match=r"expected images \(B, H, W, 4\)"):
    cpm.check_images(np.zeros((1, 16, 16, 3), np.uint8), model)
  train.train(model, tiny.pose_model(), source, str(tmp_path), num_steps=12, batch_size=4,
              learning_rate=1e-2, schedule="constant", log_every=1, progress=False,
              num_threads=1)
  with open(tmp_path / "metrics.jsonl") as f:
    losses = [json.loads(line)["loss"] for line in f]
  assert len(losses) == 12 and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
  # The centre map reaches every stage: its parameters see 8 + 18 + 1 inputs.
  params = train.restore_params(str(tmp_path))
  assert params["stage_1"]["Conv_0"]["kernel"].shape[2] == 8 + 18 + 1
