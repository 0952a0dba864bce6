r"""Fits the 3D pose model on the mocap corpus (held-out clips excluded).

  python -m experiments.main --config=experiments/configs/fit_pose_model.py \
      --workdir=runs/pose_model
  python -m experiments.main --config=experiments/configs/fit_pose_model.py:smoke \
      --workdir=runs/pose_model_smoke --config.pose_model.num_components=2

The default config (experiments/configs/default.py) running only its
pose-model job. Writes <workdir>/pose_model.npz,
<workdir>/pose_model_components.png and <workdir>/pose_model_summary.json.
"""

import ml_collections

from experiments.configs import default


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  config = default.get_config(variant)
  config.job = "pose_model"
  return config
