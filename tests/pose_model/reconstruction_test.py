"""Best in-model reconstruction: exact on poses the model generates, brute-force optimal."""

import jax.numpy as jnp
import numpy as np

from lift3d.pose_model import PoseModel
from lift3d.pose_model.reconstruction import reconstruct
from tests.float32_bounds import ULPS_PER_FUNCTION, as_float32, assert_within, bound
from tests.pose_model import synthetic


def _model(seed=0):
  rng = np.random.default_rng(seed)
  rest = synthetic.normalised_rest_pose()
  means = np.stack([rest, rest[:, [0, 1, 2]] * np.array([1.0, 0.6, 1.0])])  # two shapes
  means -= means.mean(1, keepdims=True)
  basis = np.stack([synthetic.random_orthonormal(rng, 2, 51).reshape(2, 17, 3) for _ in range(2)])
  return PoseModel(jnp.asarray(means, jnp.float32), jnp.asarray(basis, jnp.float32),
                   jnp.full((2, 2), 0.01), jnp.full((2,), 1e-4), jnp.full((2,), 0.5),
                   jnp.float32(1.0)), means, basis


def test_reconstructs_generated_poses_exactly():
  model, means, basis = _model()
  rng = np.random.default_rng(1)
  comps = np.array([0, 1, 0, 1, 1])
  yaws = rng.uniform(-np.pi, np.pi, 5)
  coeffs = rng.normal(scale=0.1, size=(5, 2))
  aligned = means[comps] + np.einsum("nj,njlc->nlc", coeffs, basis[comps])
  poses = synthetic.rotate(aligned, yaws)
  out = reconstruct(model, poses)
  np.testing.assert_array_equal(out.component, comps)
  np.testing.assert_allclose(np.angle(np.exp(1j * (np.asarray(out.yaw) - yaws))), 0, atol=1e-3)
  np.testing.assert_allclose(out.coeffs, coeffs, atol=1e-3)
  np.testing.assert_allclose(out.poses, poses, atol=1e-4)
  assert np.all(np.asarray(out.residual) < 1e-6)


def test_residual_is_no_worse_than_a_fine_brute_force():
  model, means, basis = _model(2)
  pose = synthetic.normalised_rest_pose() + np.random.default_rng(3).normal(scale=0.05,
                                                                            size=(17, 3))
  out = reconstruct(model, pose[None], num_yaws=36)
  best = np.inf
  for k in range(2):
    flat = basis[k].reshape(2, -1)
    for theta in np.linspace(-np.pi, np.pi, 3600, endpoint=False):
      centred = (synthetic.rotate(pose[None], np.array([-theta]))[0] - means[k]).reshape(-1)
      best = min(best, centred @ centred - np.sum((flat @ centred) ** 2))
  # float32: the residual ||c||² − ||e c||² cancels terms of size ||X||² + 2|X||μ| + ||μ||²
  # (a 51-term sum after a rotation with its sine and cosine).
  pose = as_float32(pose)
  magnitude = max(np.sum((np.abs(pose) + np.abs(m)) ** 2) for m in means)
  depth = 51 + 2 + 4 + 2 * ULPS_PER_FUNCTION
  assert float(out.residual[0]) <= best + bound(magnitude, depth)
  # Each reconstructed coordinate errs by ≤ tol, so Σ d² by ≤ 2 Σ|d|·tol.
  recon = np.asarray(out.poses[0], np.float64)
  coordinate_tol = bound(np.abs(pose).max() + np.abs(means).max() + np.abs(recon).max(), depth)
  assert_within(np.sum((recon - pose) ** 2), out.residual[0],
                2 * np.sum(np.abs(recon - pose)) * coordinate_tol + bound(magnitude, depth))
