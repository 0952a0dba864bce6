"""Config sections -> plain arguments: the one place that reads config field names.

Every config has the same sections with the same shape (experiments/configs/
parts/): `data` (the mocap corpus and its held-out clips), `pose_model`,
`lift`, `cpm`, and `h36m` for the Human3.6M protocols. The jobs read a
section only through the functions here, which map it to the keyword
arguments of a library function (or of a job's plain-argument function);
below the top-level `run(config, workdir)` of a job, only plain values move.
"""

from __future__ import annotations

import ml_collections
import numpy as np
from absl import logging

from lift3d.models import cpm

# The pose-model section's fields that are `lift3d.pose_model.fit` keywords.
_FIT_FIELDS = ("num_components", "num_basis", "mirror", "align_iterations", "align_yaw_steps",
               "align_tolerance", "align_subsample", "em_iterations", "em_tolerance",
               "init_subsample", "min_centre_distance", "noise_floor", "chunk_size")
# The CPM train section's fields that are `lift3d.train.train` keywords.
_TRAIN_FIELDS = ("num_steps", "batch_size", "optimizer", "learning_rate", "schedule",
                 "warmup_steps", "weight_decay", "grad_clip", "mask_invisible", "log_every",
                 "ckpt_every", "max_to_keep", "num_threads", "prefetch", "dtype")


def corpus_parts(data: ml_collections.ConfigDict):
  """The three parts of the corpus of a `data` section, as `lift3d.data.mocap.MocapCorpus`.

  Args:
    data: the `data` section (see `split_corpus`).

  Returns:
    (train, validation, heldout) corpora, whole clips each (train not
    subsampled by `frame_stride`); poses (N, 17, 3) metres, y up.
  """
  from lift3d.data import mocap

  if data.corpus != "embedded":
    raise ValueError(f"config.data.corpus must be 'embedded', got {data.corpus!r}")
  corpus = mocap.load_embedded()
  rest, heldout = corpus.split(tuple(data.holdout_clips), tuple(data.holdout_prefixes))
  train, validation = rest.split(tuple(data.validation_clips), tuple(data.validation_prefixes))
  return train, validation, heldout


def split_corpus(data: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  """The mocap corpus of a `data` section, split once: (training, held-out) poses.

  Args:
    data: the `data` section: `corpus` (only "embedded", the CMU, HDM05 and
      DeepMimic clips of `lift3d.data.mocap.load_embedded`, for now),
      `holdout_clips` and `holdout_prefixes` (whole clips kept out of every fit:
      the test set), `validation_clips` and `validation_prefixes` (kept out of
      the fit too, for `validation_poses`) and `frame_stride` (every n-th
      training frame).

  Returns:
    train: (N, 17, 3) float32 metres, y up: the fit's (and the renderer's)
      training poses.
    heldout: (M, 17, 3) float32 metres, y up: every frame of the held-out clips.
  """
  train, validation, heldout = corpus_parts(data)
  stride = int(data.frame_stride)
  if stride > 1:
    train = train.subsample(stride)
  logging.info("corpus %s: %d training poses from %d clips, %d validation poses, %d held-out "
               "poses (%d clips)", data.corpus, len(train.poses),
               len(set(np.asarray(train.clip_ids).tolist())), len(validation.poses),
               len(heldout.poses), heldout.num_clips)
  return np.asarray(train.poses, np.float32), np.asarray(heldout.poses, np.float32)


def validation_poses(data: ml_collections.ConfigDict) -> np.ndarray:
  """(V, 17, 3) float32 metres, y up: every frame of the validation clips of a `data` section."""
  _, validation, _ = corpus_parts(data)
  return np.asarray(validation.poses, np.float32)


def heldout_clip_names(data: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The names of the held-out clips (named and by prefix) of a `data` section."""
  _, _, heldout = corpus_parts(data)
  return heldout.clip_names


def fit_kwargs(section: ml_collections.ConfigDict) -> dict:
  """`lift3d.pose_model.fit` keywords (all but `key`) of a `pose_model` section."""
  return {name: section[name] for name in _FIT_FIELDS}


def pose_model_args(section: ml_collections.ConfigDict, calibration: dict | None = None) -> dict:
  """Keywords of `experiments.jobs.pose_model.fit_and_save` / `load_or_fit`.

  Args:
    section: the `pose_model` section.
    calibration: `calibration_args(config)`, or None to fit without choosing the
      lifting's prior.
  """
  return dict(fit_kwargs=fit_kwargs(section), seed=int(section.seed),
              max_poses=int(section.max_poses), plot_modes=int(section.plot_modes),
              calibration=calibration)


def calibration_args(config: ml_collections.ConfigDict) -> dict | None:
  """`experiments.jobs.pose_model.calibrate` keywords (all but model, workdir) of a config:
  the validation poses, their views (`lift.eval` cameras) and frames per condition; None
  when `pose_model.calibrate` is off."""
  if not bool(config.pose_model.calibrate):
    return None
  return dict(validation_poses=validation_poses(config.data),
              views_kwargs=views_kwargs(config.lift.eval),
              frames=int(config.pose_model.calibration_frames),
              num_yaws=int(config.lift.num_yaws))


def lift_kwargs(section: ml_collections.ConfigDict) -> dict:
  """`lift3d.lift` keywords of a `lift` section."""
  return dict(num_yaws=int(section.num_yaws), refine=bool(section.refine),
              min_visible=int(section.min_visible),
              obs_noise=None if section.obs_noise is None else float(section.obs_noise),
              reconstruction=str(section.reconstruction),
              blend_weight=float(section.blend_weight))


def views_kwargs(section: ml_collections.ConfigDict) -> dict:
  """`experiments.jobs.lifting.make_views` keywords of a `lift.eval` section."""
  return dict(seed=int(section.seed), num_frames=int(section.num_frames),
              num_cameras=int(section.num_cameras),
              distance_m=tuple(float(v) for v in section.distance_m),
              height_m=tuple(float(v) for v in section.height_m),
              focal_px=float(section.focal_px),
              image_size=tuple(int(v) for v in section.image_size),
              noise_px=float(section.noise_px), occlusion_prob=float(section.occlusion_prob))


def lifting_args(config: ml_collections.ConfigDict) -> dict:
  """`experiments.jobs.lifting.evaluate` keywords (all but poses and workdir) of a config."""
  return dict(pose_model_args=pose_model_args(config.pose_model, calibration_args(config)),
              lift_kwargs=lift_kwargs(config.lift),
              views_kwargs=views_kwargs(config.lift.eval),
              known_camera=bool(config.lift.eval.known_camera),
              num_examples=int(config.lift.eval.num_examples),
              heldout_clips=tuple(config.data.holdout_clips)
              + tuple(f"{p}*" for p in config.data.holdout_prefixes))


def video_args(config: ml_collections.ConfigDict) -> dict:
  """`experiments.jobs.lifting.evaluate_video` keywords (all but poses, clips and workdir)."""
  video = config.lift.video
  return dict(pose_model_args=pose_model_args(config.pose_model, calibration_args(config)),
              lift_kwargs=lift_kwargs(config.lift), videos_per_clip=int(video.videos_per_clip),
              num_frames=int(video.num_frames), max_clips=int(video.max_clips),
              seed=int(video.seed), noise_px=float(video.noise_px))


def cpm_model(section: ml_collections.ConfigDict) -> cpm.CPM:
  """The `lift3d.models.cpm.CPM` of a `cpm` section (its `model` fields and `fusion`)."""
  fields = dict(section.model.to_dict())
  fields["trunk_features"] = tuple(int(f) for f in fields["trunk_features"])
  return cpm.CPM(fusion=bool(section.fusion), **fields)


def train_kwargs(section: ml_collections.ConfigDict) -> dict:
  """`lift3d.train.train` keywords (all but `seed`) of a `cpm.train` section."""
  kwargs = {name: section[name] for name in _TRAIN_FIELDS}
  kwargs["time_limit_s"] = float(section.time_limit_s) or None  # 0: no limit
  return kwargs


def render_kwargs(section: ml_collections.ConfigDict) -> dict:
  """`lift3d.data.synthetic.SyntheticPoseSource` keywords of a `cpm` section's training
  renders (`image_size`, `synthetic`), all but the poses."""
  return dict(image_size=int(section.image_size), seed=int(section.synthetic.seed),
              length=int(section.synthetic.length), **section.synthetic.render.to_dict())


def heldout_render_kwargs(section: ml_collections.ConfigDict) -> dict:
  """The same for the held-out evaluation renders (`eval`): always a person."""
  render = {k: v for k, v in section.synthetic.render.to_dict().items()
            if k != "no_person_prob"}
  return dict(image_size=int(section.image_size), seed=int(section.eval.seed),
              length=int(section.eval.num_examples), no_person_prob=0.0, **render)


def cpm_eval_kwargs(section: ml_collections.ConfigDict) -> dict:
  """`lift3d.eval.cpm_evaluator.CPMEvaluator` keywords (all but model, pose model, source) of a
  `cpm.eval` section."""
  return dict(num_examples=int(section.num_examples), batch_size=int(section.batch_size),
              min_confidence=float(section.min_confidence))


def cpm_args(config: ml_collections.ConfigDict) -> dict:
  """`experiments.jobs.cpm.train_and_evaluate` keywords (all but poses, workdir) of a config."""
  section = config.cpm
  return dict(model=cpm_model(section),
              pose_model_args=pose_model_args(config.pose_model, calibration_args(config)),
              render_kwargs=render_kwargs(section),
              heldout_render_kwargs=heldout_render_kwargs(section),
              train_kwargs=train_kwargs(section.train), eval_kwargs=cpm_eval_kwargs(section.eval),
              seed=int(config.seed), distributed=bool(section.train.distributed))


def h36m_args(config: ml_collections.ConfigDict) -> dict:
  """`experiments.jobs.h36m.evaluate_protocol` keywords (all but data_dir, workdir)."""
  section = config.h36m
  return dict(protocol=str(section.protocol), tfds_dir=str(section.tfds_dir),
              train_frame_step=int(section.train_frame_step), input_2d=str(section.input),
              use_camera_rotation=bool(section.use_camera_rotation),
              num_yaws=int(section.num_yaws), refine=bool(section.refine),
              batch_size=int(section.batch_size),
              max_frames_per_action=int(section.max_frames_per_action),
              num_worst=int(section.num_worst),
              pose_model_args=pose_model_args(config.pose_model))
