"""Hand-made test poses and planted models (independent of the code under test).

Shape letters: N poses, L = 17 joints (H36M17), J basis vectors, D = 3L.
"""

import numpy as np

# A standing H36M17 pose in metres, y up, facing −z (its left side along +x).
REST_POSE = np.array([
    [0.00, 0.95, 0.00],   # Hip
    [-0.12, 0.93, 0.00],  # RHip
    [-0.13, 0.52, 0.03],  # RKnee
    [-0.14, 0.08, -0.02], # RFoot
    [0.12, 0.93, 0.00],   # LHip
    [0.13, 0.52, 0.03],   # LKnee
    [0.14, 0.08, -0.02],  # LFoot
    [0.00, 1.18, 0.01],   # Spine
    [0.00, 1.43, 0.00],   # Thorax
    [0.00, 1.53, -0.07],  # Neck/Nose
    [0.00, 1.68, -0.01],  # Head
    [0.19, 1.41, 0.01],   # LShoulder
    [0.24, 1.14, 0.05],   # LElbow
    [0.27, 0.88, -0.04],  # LWrist
    [-0.19, 1.41, 0.01],  # RShoulder
    [-0.24, 1.14, 0.05],  # RElbow
    [-0.27, 0.88, -0.04], # RWrist
])

LIMBS = [(0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
         (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16)]


def normalised_rest_pose() -> np.ndarray:
  """REST_POSE centred at its joint mean and scaled to unit sum of squared limbs."""
  pose = REST_POSE - REST_POSE.mean(0)
  return pose / np.sqrt(sum(np.sum((pose[a] - pose[b]) ** 2) for a, b in LIMBS))


def yaw_matrix(theta: float) -> np.ndarray:
  c, s = np.cos(theta), np.sin(theta)
  return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotate(poses: np.ndarray, yaws: np.ndarray) -> np.ndarray:
  """R_θ applied to every joint of every pose: (N, L, 3), (N,) → (N, L, 3)."""
  mats = np.stack([yaw_matrix(t) for t in np.ravel(yaws)])
  return np.einsum("nij,nlj->nli", mats, poses)


def random_orthonormal(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
  """(rows, dim) orthonormal rows from the QR of a Gaussian matrix."""
  q, _ = np.linalg.qr(rng.normal(size=(dim, rows)))
  return q.T


def sample_ppca(rng, mean, basis, variances, noise, num) -> np.ndarray:
  """(num, D) samples of μ + a·e + ε with a ~ N(0, diag λ), ε ~ N(0, σ² I)."""
  coeffs = rng.normal(size=(num, len(variances))) * np.sqrt(variances)
  return mean + coeffs @ basis + rng.normal(size=(num, mean.size)) * np.sqrt(noise)


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Principal angles (radians) between the row spaces of a (J, D) and b (J, D)."""
  qa, _ = np.linalg.qr(a.T)
  qb, _ = np.linalg.qr(b.T)
  return np.arccos(np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1, 1))


def planted_poses(num: int, seed: int = 0):
  """(num, 17, 3) float32 metres: a 3-vector PPCA around REST_POSE at random yaws.

  Returns:
    (poses, yaws (num,)) with poses[n] = R_{yaws[n]} (aligned pose n).
  """
  rng = np.random.default_rng(seed)
  basis = random_orthonormal(rng, 3, 51)
  aligned = sample_ppca(rng, REST_POSE.reshape(-1), basis, np.array([4e-3, 2e-3, 1e-3]), 1e-6,
                        num)
  yaws = rng.uniform(-np.pi, np.pi, num)
  return rotate(aligned.reshape(num, 17, 3), yaws).astype(np.float32), yaws
