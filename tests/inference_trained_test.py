"""`lift3d.predict` with the small CPM the default job trains (slow: a few minutes of training).

The fast tests (tests/inference_test.py, tests/cli_predict_test.py) check every
path of inference with an untrained tiny network against exact references;
this one checks that a trained network's predictions are right.
"""

import json
import os

import numpy as np
import pytest

import lift3d
from experiments import settings
from experiments.configs import cpm_synthetic
from experiments.jobs import cpm as cpm_job
from lift3d import eval as lift_eval
from lift3d import inference
from lift3d.data import synthetic

NUM_STEPS = 1500
NUM_EXAMPLES = 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("cpm"))
  config = cpm_synthetic.get_config()
  with config.unlocked():
    config.cpm.train.num_steps = NUM_STEPS
    config.cpm.train.time_limit_s = 0.0
    config.cpm.eval.num_examples = NUM_EXAMPLES
  metrics = cpm_job.run(config, workdir)
  _, heldout = settings.split_corpus(config.data)
  eval_source = synthetic.SyntheticPoseSource(heldout,
                                              **settings.heldout_render_kwargs(config.cpm))
  return workdir, metrics, eval_source


def _labels(source, count):
  items = [source[i] for i in range(count)]
  keypoints = np.stack([it["keypoints2d"] for it in items])
  mask = np.stack([it["in_frame"] for it in items])
  return items, keypoints, mask


@pytest.mark.slow
def test_predict_on_held_out_renders_agrees_with_the_training_evaluation(trained):
  workdir, metrics, source = trained
  with open(os.path.join(workdir, "cpm_eval.json")) as f:
    assert json.load(f)["px_error"] == pytest.approx(metrics["px_error"])
  assert os.path.getsize(os.path.join(workdir, "predict_example.png")) > 0
  network = lift3d.load_network(workdir)
  items, truth, mask = _labels(source, NUM_EXAMPLES)
  pictures = [it["image"] for it in items]
  # The training code's evaluation: the whole picture, one scale, arg-max.
  people = lift3d.predict(network, None, pictures, scales=(1.0,), subpixel="argmax")
  keypoints = np.stack([p[0].keypoints for p in people])
  error = np.nanmean(lift_eval.pixel_error(keypoints, truth, mask))
  assert error == pytest.approx(metrics["px_error"], abs=1e-3)
  # The default inference (boxes from the labels, three scales, sub-pixel):
  # within a few pixels of the truth on 64-pixel pictures, and no worse.
  boxes = [inference.box_from_keypoints(t)[None] for t in truth]
  people = lift3d.predict(network, None, pictures, boxes)
  keypoints = np.stack([p[0].keypoints for p in people])
  default_error = np.nanmean(lift_eval.pixel_error(keypoints, truth, mask))
  assert default_error < 7.0 and default_error < error + 0.5, (default_error, error)
  assert np.mean([p[0].valid for p in people]) > 0.9


@pytest.mark.slow
def test_two_renders_side_by_side_at_twice_the_size_give_two_people(trained):
  workdir, _, source = trained
  network = lift3d.load_network(workdir)
  items, truth, mask = _labels(source, 2)
  canvas = np.full((160, 300, 3), 120, np.uint8)
  offsets = np.array([[10, 20], [160, 5]])  # (x, y) of each render's top-left pixel
  for item, (x, y) in zip(items, offsets, strict=True):
    canvas[y : y + 128, x : x + 128] = np.kron(item["image"], np.ones((2, 2, 1), np.uint8))
  # Pixel centre p of a render lands at 2p + 0.5 in the canvas.
  placed = 2 * truth + 0.5 + offsets[:, None]
  boxes = [inference.box_from_keypoints(p) for p in placed]
  people = lift3d.predict(network, None, [canvas], [np.stack(boxes)])[0]
  assert len(people) == 2
  # Each render alone, at its own size, boxed from its labels.
  alone = [p[0] for p in lift3d.predict(network, None, [it["image"] for it in items],
                                         [inference.box_from_keypoints(t)[None] for t in truth])]
  for person, single, offset, seen in zip(people, alone, offsets, mask, strict=True):
    assert person.valid, person.reason
    # The landmarks found on the canvas, mapped back to the render's pixels, are
    # those of the render alone to within a belief-map cell (the crops are
    # resampled from a different picture); the accuracy against the labels is
    # the first test's.
    back = (person.keypoints - 0.5 - offset) / 2
    error = lift_eval.pixel_error(back, single.keypoints, seen)
    assert error < network.model.stride, error

  blank = np.full((120, 90, 3), 128, np.uint8)
  person = lift3d.predict(network, None, [blank])[0][0]
  assert not person.valid and person.reason.startswith("no person"), person.reason
