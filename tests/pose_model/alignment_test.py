"""Ground-plane alignment (docs/method.md §2) against brute force and planted yaws."""

import jax.numpy as jnp
import numpy as np
import pytest

from lift3d.pose_model import alignment as align_lib
from lift3d.pose_model import stream
from tests.float32_bounds import ULPS_PER_FUNCTION, as_float32, assert_within, bound
from tests.pose_model import synthetic

# The sizes of the standard fit (tests/pose_model/conftest.py): shared compiles.
NUM, CHUNK = 800, 200


def _circular_offset(recovered, true):
  diff = align_lib.wrap(np.asarray(recovered, np.float64) - true)
  offset = np.angle(np.mean(np.exp(1j * diff)))
  return offset, np.abs(align_lib.wrap(diff - offset))


def test_closed_form_yaw_equals_brute_force_search():
  rng = np.random.default_rng(1)
  grid = np.linspace(-np.pi, np.pi, 10000, endpoint=False)
  for _ in range(5):
    poses = rng.normal(size=(17, 3))
    targets = rng.normal(size=(17, 3))
    best = float(align_lib.optimal_yaw(poses, targets))
    costs = np.sum((poses[None] - synthetic.rotate(np.repeat(targets[None], len(grid), 0), grid))
                   ** 2, axis=(1, 2))
    cost_best = np.sum((poses - synthetic.rotate(targets[None], np.array([best]))[0]) ** 2)
    assert cost_best <= costs.min() + 1e-6
    assert abs(align_lib.wrap(best - grid[np.argmin(costs)])) <= 2 * np.pi / 10000


def test_tomasi_kanade_recovers_yaws_of_a_rigid_pose():
  rng = np.random.default_rng(2)
  mean = synthetic.normalised_rest_pose()
  yaws = rng.uniform(-np.pi, np.pi, NUM)
  poses = synthetic.rotate(np.repeat(mean[None], NUM, 0), yaws).astype(np.float32)
  chunked = stream.chunk(np.asarray(align_lib.to_planes(poses)), CHUNK, stream.make_mesh())
  recovered = stream.unchunk(align_lib.tomasi_kanade_yaws(chunked), NUM)
  _, spread = _circular_offset(recovered, yaws)
  assert spread.max() < 1e-4, spread.max()


def _planted_poses(num, seed):
  """Poses of a known PPCA at known yaws; the basis has no infinitesimal-yaw component."""
  rng = np.random.default_rng(seed)
  mean = synthetic.normalised_rest_pose()
  # d/dθ R_θ μ at θ = 0 is (z, 0, −x) per joint: keep the basis orthogonal to
  # it, or a small yaw and a basis coefficient explain the same motion.
  generator = np.stack([mean[:, 2], 0 * mean[:, 1], -mean[:, 0]], -1).reshape(-1)
  raw = rng.normal(size=(3, 51))
  raw -= np.outer(raw @ generator, generator) / (generator @ generator)
  basis = np.linalg.qr(raw.T)[0].T
  aligned = synthetic.sample_ppca(rng, mean.reshape(-1), basis, np.array([0.01, 0.005, 0.002]),
                                  1e-6, num).reshape(num, 17, 3)
  yaws = rng.uniform(-np.pi, np.pi, num)
  return aligned, yaws, synthetic.rotate(aligned, yaws).astype(np.float32), basis


def test_planted_alignment_is_recovered_up_to_one_global_yaw():
  aligned, yaws, poses, basis = _planted_poses(NUM, seed=3)
  # The alternation converges linearly (yaws and basis are coupled): run it long.
  result = align_lib.align(poses, 3, iterations_per_size=40, yaw_steps=2, tolerance=1e-12,
                           chunk_size=CHUNK)
  offset, spread = _circular_offset(result.yaws, yaws)
  assert np.median(spread) < 3e-3 and spread.max() < 2e-2, (np.median(spread), spread.max())
  # aligned = R_θᵀ X = R_{−offset} (true aligned pose).
  np.testing.assert_allclose(result.aligned, synthetic.rotate(aligned, np.full(NUM, -offset)),
                             atol=0.02)
  # Rotating back (in float64, exact) undoes the float32 rotation up to its rounding.
  reconstructed = synthetic.rotate(np.asarray(result.aligned, np.float64),
                                   np.asarray(result.yaws, np.float64))
  assert_within(reconstructed, poses, bound(np.abs(as_float32(poses)[..., [0, 2]]).sum(
      -1, keepdims=True), 1 + 2 + ULPS_PER_FUNCTION))
  # The cost never increases (up to float32 rounding of the sums).
  history = result.cost_history
  assert np.all(np.diff(history) <= 1e-5 * history[:-1]), np.diff(history).max()
  assert result.basis_sizes[0] == 1 and result.basis_sizes[-1] == 3
  # The planted subspace and variances come back (in the frame turned by −offset).
  planted = synthetic.rotate(basis.reshape(3, 17, 3), np.full(3, -offset)).reshape(3, -1)
  angles = synthetic.principal_angles(np.asarray(result.ppca.basis), planted)
  assert angles.max() < 0.05, angles
  np.testing.assert_allclose(np.sort(np.asarray(result.ppca.variances))[::-1],
                             [0.01, 0.005, 0.002], rtol=0.2)
  # The canonical frame: the mean pose's left side along +x.
  mean = np.asarray(result.ppca.mean).reshape(17, 3)
  side = mean[[4, 5, 6, 11, 12, 13]].mean(0) - mean[[1, 2, 3, 14, 15, 16]].mean(0)
  assert side[0] > 0 and abs(side[2]) < 1e-5


def test_align_rejects_bad_input():
  with pytest.raises(ValueError, match="num_basis"):
    align_lib.align(np.zeros((5, 17, 3), np.float32) + 1, 0)
  with pytest.raises(ValueError, match="17, 3"):
    align_lib.align(np.zeros((5, 16, 3), np.float32), 2)
  with pytest.raises(ValueError, match="NaN"):
    align_lib.align(jnp.full((5, 17, 3), jnp.nan), 2)
