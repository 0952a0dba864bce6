r"""The default experiment: the whole method on the embedded mocap corpus.

  python -m experiments.main --config=experiments/configs/default.py --workdir=runs/default
  python -m experiments.main --config=experiments/configs/default.py:smoke --workdir=runs/smoke

1. fits the mixture-of-PPCA pose model on the corpus (held-out clips excluded),
2. lifts noisy, occluded 2D projections of the held-out clips and reports
   MPJPE / PA-MPJPE against a single-PPCA baseline,
3. lifts the held-out clips as videos, frame by frame and with
   `lift3d.lift_sequence`, and reports MPJPE / PA-MPJPE / acceleration error,
4. trains the small fused CPM on synthetic renders for a few minutes and
   evaluates it on held-out renders.
Each step writes its outputs and figures under the workdir.
"""

import ml_collections

from experiments.configs.parts import cpm, data, lift, pose_model


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "smoke"):
    raise ValueError(f"unknown variant {variant!r}; expected '' or 'smoke'")
  smoke = variant == "smoke"
  config = ml_collections.ConfigDict()
  config.job = "demo"
  config.seed = 0
  config.smoke = smoke
  config.data = data.get(smoke)
  config.pose_model = pose_model.get(smoke)
  config.lift = lift.get(smoke)
  config.cpm = cpm.get(smoke)
  # Steps of the demo job to run, in order (experiments/jobs/demo.py: pose_model.py,
  # lifting.py's `evaluate` and `evaluate_video`, cpm.py).
  config.steps = ("pose_model", "lifting", "video", "cpm")
  return config
