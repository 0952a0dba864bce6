r"""Trains the CPM with projected belief maps and fusion on synthetic renders.

  python -m experiments.main --config=experiments/configs/cpm_synthetic.py \
      --config.train.num_steps=2000 --workdir=runs/cpm
  python -m experiments.main --config=experiments/configs/cpm_synthetic.py:smoke \
      --workdir=runs/cpm_smoke
  # the paper's baseline, the plain multi-stage CPM:
  python -m experiments.main --config=experiments/configs/cpm_synthetic.py \
      --config.fusion=False --workdir=runs/cpm_plain

Renders people from the embedded mocap corpus minus the held-out clips, trains
(resuming from the workdir's checkpoints), evaluates 2D pixel error and 3D
MPJPE on renders of the held-out clips and draws `cpm_example.png`. The CPM
settings sit at the top level here (`config.train`, `config.fusion`, ...),
where the default config has them under `config.cpm`.
"""

import ml_collections

from experiments.configs.parts import cpm, data, pose_model


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "smoke"):
    raise ValueError(f"unknown variant {variant!r}; expected '' or 'smoke'")
  smoke = variant == "smoke"
  config = ml_collections.ConfigDict()
  config.job = "cpm"
  config.seed = 0
  config.smoke = smoke
  config.data = data.get(smoke)
  config.pose_model = pose_model.get(smoke)
  for key, value in cpm.get(smoke).items():
    config[key] = value
  return config
