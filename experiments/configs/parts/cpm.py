"""Config of the CPM with projected belief maps and fusion (issue 7, docs/method.md §5–§6).

The default is the small CPU configuration (64×64 input, stride 4, 16×16
maps, 3 stages, narrow layers) that the demo trains for a few minutes;
`paper_model()` is the paper's size (368×368, stride 8, 46×46 maps, 6 stages).
"""

import ml_collections


def paper_model() -> ml_collections.ConfigDict:
  """The paper's network size: 368×368 input, maps at stride 8, 6 stages."""
  return ml_collections.ConfigDict(dict(
      num_stages=6,
      trunk_features=(64, 128, 256, 512),
      trunk_convs=2,
      feature_channels=128,
      stage_features=128,
      stage1_kernel=3,
      stage_kernel=7,
      stage_convs=5,
      sigma=1.0,
      subpixel="argmax",
      num_yaws=100,
      differentiable_lift=False,
      fusion_init_logit=0.0,
  ))


def get(smoke: bool = False) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # lift3d.models.cpm.CPM fields (except num_landmarks and fusion).
  config.model = ml_collections.ConfigDict(dict(
      num_stages=2 if smoke else 3,
      trunk_features=(8, 16, 16) if smoke else (16, 32, 64),
      trunk_convs=1,
      feature_channels=16 if smoke else 32,
      stage_features=16 if smoke else 32,
      stage1_kernel=3,
      stage_kernel=3 if smoke else 5,
      stage_convs=2,
      sigma=1.0,  # map cells (4 px at stride 4)
      subpixel="argmax",  # or "quadratic"
      num_yaws=16 if smoke else 32,
      differentiable_lift=False,
      fusion_init_logit=0.0,
  ))
  # False: the plain multi-stage CPM (the paper's baseline).
  config.fusion = True
  # Input size, pixels (a multiple of the stride 2**(len(trunk_features)-1)).
  config.image_size = 32 if smoke else 64
  # Synthetic renders (lift3d.data.synthetic.SyntheticPoseSource) of the
  # training clips; RenderOptions overrides go in `render`, and `preset`
  # names a set of them (synthetic.PRESETS: "capsule", the original people;
  # "rich": body shapes, clothing, lighting, self-occlusion labels).
  config.synthetic = ml_collections.ConfigDict(dict(
      seed=0,
      length=100_000,
      render=ml_collections.ConfigDict(dict(preset="capsule", no_person_prob=0.05)),
  ))
  config.train = ml_collections.ConfigDict(dict(
      num_steps=6 if smoke else 3000,
      batch_size=4 if smoke else 16,
      optimizer="adam",
      learning_rate=2e-3,
      schedule="warmup_cosine",  # "constant", "cosine", "warmup_cosine"
      warmup_steps=2 if smoke else 100,
      weight_decay=0.0,
      grad_clip=10.0,
      mask_invisible=False,
      # "bfloat16": the CNN computes in bfloat16 (float32 parameters,
      # optimiser state, lifting and loss).
      dtype="float32",
      log_every=2 if smoke else 25,
      ckpt_every=3 if smoke else 250,
      max_to_keep=2,
      num_threads=2,
      prefetch=4,
      # Stop (with a checkpoint) after this many seconds; 0: no limit. The
      # next run resumes.
      time_limit_s=0.0 if smoke else 300.0,
      # Multi-host: jax.distributed.initialize() and one data shard per host.
      distributed=False,
  ))
  # Held-out renders (poses of config.data.holdout_clips) for evaluation.
  config.eval = ml_collections.ConfigDict(dict(
      seed=12345,
      num_examples=8 if smoke else 256,
      batch_size=8 if smoke else 32,
      min_confidence=0.2,
  ))
  return config
