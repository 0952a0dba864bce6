r"""Fits the 3D pose model on the embedded mocap corpus (held-out clips excluded).

  python -m experiments.main --config=experiments/configs/fit_pose_model.py \
      --workdir=runs/pose_model
  python -m experiments.main --config=experiments/configs/fit_pose_model.py:smoke \
      --workdir=runs/pose_model_smoke --config.pose_model.num_components=2

Writes <workdir>/pose_model.npz, <workdir>/pose_model_components.png and
<workdir>/pose_model_summary.json.
"""

import ml_collections

from experiments.configs.parts import data, pose_model


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "smoke"):
    raise ValueError(f"unknown variant {variant!r}; expected '' or 'smoke'")
  smoke = variant == "smoke"
  config = ml_collections.ConfigDict()
  config.job = "pose_model"
  config.seed = 0
  config.smoke = smoke
  config.data = data.get(smoke)
  config.pose_model = pose_model.get(smoke)
  return config
