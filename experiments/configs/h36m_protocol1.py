r"""Human3.6M Protocol #1 (docs/method.md §7) with the paper's method.

  python -m experiments.main --config=experiments/configs/h36m_protocol1.py \
      --config.data_dir=/path/to/h36m --workdir=runs/h36m_p1
  python -m experiments.main --config=experiments/configs/h36m_protocol1.py:smoke \
      --config.data_dir=/path/to/h36m --workdir=runs/h36m_p1_smoke

`data_dir` is your Human3.6M copy (the TFDS manual directory: the preprocessed
npz files or the original S*/MyPoseFeatures folders; see lift3d/data/h36m).
The run converts it to array_record once (config.h36m.tfds_dir), fits the pose
model on S1, S5, S6, S7, S8 (cached in the workdir), lifts the test 2D and
writes h36m_protocol1_actions.{md,csv} (15 actions + average, mm, the
paper's figure beside ours), per-subject tables, h36m_protocol1.json and a
plot of the worst frames. Per-action results are cached: rerunning resumes.

From images (issue 13): `--config.from_images=True --config.images.cpm_workdir=
runs/cpm_h36m` with `data_dir` holding the frames (original videos or the
extracted layout) runs the trained fused CPM on the protocol's test frames and
writes h36m_protocol1_images_{actions,2d}.{md,csv} (3D error in mm and 2D
error in pixels, the paper's figures beside ours); see
experiments/jobs/h36m_images.py.
"""

import ml_collections

from experiments.configs.parts import h36m, images, pose_model


def get_config(variant: str = "", protocol: str = "protocol1") -> ml_collections.ConfigDict:
  if variant not in ("", "smoke"):
    raise ValueError(f"unknown variant {variant!r}; expected '' or 'smoke'")
  smoke = variant == "smoke"
  config = ml_collections.ConfigDict()
  config.job = "h36m"
  config.seed = 0
  config.smoke = smoke
  # The user's Human3.6M copy (required).
  config.data_dir = ""
  config.h36m = h36m.get(smoke, protocol=protocol)
  # The pose model, fitted on the training subjects' 3D poses and cached in
  # <workdir>/pose_model.npz: the default experiment's settings.
  config.pose_model = pose_model.get(smoke)
  config.pose_model.max_poses = 2000 if smoke else 0
  # The fused CPM on the test frames instead of lifting the 2D labels.
  config.from_images = False
  config.images = images.evaluation(smoke)
  return config
