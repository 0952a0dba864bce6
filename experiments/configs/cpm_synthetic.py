r"""Trains the CPM with projected belief maps and fusion on synthetic renders.

  python -m experiments.main --config=experiments/configs/cpm_synthetic.py \
      --config.cpm.train.num_steps=2000 --workdir=runs/cpm
  python -m experiments.main --config=experiments/configs/cpm_synthetic.py:smoke \
      --workdir=runs/cpm_smoke
  # the paper's baseline, the plain multi-stage CPM:
  python -m experiments.main --config=experiments/configs/cpm_synthetic.py \
      --config.cpm.fusion=False --workdir=runs/cpm_plain

The default config (experiments/configs/default.py) running only its CPM job:
renders people from the mocap corpus minus the held-out clips, trains
(resuming from the workdir's checkpoints), evaluates 2D pixel error and 3D
MPJPE on renders of the held-out clips and draws `cpm_example.png`.
"""

import ml_collections

from experiments.configs import default


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  config = default.get_config(variant)
  config.job = "cpm"
  return config
