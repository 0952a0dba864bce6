"""Config of the CPM trained on real images (issue 13; experiments/jobs/cpm_images.py).

One shape for cpm_mpii.py and cpm_h36m.py: the primary dataset (`dataset`,
the user's copy at `data_dir`), other sources mixed in (`mix`), the crop
augmentation (`augment`, `lift3d.data.augment.AugmentOptions` fields), the
network (`model`, `lift3d.models.cpm.CPM` fields), training and evaluation.
"""

import ml_collections

from experiments.configs.parts import cpm, data, pose_model

DATASETS = ("mpii", "coco", "h36m")


def get(dataset: str, smoke: bool = False) -> ml_collections.ConfigDict:
  if dataset not in DATASETS:
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
  config = ml_collections.ConfigDict()
  config.job = "cpm_images"
  config.seed = 0
  config.smoke = smoke
  # The primary dataset and the user's copy of it (the TFDS manual dir;
  # required, except in smoke runs, which write a small fake when it is
  # empty).
  config.dataset = dataset
  config.data_dir = ""
  config.weight = 1.0
  # Human3.6M: the protocol whose test frames are the evaluation split, and
  # every n-th training frame.
  config.h36m = ml_collections.ConfigDict(dict(protocol="protocol1", train_frame_step=10))
  # Other datasets mixed into training: name -> dict(data_dir=..., weight=...);
  # weight 0 leaves one out, and so does an empty data_dir (but smoke runs
  # then write a fake). E.g. --config.mix.coco.data_dir=/data/coco
  # --config.mix.coco.weight=0.5.
  config.mix = ml_collections.ConfigDict({
      name: ml_collections.ConfigDict(dict(data_dir="", weight=0.0))
      for name in DATASETS if name != dataset})
  # Where the array_record files go (prepared once, reused).
  config.tfds_dir = "~/tensorflow_datasets"
  # Start from the parameters of an earlier run's workdir (fine-tuning);
  # "" starts from scratch. Ignored when the workdir has its own checkpoint.
  config.init_from = ""
  # The embedded mocap corpus and the pose model of the fused CPM's lifting.
  config.data = data.get(smoke)
  config.pose_model = pose_model.get(smoke)
  # The network: the paper's fused CPM (6 stages, stride 8, 368 px) with
  # the centre map as a fourth input channel.
  config.model = cpm.paper_model() if not smoke else cpm.get(True).model
  config.fusion = True
  config.image_size = 32 if smoke else 368
  config.augment = ml_collections.ConfigDict(dict(
      person_fraction=0.6, scale=(0.7, 1.3), rotation_deg=40.0, flip_prob=0.5, shift=0.05,
      brightness=0.2, contrast=0.2, saturation=0.2,
      centre_sigma=3.0 if smoke else 21.0,  # pixels (CPM: 21 at 368)
  ))
  # Drop the joints a dataset's layout only approximates (e.g. COCO's head top).
  config.drop_estimated = False
  config.train = cpm.get(smoke).train
  config.train.update(dict(
      num_steps=20 if smoke else 100_000,
      batch_size=4 if smoke else 16,
      learning_rate=2e-3 if smoke else 1e-4,
      warmup_steps=2 if smoke else 1000,
      log_every=1 if smoke else 100,
      ckpt_every=10 if smoke else 2000,
      time_limit_s=0.0,
      worker_count=0 if smoke else 8,  # grain processes making the crops
  ))
  config.eval = ml_collections.ConfigDict(dict(
      num_examples=8 if smoke else 2000,
      batch_size=8 if smoke else 16,
      min_confidence=0.2,
  ))
  return config


def evaluation(smoke: bool = False) -> ml_collections.ConfigDict:
  """`config.images` of h36m_protocol{1,2,3}.py: the trained CPM run on the test frames."""
  config = ml_collections.ConfigDict()
  # Workdir of the trained CPM (experiments/configs/cpm_h36m.py), and its
  # settings (they must match the run's).
  config.cpm_workdir = ""
  config.model = cpm.paper_model() if not smoke else cpm.get(True).model
  config.fusion = True
  config.image_size = 32 if smoke else 368
  config.person_fraction = 0.6
  # The image dataset's training frames (for the pose model) every n-th frame.
  config.train_frame_step = 10
  config.batch_size = 8 if smoke else 16
  # At most this many test frames, evenly spaced (0 = all; smoke runs cap it).
  config.max_frames = 40 if smoke else 0
  return config
