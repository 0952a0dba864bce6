"""Normalising 3D training poses and their left–right mirrors (docs/method.md §1).

Shape letters: N poses, L joints.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lift3d.skeleton import H36M17, Skeleton, check_poses


def limb_norm(poses: jax.Array, skeleton: Skeleton = H36M17) -> jax.Array:
  """Square root of the sum of squared limb lengths of each pose.

  Args:
    poses: (..., L, 3) any length unit.
    skeleton: gives the limbs (parent, child).

  Returns:
    (...) in the unit of `poses`.
  """
  parents = np.array([p for p, _ in skeleton.limbs])
  children = np.array([c for _, c in skeleton.limbs])
  bones = poses[..., children, :] - poses[..., parents, :]
  return jnp.sqrt(jnp.sum(bones**2, axis=(-2, -1)))


def normalize(poses, skeleton: Skeleton = H36M17) -> tuple[jax.Array, jax.Array]:
  """Centres each pose at the mean of its joints and scales it to unit limb norm.

  docs/method.md §1.1–1.2: `X ← (X − mean_l X_l) / sqrt(Σ_limbs ||X_i − X_j||²)`.

  Args:
    poses: (..., L, 3) metres (any length unit), y up.
    skeleton: gives the limbs; L = skeleton.num_joints.

  Returns:
    normalised: (..., L, 3) float32, centred, unit sum of squared limb lengths.
    scale: (...) float32, the divisor, in the unit of `poses` (metres).

  Raises:
    ValueError: on a bad shape, NaN, or a pose whose limbs all have length 0.
  """
  check_poses(poses, skeleton)
  normalised, scale = _normalize(jnp.asarray(poses, jnp.float32), skeleton)
  if not isinstance(scale, jax.core.Tracer) and bool(jnp.any(scale <= 0)):
    bad = np.flatnonzero(np.asarray(scale).reshape(-1) <= 0)[:5]
    raise ValueError(f"poses at flat indices {bad.tolist()} have all limb lengths zero")
  return normalised, scale


@functools.partial(jax.jit, static_argnums=1)
def _normalize(poses, skeleton):
  scale = limb_norm(poses, skeleton)
  centred = poses - jnp.mean(poses, axis=-2, keepdims=True)
  # (A zero scale gives inf/NaN here; `normalize` rejects it before returning.)
  return centred / scale[..., None, None], scale


def mirror(poses, skeleton: Skeleton = H36M17) -> jax.Array:
  """The left–right mirror of each pose, `X' = P_lr X diag(−1, 1, 1)` (docs/method.md §1.3).

  Swaps every left joint with its right twin and negates x, so a mirrored
  pose is again a plausible pose of the same skeleton.

  Args:
    poses: (..., L, 3) any unit, y up.
    skeleton: gives the left/right pairs.

  Returns:
    (..., L, 3) mirrored poses, same dtype.
  """
  check_poses(poses, skeleton)
  poses = jnp.asarray(poses)
  perm = np.array(skeleton.mirror_permutation)
  flip = jnp.array([-1.0, 1.0, 1.0], poses.dtype)
  return poses[..., perm, :] * flip
