r"""The paper's fused CPM trained on MPII Human Pose (2D), with the centre map (issue 13).

  python -m experiments.main --config=experiments/configs/cpm_mpii.py \
      --config.data_dir=/data/mpii --workdir=runs/cpm_mpii
  python -m experiments.main --config=experiments/configs/cpm_mpii.py:smoke \
      --workdir=runs/cpm_mpii_smoke

`data_dir` holds mpii_human_pose_v1_u12_1.mat and images/ (lift3d.data.mpii);
it is converted to array_record under `config.tfds_dir` once. 6 stages,
stride 8, 368×368 crops (scale 0.7–1.3, ±40°, flips, colour jitter), the pose
model fitted on the embedded mocap corpus. Writes checkpoints,
metrics.jsonl and cpm_eval.json (2D error on the validation split) in the
workdir. The smoke variant trains a tiny CPM for 20 steps on a fake MPII
written on the fly.
"""

import ml_collections

from experiments.configs.parts import images


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "smoke"):
    raise ValueError(f"unknown variant {variant!r}; expected '' or 'smoke'")
  return images.get("mpii", smoke=variant == "smoke")
