"""The CPM on real images: prepare the datasets, train on mixed augmented crops, evaluate (issue 13).

Config: experiments/configs/parts/images.py (cpm_mpii.py, cpm_h36m.py). Steps:
1. the pose model: `experiments.jobs.pose_model.load_or_fit(config, workdir)`;
2. each dataset (the primary one and `config.mix`) is prepared once as
   array_record under `config.tfds_dir` (smoke runs without a `data_dir`
   write a fake copy under `<workdir>/fake/` first);
3. `lift3d.train.train` on a `lift3d.data.pipeline.TrainingSource` (crops
   with the centre map, mixed by weight; resumes from the workdir, or starts
   from `config.init_from`'s parameters);
4. the 2D error of the centred crops of the evaluation split (MPII/COCO
   validation, the Human3.6M protocol's test frames), written to
   `<workdir>/cpm_eval.json`, and a figure `<workdir>/cpm_example.png`.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np
from absl import logging

from lift3d import files, inference
from lift3d import train as lift_train
from lift3d.data import augment, pipeline
from lift3d.models import cpm

EVAL_SPLIT = {"mpii": "validation", "coco": "validation", "h36m": "test"}


def build_model(config: ml_collections.ConfigDict) -> cpm.CPM:
  """The fused CPM of `config.model`, with the centre-map input channel."""
  fields = dict(config.model.to_dict())
  fields["trunk_features"] = tuple(int(f) for f in fields["trunk_features"])
  return cpm.CPM(fusion=bool(config.fusion), centre_map=True, **fields)


def augment_options(config: ml_collections.ConfigDict) -> augment.AugmentOptions:
  """`AugmentOptions` of `config.augment` at `config.image_size`."""
  fields = dict(config.augment.to_dict())
  fields["scale"] = tuple(fields["scale"])
  return augment.AugmentOptions(input_size=int(config.image_size), **fields)


def _write_fake(name: str, root: str, config) -> None:
  from lift3d.data import fake_datasets

  if os.path.isdir(root):
    return
  logging.info("cpm_images: writing a fake %s under %s", name, root)
  tmp = root + ".tmp"
  if name == "mpii":
    fake_datasets.write_mpii(tmp, num_images=8)
  elif name == "coco":
    fake_datasets.write_coco(tmp, num_images=4)
  else:
    fake_datasets.write_h36m_extracted(tmp)
  os.rename(tmp, root)


def open_split(name: str, manual_dir: str, tfds_dir: str, split: str, config):
  """Prepares dataset `name` (once) and returns the record source of `split`.

  Args:
    name: "mpii", "coco" or "h36m".
    manual_dir: the user's copy.
    tfds_dir: the TFDS data directory.
    split: "train", or the evaluation split (`EVAL_SPLIT[name]`).
    config: the job config (Human3.6M settings under `config.h36m`).

  Returns:
    A random-access source of person records.
  """
  if name == "mpii":
    from lift3d.data import mpii

    mpii.prepare(tfds_dir, manual_dir, split)
    return mpii.data_source(tfds_dir, split)
  if name == "coco":
    from lift3d.data import coco

    coco.prepare(tfds_dir, manual_dir, split)
    return coco.data_source(tfds_dir, split)
  if name == "h36m":
    from lift3d.data.h36m import images

    kwargs = dict(protocol=str(config.h36m.protocol),
                  train_frame_step=int(config.h36m.train_frame_step))
    images.prepare(tfds_dir, manual_dir, **kwargs)
    return images.data_source(tfds_dir, split=split, **kwargs)
  raise ValueError(f"unknown dataset {name!r}; expected mpii, coco or h36m")


def dataset_dirs(config: ml_collections.ConfigDict, workdir: str) -> tuple[list, str]:
  """([(name, manual dir, weight)], tfds dir): the primary dataset first, then `mix`.

  Datasets of weight 0 are left out; smoke runs give the others without a
  `data_dir` a fake copy under the workdir.
  """
  entries = [(str(config.dataset), str(config.data_dir), float(config.weight))]
  for name, extra in config.mix.items():
    entries.append((name, str(extra.data_dir), float(extra.weight)))
  tfds_dir = str(config.tfds_dir)
  out = []
  for name, manual_dir, weight in entries:
    if weight <= 0:
      continue
    if not manual_dir:
      if not config.smoke:
        if name == config.dataset:
          where = "h36m/images" if name == "h36m" else name
          raise ValueError(f"set --config.data_dir to your copy of {name} (see "
                           f"lift3d/data/{where}.py), or run the ':smoke' variant on a fake")
        logging.info("cpm_images: no data_dir for %s: not mixed in", name)
        continue
      manual_dir = os.path.join(workdir, "fake", name)
      _write_fake(name, manual_dir, config)
      tfds_dir = os.path.join(workdir, "tfds")
    out.append((name, os.path.expanduser(manual_dir), weight))
  return out, tfds_dir


def evaluate(params, model: cpm.CPM, pose_model, source, *, num_examples: int, batch_size: int,
             min_confidence: float = 0.2) -> tuple[dict, tuple]:
  """2D error of the CPM on centred crops (`lift3d.data.pipeline.CentredSource`).

  Args:
    params, model, pose_model: the network and the lifting's pose model.
    source: a `CentredSource`.
    num_examples: crops evaluated (at most len(source)).
    batch_size: crops per forward pass.
    min_confidence: see `lift3d.models.cpm.predict`.

  Returns:
    metrics: "px_error_crop" mean error over labelled joints inside the crop
      (crop pixels), "px_error_image" the same in the dataset's image pixels,
      "valid_fraction", "num_examples";
    first: (batch, prediction) of the first batch, for figures.
  """
  num_examples = min(int(num_examples), len(source))
  crop_err, image_err, valid, first = [], [], [], None
  size = model.stride
  for start in range(0, num_examples, batch_size):
    items = [source[i] for i in range(start, min(start + batch_size, num_examples))]
    batch = {k: np.stack([it[k] for it in items]) for k in items[0]}
    pred = jax.device_get(cpm.predict(params, model, batch["image"], pose_model,
                                      min_confidence=min_confidence))
    first = first or (batch, pred)
    truth = batch["keypoints2d"]
    size = batch["image"].shape[1]
    inside = np.all(np.isfinite(truth) & (truth >= 0) & (truth <= size - 1), axis=-1)
    err = np.linalg.norm(pred.keypoints2d - np.nan_to_num(truth), axis=-1)
    zoom = np.sqrt(np.abs(np.linalg.det(batch["matrix"][:, :, :2].astype(np.float64))))
    crop_err.append(err[inside])
    image_err.append((err / zoom[:, None])[inside])
    valid.append(pred.valid)
  crop_err, image_err = np.concatenate(crop_err), np.concatenate(image_err)
  metrics = {
      "px_error_crop": float(np.mean(crop_err)) if crop_err.size else float("nan"),
      "px_error_image": float(np.mean(image_err)) if image_err.size else float("nan"),
      "valid_fraction": float(np.mean(np.concatenate(valid))),
      "num_examples": num_examples,
      "input_size": int(size),
  }
  return metrics, first


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Prepares, trains (resuming), evaluates; returns the evaluation metrics."""
  from experiments import settings
  from experiments.jobs import cpm as cpm_job
  from experiments.jobs import pose_model as pose_model_job

  train_cfg = settings.train_kwargs(config.train)
  lift_train.initialize_distributed(bool(config.train.distributed))
  os.makedirs(workdir, exist_ok=True)
  # The mocap pose model of the fused CPM's lifting (the corpus is read only
  # when the model must be fitted).
  model_path = os.path.join(workdir, pose_model_job.MODEL_FILE)
  poses = None if os.path.exists(model_path) else settings.split_corpus(config.data)[0]
  pose_model = pose_model_job.load_or_fit(poses, workdir,
                                          **settings.pose_model_args(config.pose_model))
  model = build_model(config)
  options = augment_options(config)
  if jax.process_index() == 0:
    # What `lift3d.load_network` / `lift3d predict` need to frame pictures as
    # the training crops are framed (and to draw their centre map).
    inference.save_network_config(workdir, inference.network_config(
        model, input_size=options.input_size, person_size=options.person_fraction,
        min_confidence=float(config.eval.min_confidence),
        centre_sigma=options.centre_sigma))
  entries, tfds_dir = dataset_dirs(config, workdir)
  train_sources = [open_split(name, d, tfds_dir, "train", config) for name, d, _ in entries]
  source = pipeline.TrainingSource(
      train_sources, [w for *_, w in entries], seed=int(config.seed), options=options,
      drop_estimated=bool(config.drop_estimated))
  logging.info("cpm_images: %s (stride %d), training on %r", model, model.stride, source)
  initial = None
  if config.init_from:
    initial = lift_train.restore_params(os.path.expanduser(str(config.init_from)))
  state = lift_train.train(
      model, pose_model, source, workdir, seed=int(config.seed), initial_params=initial,
      worker_count=int(config.train.worker_count), **train_cfg)
  name, manual_dir, _ = entries[0]
  records = open_split(name, manual_dir, tfds_dir, EVAL_SPLIT[name], config)
  eval_source = pipeline.CentredSource(records, input_size=options.input_size,
                                       person_fraction=options.person_fraction,
                                       drop_estimated=bool(config.drop_estimated))
  metrics, (batch, pred) = evaluate(
      jax.device_get(state.params), model, pose_model, eval_source,
      num_examples=int(config.eval.num_examples), batch_size=int(config.eval.batch_size),
      min_confidence=float(config.eval.min_confidence))
  metrics.update(step=int(state.step), dataset=name, split=EVAL_SPLIT[name])
  logging.info("cpm_images: evaluation %s", metrics)
  if jax.process_index() == 0:
    files.write_json(os.path.join(workdir, "cpm_eval.json"), metrics)
    cpm_job.draw_example(os.path.join(workdir, "cpm_example.png"), batch["image"][0, ..., :3],
                         pred, 0)
  return metrics
