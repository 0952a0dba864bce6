"""The linearised grid search (lift3d.lifting.search) against NumPy least squares."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lift3d import camera
from lift3d.lifting import search
from tests.lifting.planted import (
  EPS32,
  MODEL,
  ROTATION,
  B,
  K,
  L,
  T,
  linearised_reference,
  random_frames,
)

OBS = 0.05


@functools.partial(jax.jit, static_argnames="rotated")
def _internal_costs(model, kp, vis, rotated=False):
  """Search costs of both paths and the linearised solve at every grid yaw.

  The weighted search of a level camera returns the lower cost of each pair
  (θ, θ + π), (B, K, T/2); with `rotated` (camera ROTATION) every yaw's.
  `search_weighted_grid` (the weighted grid, one factorisation per pair of a
  level camera) every yaw's, (B, K, T).
  """
  with jax.default_matmul_precision("highest"):  # as lift itself runs them
    rotation = jnp.asarray(ROTATION) if rotated else None
    obs, prior = jnp.float32(OBS), jnp.float32(1.0)
    prep_w = search.prepare(model, rotation, obs, prior, T, False)
    prep_u = search.prepare(model, None, obs, prior, T, True)
    omega = vis**2
    used = omega > 0
    clean = jnp.where(used[..., None], kp, 0.0)
    points_w = jnp.where(used[..., None], camera.normalize_keypoints(clean, omega).points, 0.0)
    gram, rhs, norm2 = search.frame_terms(prep_w, points_w, omega)
    weighted, paired = search.search_weighted(prep_w, gram, rhs, norm2)
    assert paired == (not rotated)
    first, opposite = search.search_weighted_grid(prep_w, gram, rhs, norm2)
    assert (opposite is None) == rotated
    grid = first if rotated else jnp.concatenate([first, opposite], axis=1)  # (K, T, B)
    yaws = jnp.broadcast_to(prep_w.yaws[:, None, None], (T, K, B))
    exact, sol = search.linearised_solve(prep_w, gram[:, :, None], rhs[:, :, None], norm2,
                                         prep_w.tikhonov.T[:, None, :, None], yaws)
    points_u = camera.normalize_keypoints(jnp.nan_to_num(kp)).points
    unweighted = search.search_unweighted(prep_u, points_u)
  # Search costs come frames-minor (K, T, B), the solve as (T, K, B) and (P, T, K, B).
  return (jnp.transpose(weighted, (2, 0, 1)), jnp.transpose(exact, (2, 1, 0)),
          jnp.transpose(sol, (3, 2, 1, 0)), jnp.transpose(unweighted, (2, 0, 1)),
          jnp.transpose(grid, (2, 0, 1)))


def _tolerance(kp, vis):
  """Float32 rounding of r = ||Dw||² − z·z: the cancelling terms are of size ||Dw||² (≤ L)."""
  del kp, vis
  return 64 * EPS32 * L


def test_weighted_costs_and_solutions_equal_lstsq():
  kp, vis = random_frames(1)
  weighted, exact, sol, _, grid = _internal_costs(MODEL, kp, vis)
  for b in range(B):
    costs, sols = linearised_reference(MODEL, kp[b], vis[b], T, obs_noise=OBS)
    pair_min = np.minimum(costs[:, : T // 2], costs[:, T // 2 :])
    tol = _tolerance(kp, vis)
    np.testing.assert_allclose(weighted[b], pair_min, rtol=0, atol=tol)
    # Each pair's cost says which member is the lower (its lowest bit), wherever
    # the two differ by more than rounding.
    flag = np.asarray(search.opposite_flag(jnp.asarray(weighted[b])))
    gap = costs[:, T // 2 :] - costs[:, : T // 2]
    clear = np.abs(gap) > 2 * tol
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(flag[clear], gap[clear] < 0)
    np.testing.assert_allclose(exact[b], costs, rtol=0, atol=tol)
    np.testing.assert_allclose(grid[b], costs, rtol=0, atol=tol)
    # Solutions: rounding amplified by the conditioning of the ridge system.
    np.testing.assert_allclose(sol[b], sols, rtol=1e-3, atol=1e-3)


def test_weighted_costs_of_a_rotated_camera_equal_lstsq():
  kp, vis = random_frames(4)
  weighted, exact, _, _, grid = _internal_costs(MODEL, kp, vis, rotated=True)
  for b in range(B):
    costs, _ = linearised_reference(MODEL, kp[b], vis[b], T, rotation=ROTATION, obs_noise=OBS)
    tol = _tolerance(kp, vis)
    np.testing.assert_allclose(weighted[b], costs, rtol=0, atol=tol)
    np.testing.assert_allclose(exact[b], costs, rtol=0, atol=tol)
    np.testing.assert_allclose(grid[b], costs, rtol=0, atol=tol)


@functools.partial(jax.jit, static_argnames=("rotated", "frames_major", "profile"))
def _unweighted_costs(model, kp, rotated, frames_major, profile=True):
  """`search_unweighted`'s costs (B, K, T) of a level or rotated camera, from
  its frames-minor or frames-major products, with coefficients from the
  profile's eigenbasis or (`profile=False`) the rolled Cholesky."""
  with jax.default_matmul_precision("highest"):
    rotation = jnp.asarray(ROTATION) if rotated else None
    prep = search.prepare(model, rotation, jnp.float32(OBS), jnp.float32(1.0), T, True,
                          profile=profile)
    points = camera.normalize_keypoints(jnp.nan_to_num(kp)).points
    costs = search.search_unweighted(prep, points, frames_major=frames_major)
  return costs if frames_major else jnp.transpose(costs, (2, 0, 1))


@pytest.mark.parametrize("rotated", [False, True])
@pytest.mark.parametrize("frames_major, profile", [(False, True), (True, True), (True, False)])
def test_unweighted_costs_equal_lstsq(rotated, frames_major, profile):
  kp, _ = random_frames(2, hidden=False)
  unweighted = _unweighted_costs(MODEL, kp, rotated, frames_major, profile)
  for b in range(B):
    costs, _ = linearised_reference(MODEL, kp[b], None, T, obs_noise=OBS,
                                    rotation=ROTATION if rotated else None)
    np.testing.assert_allclose(unweighted[b], costs, rtol=0, atol=_tolerance(kp, None))


def test_centred_basis_is_orthonormal_and_centred():
  for num_joints in (2, 17):
    basis = search.centred_basis(num_joints)
    assert basis.shape == (num_joints, num_joints - 1)
    np.testing.assert_allclose(basis.T @ basis, np.eye(num_joints - 1), atol=1e-12)
    np.testing.assert_allclose(basis.sum(axis=0), 0.0, atol=1e-12)
