r"""The fused CPM fine-tuned on Human3.6M frames, mixed with MPII (issue 13).

  python -m experiments.main --config=experiments/configs/cpm_h36m.py \
      --config.data_dir=/data/h36m --config.mix.mpii.data_dir=/data/mpii \
      --config.init_from=runs/cpm_mpii --workdir=runs/cpm_h36m
  python -m experiments.main --config=experiments/configs/cpm_h36m.py:smoke \
      --workdir=runs/cpm_h36m_smoke

`data_dir` is the Human3.6M copy with images (the original release's
S*/Videos/*.mp4 with the CDF poses, or the extracted layout images/ +
annotation_body3d/; see lift3d.data.h36m.images); person-centred crops of
every `h36m.train_frame_step`-th training frame are stored once under
`config.tfds_dir`. Training starts from the MPII run in `init_from` and mixes
Human3.6M and MPII crops by `weight` and `mix.mpii.weight` (the paper trains on
both). Evaluates the 2D error on the protocol's test frames. The smoke
variant writes fake copies of both on the fly.
"""

import ml_collections

from experiments.configs.parts import images


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "smoke"):
    raise ValueError(f"unknown variant {variant!r}; expected '' or 'smoke'")
  config = images.get("h36m", smoke=variant == "smoke")
  config.mix.mpii.weight = 1.0
  config.train.learning_rate = config.train.learning_rate if config.smoke else 5e-5
  return config
