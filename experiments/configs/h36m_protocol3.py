r"""Human3.6M Protocol #3 (docs/method.md §7) with the paper's method.

  python -m experiments.main --config=experiments/configs/h36m_protocol3.py \
      --config.data_dir=/path/to/h36m --workdir=runs/h36m_p3
  python -m experiments.main --config=experiments/configs/h36m_protocol3.py:smoke \
      --config.data_dir=/path/to/h36m --workdir=runs/h36m_p3_smoke

`data_dir` is your Human3.6M copy (the TFDS manual directory: the preprocessed
npz files or the original S*/MyPoseFeatures folders; see lift3d/data/h36m).
The run converts it to array_record once (config.h36m.tfds_dir), fits the pose
model on S1, S5, S6, S7, S8 (cached in the workdir), lifts the test 2D and
writes h36m_protocol3_actions.{md,csv} (15 actions + average, mm, the
paper's figure beside ours), per-subject tables, h36m_protocol3.json and a
plot of the worst frames. Per-action results are cached: rerunning resumes. Built on
h36m_protocol1.py, with only the protocol changed.
"""

import ml_collections

from experiments.configs import h36m_protocol1


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  return h36m_protocol1.get_config(variant, protocol="protocol3")
