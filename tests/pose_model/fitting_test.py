"""The whole fit (docs/method.md §1–§3) on planted poses in metres, and on several devices."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from lift3d.pose_model import fit, fit_detailed
from lift3d.skeleton import H36M17
from tests.float32_bounds import ULPS_PER_FUNCTION, as_float32, assert_within, bound
from tests.pose_model import synthetic
from tests.pose_model.conftest import STANDARD


def _limb_norm(pose):
  return np.sqrt(sum(np.sum((pose[a] - pose[b]) ** 2) for a, b in synthetic.LIMBS))


def test_fit_gives_a_consistent_model(planted, planted_fit):
  poses, yaws = planted
  result = planted_fit
  model = result.model
  assert result.num_poses == 2 * len(poses)  # mirrors added
  assert model.mean.shape == (2, 17, 3) and model.basis.shape == (2, 3, 17, 3)
  assert model.variances.shape == (2, 3) and model.noise.shape == (2,)
  assert_within(np.sum(np.asarray(model.weights, np.float64)), 1.0, bound(1.0, 2 + 1))
  for k in range(2):
    flat = np.asarray(model.basis[k], np.float64).reshape(3, -1)
    # Orthonormal to the eigensolver's backward error, p(D)·u with p(D) = D² (D = 51).
    assert_within(flat @ flat.T, np.eye(3), bound(1.0, 51**2 + 51))
  assert np.all(np.asarray(model.variances) >= 0) and np.all(np.asarray(model.noise) > 0)
  # limb_scale: the mean limb norm of the input poses, in metres.
  # float32: each pose's limb norm (a 48-term sum, a square root), then a mean of 400.
  norms = np.array([_limb_norm(p) for p in as_float32(poses)])
  peak = np.abs(as_float32(poses)).max((1, 2))
  per_pose = bound(peak * np.sqrt(48) + norms, 1 + 48 + ULPS_PER_FUNCTION + 2)
  assert_within(model.limb_scale, norms.mean(),
                per_pose.mean() + bound(norms.mean(), len(poses) + 1))
  # The model's poses are normalised: centred means with limb norm about 1.
  for k in range(2):
    mean = np.asarray(model.mean[k])
    # A responsibility-weighted mean of 800 centred poses, then a mean over 17 joints.
    # A centred pose of unit limb norm has |coordinates| ≤ 4 (any two joints are joined
    # by ≤ 16 limbs, whose lengths sum to ≤ √16 by Cauchy–Schwarz).
    assert_within(mean.astype(np.float64).mean(0), 0.0, bound(4.0, 2 * len(poses) + 17 + 4))
    assert 0.9 < _limb_norm(mean) < 1.1
  # Yaws: recovered up to one global rotation (default, short alternation).
  diff = np.angle(np.exp(1j * (result.yaws - yaws)))
  offset = np.angle(np.mean(np.exp(1j * diff)))
  assert np.median(np.abs(np.angle(np.exp(1j * (diff - offset))))) < 0.05
  # EM never lowered the likelihood; the alignment cost never rose.
  assert np.all(np.diff(result.log_likelihood) >= -1e-6 * np.abs(result.log_likelihood[:-1]))
  assert np.all(np.diff(result.align_cost) <= 1e-5 * result.align_cost[:-1])


def test_fit_without_mirror_keeps_the_sample_mean(planted):
  # 800 distinct poses without mirrors: the same array sizes as the standard fit.
  poses, _ = synthetic.planted_poses(800, seed=1)
  result = fit_detailed(poses, key=jax.random.key(1), mirror=False, **STANDARD)
  model = result.model
  assert result.num_poses == 800
  # EM keeps Σ_k π_k μ_k = the mean of the aligned poses, here the rest pose
  # (normalised; in the canonical frame its left side is along +x, like REST_POSE).
  pooled = np.einsum("k,klc->lc", np.asarray(model.weights), np.asarray(model.mean))
  np.testing.assert_allclose(pooled, synthetic.normalised_rest_pose(), atol=0.02)


@pytest.mark.parametrize("kwargs, match", [
    (dict(poses=np.zeros((10, 16, 3))), r"17, 3"),
    (dict(poses=np.zeros((1, 17, 3))), "N ≥ 2"),
    (dict(num_basis=0), "num_basis"),
    (dict(num_basis=51), "num_basis"),
    (dict(num_components=0), "num_components"),
])
def test_fit_rejects_bad_arguments(planted, kwargs, match):
  args = dict(poses=planted[0][:20], num_components=2, num_basis=3, key=jax.random.key(0))
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    fit(**args)


def test_fit_rejects_nan(planted):
  poses = planted[0][:20].copy()
  poses[3, 4, 1] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    fit(poses, key=jax.random.key(0))


_MULTI_DEVICE = textwrap.dedent("""
    import sys, jax, numpy as np
    assert len(jax.devices()) == 4, jax.devices()
    from lift3d.pose_model import fit_detailed
    from tests.pose_model import synthetic
    from tests.pose_model.conftest import STANDARD
    poses, _ = synthetic.planted_poses(400)
    runs = {"four": jax.devices()}
    if len(sys.argv) > 2:  # the single-device reference, on the same (CPU) platform
      runs["one"] = jax.devices()[:1]
    for (name, devices), path in zip(runs.items(), sys.argv[1:]):
      r = fit_detailed(poses, key=jax.random.key(0), devices=devices, **STANDARD)
      np.savez(path, yaws=r.yaws, log_likelihood=r.log_likelihood, weights=r.model.weights,
               mean=r.model.mean, basis=r.model.basis, variances=r.model.variances)
""")


def _fit_arrays(result):
  return dict(yaws=np.asarray(result.yaws), log_likelihood=np.asarray(result.log_likelihood),
              weights=np.asarray(result.model.weights), mean=np.asarray(result.model.mean),
              basis=np.asarray(result.model.basis),
              variances=np.asarray(result.model.variances))


def test_multi_device_fit_equals_single_device(planted_fit, tmp_path):
  path = str(tmp_path / "four.npz")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  # Off CPU the session's own fit ran on another platform: compare with a
  # single-device CPU fit instead, so only the device count differs.
  on_cpu = jax.default_backend() == "cpu"
  reference = str(tmp_path / "one.npz")
  args = [path] if on_cpu else [path, reference]
  proc = subprocess.run([sys.executable, "-c", _MULTI_DEVICE, *args], cwd=root, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  four = dict(np.load(path))
  one = _fit_arrays(planted_fit) if on_cpu else dict(np.load(reference))
  # Sharding changes only the order of the sums. The alignment and the
  # likelihood reached agree to rounding. The training set is mirrored, so a
  # model and its mirror image (left/right joints swapped, x negated) are
  # equally likely and rounding decides which one EM ends on (seen: 1 vs 2
  # CPU devices here, 1 vs 4 on a 16-core machine): the parameters must match
  # one of the two, tightly.
  offset = np.angle(np.exp(1j * (four["yaws"] - one["yaws"])))
  assert np.abs(offset).max() < 1e-4
  np.testing.assert_allclose(four["log_likelihood"], one["log_likelihood"], rtol=1e-5)
  np.testing.assert_allclose(four["weights"], one["weights"], atol=1e-4)
  flip = np.asarray(H36M17.mirror_permutation)
  sign = np.array([-1.0, 1.0, 1.0])

  def covariances(basis, variances):  # (K, 3L, 3L), continuous in the fit
    flat = basis.reshape(*basis.shape[:2], -1)
    return np.einsum("kjx,kj,kjy->kxy", flat, variances, flat)

  errors = []
  for mean, basis in ((one["mean"], one["basis"]),
                      (one["mean"][:, flip] * sign, one["basis"][:, :, flip] * sign)):
    errors.append((
        np.abs(four["mean"] - mean).max(),
        np.abs(covariances(four["basis"], four["variances"])
               - covariances(basis, one["variances"])).max()))
  mean_error, cov_error = min(errors)
  assert mean_error < 1e-4, errors
  assert cov_error < 1e-3 * one["variances"].max(), errors


def test_alignment_on_a_subset_matches_the_full_alignment(planted, planted_fit):
  # 800 fitted poses, the alternation on every 4th: yaws of all poses still
  # come back up to one global rotation, and the model is close to the full fit.
  poses, yaws = planted
  result = fit_detailed(poses, key=jax.random.key(0), devices=jax.devices()[:1],
                        align_subsample=200, **STANDARD)
  diff = np.angle(np.exp(1j * (result.yaws - yaws)))
  offset = np.angle(np.exp(1j * (diff - np.angle(np.mean(np.exp(1j * diff))))))
  assert np.median(np.abs(offset)) < 0.05
  full_yaws = planted_fit.yaws
  assert np.median(np.abs(np.angle(np.exp(1j * (result.yaws - full_yaws))))) < 0.05
  pooled = lambda m: np.einsum("k,klc->lc", np.asarray(m.weights), np.asarray(m.mean))  # noqa: E731
  np.testing.assert_allclose(pooled(result.model), pooled(planted_fit.model), atol=0.02)
