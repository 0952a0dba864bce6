"""The best in-model reconstruction of 3D poses: best yaw and subspace projection.

For a normalised pose X and component k, find `min_{θ, a} ||X − R_θ(μ_k + a·e_k)||²`
(no prior on a): for fixed θ, a is the projection of `R_θᵀX − μ_k`, so the
residual is a function of θ alone, searched on a grid of yaws and refined by
the closed-form alternation of docs/method.md §2. The best component wins. Used to
measure how well a pose model covers held-out poses.

Shape letters: N poses, L joints, K components, J basis vectors, T yaws.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lift3d._precision import float32_matmuls
from lift3d.camera import rotate_yaw
from lift3d.pose_model.alignment import optimal_yaw
from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import check_poses


class Reconstruction(NamedTuple):
  """What `reconstruct` returns.

  Attributes:
    poses: (N, L, 3) reconstructions `R_θ(μ_k + a·e_k)`, normalised units.
    component: (N,) int32, the best component k.
    yaw: (N,) radians.
    coeffs: (N, J) the coefficients a.
    residual: (N,) squared residual `||X − reconstruction||²`, normalised units².
  """

  poses: jax.Array
  component: jax.Array
  yaw: jax.Array
  coeffs: jax.Array
  residual: jax.Array


def _project(pose, yaw, mean, basis):
  """(coeffs (J,), reconstruction in the aligned frame (L, 3)) for one yaw."""
  aligned = rotate_yaw(pose, -yaw)
  coeffs = jnp.einsum("jlc,lc->j", basis, aligned - mean)
  return coeffs, mean + jnp.einsum("j,jlc->lc", coeffs, basis)


def _one_component(pose, mean, basis, yaws, refine_steps):
  def residual(yaw):
    _, recon = _project(pose, yaw, mean, basis)
    return jnp.sum((rotate_yaw(pose, -yaw) - recon) ** 2)

  yaw = yaws[jnp.argmin(jax.vmap(residual)(yaws))]
  for _ in range(refine_steps):  # each step cannot increase the residual
    _, recon = _project(pose, yaw, mean, basis)
    yaw = optimal_yaw(pose, recon)
  coeffs, recon = _project(pose, yaw, mean, basis)
  return yaw, coeffs, rotate_yaw(recon, yaw), residual(yaw)


@functools.partial(jax.jit, static_argnames=("num_yaws", "refine_steps"))
def _reconstruct(model: PoseModel, poses, *, num_yaws: int, refine_steps: int):
  yaws = jnp.linspace(-jnp.pi, jnp.pi, num_yaws, endpoint=False)
  per_component = jax.vmap(  # over components
      jax.vmap(_one_component, in_axes=(0, None, None, None, None)),  # over poses
      in_axes=(None, 0, 0, None, None), out_axes=1,
  )(poses, model.mean, model.basis, yaws, refine_steps)
  yaw, coeffs, recon, residual = per_component  # (N, K, ...)
  best = jnp.argmin(residual, axis=1)
  pick = lambda x: jnp.take_along_axis(x, best.reshape((-1, 1) + (1,) * (x.ndim - 2)), 1)[:, 0]  # noqa: E731
  return Reconstruction(pick(recon), best.astype(jnp.int32), pick(yaw), pick(coeffs),
                        pick(residual))


@float32_matmuls
def reconstruct(model: PoseModel, poses, *, num_yaws: int = 360,
                refine_steps: int = 3) -> Reconstruction:
  """The best in-model reconstruction of each (normalised) pose.

  Args:
    model: the pose model.
    poses: (N, L, 3) normalised poses (`lift3d.pose_model.normalize`), y up.
    num_yaws: T, grid size of the yaw search.
    refine_steps: closed-form yaw refinements after the grid search.

  Returns:
    A `Reconstruction` (per pose: best component, yaw, coefficients, residual).
  """
  check_poses(poses)
  if np.ndim(poses) != 3 or np.shape(poses)[1] != model.num_joints:
    raise ValueError(f"expected poses (N, {model.num_joints}, 3), got {np.shape(poses)}")
  return _reconstruct(model, jnp.asarray(poses, jnp.float32), num_yaws=num_yaws,
                      refine_steps=refine_steps)
