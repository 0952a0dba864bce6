"""Tiny CPMs, hand-made pose models and data sources for the CPM tests.

Shared by tests/models/cpm_test.py and tests/train_test.py so that they
compile the same programs once (the test budget is dominated by compiling).
"""

import jax.numpy as jnp
import numpy as np

from lift3d.models import cpm
from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import H36M17

NUM_LANDMARKS = 17
IMAGE_SIZE = 16  # pixels; stride 2 -> 8×8 maps

# Stride 2 (two trunk blocks), two stages, a few channels.
MODEL = cpm.CPM(
    num_stages=2, trunk_features=(4, 8), trunk_convs=1, feature_channels=8, stage_features=8,
    stage1_kernel=3, stage_kernel=3, stage_convs=1, num_yaws=8,
)

# A stick figure, metres, y up (Hip, RHip, RKnee, RFoot, LHip, LKnee, LFoot,
# Spine, Thorax, Neck/Nose, Head, LShoulder, LElbow, LWrist, RShoulder,
# RElbow, RWrist).
STICK = np.array([
    [0.0, 0.9, 0.0], [-0.12, 0.9, 0.0], [-0.13, 0.5, 0.05], [-0.14, 0.1, 0.0],
    [0.12, 0.9, 0.0], [0.13, 0.5, 0.05], [0.14, 0.1, 0.0], [0.0, 1.15, 0.0],
    [0.0, 1.4, 0.0], [0.0, 1.5, -0.06], [0.0, 1.65, 0.0], [0.19, 1.4, 0.0],
    [0.3, 1.15, 0.05], [0.35, 0.9, 0.0], [-0.19, 1.4, 0.0], [-0.3, 1.15, 0.05],
    [-0.35, 0.9, 0.0],
])


def pose_model(num_basis: int = 2, seed: int = 0) -> PoseModel:
  """A one-component PoseModel: the centred stick figure and a random orthonormal basis."""
  rng = np.random.default_rng(seed)
  mean = STICK - STICK.mean(0)
  # Normalised units, as a fitted model's: limb-length norm 1.
  limbs = np.asarray(H36M17.limbs)
  mean = mean / np.sqrt(np.sum((mean[limbs[:, 0]] - mean[limbs[:, 1]]) ** 2))
  basis = np.linalg.qr(rng.normal(size=(3 * NUM_LANDMARKS, num_basis)))[0].T
  f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
  return PoseModel(
      mean=f32(mean[None]), basis=f32(basis.reshape(1, num_basis, NUM_LANDMARKS, 3)),
      variances=f32(np.full((1, num_basis), 0.01)), noise=f32([1e-3]), weights=f32([1.0]),
      limb_scale=f32(1.0),
  )


class BlobSource:
  """A random-access source of images with one bright square per landmark.

  Item `i` is a pure function of `i`: landmarks uniform in the image, each
  marked by a 3×3 square of a landmark-specific colour on a dark background.
  """

  def __init__(self, length: int, size: int = IMAGE_SIZE):
    self.length, self.size = length, size
    self.colours = np.random.default_rng(99).integers(60, 256, (NUM_LANDMARKS, 3))

  def __len__(self):
    return self.length

  def __getitem__(self, index):
    rng = np.random.default_rng(index)
    keypoints = rng.uniform(1, self.size - 2, (NUM_LANDMARKS, 2)).astype(np.float32)
    image = np.zeros((self.size, self.size, 3), np.uint8)
    for colour, (x, y) in zip(self.colours, np.rint(keypoints).astype(int), strict=True):
      image[y - 1 : y + 2, x - 1 : x + 2] = colour
    return {
        "image": image,
        "keypoints2d": keypoints,
        "visibility": np.ones(NUM_LANDMARKS, np.float32),
        "pose3d": np.zeros((NUM_LANDMARKS, 3), np.float32),
    }
