"""The `PoseModel` pytree: a mixture of PPCA over normalised 3D poses.

Shape letters: K mixture components, J basis vectors, L joints.
"""

from __future__ import annotations

import flax.struct
import jax


@flax.struct.dataclass
class PoseModel:
  """A mixture of probabilistic PCA over aligned, normalised 3D poses (docs/method.md §3).

  Poses in the model are in the normalised frame (centred, unit sum of squared
  limb lengths), y up. Build one with `lift3d.pose_model.fit`, or by hand.

  Attributes:
    mean: (K, L, 3) component means, normalised units.
    basis: (K, J, L, 3) orthonormal basis per component (Frobenius inner
      product over (L, 3)).
    variances: (K, J) variance of each basis coefficient, normalised units².
    noise: (K,) isotropic residual variance σ², normalised units².
    weights: (K,) mixture weights, summing to 1.
    limb_scale: () mean normalisation scale of the training poses, in metres
      (multiply model units by it to get metres).
    obs_noise: () σ_obs of the lifting, the 2D noise standard deviation in
      normalised 2D units (a fraction of the 2D pose's RMS radius), chosen by
      held-out validation (`lift3d.lifting.calibrate_prior`); None (not
      calibrated) lets `lift3d.lift` use `lift3d.lifting.default_obs_noise`.
    prior_weight: () β, the weight of the component term `½Σ log λ − log π`
      of the lifting's score, chosen with `obs_noise`; None means 1.
  """

  mean: jax.Array
  basis: jax.Array
  variances: jax.Array
  noise: jax.Array
  weights: jax.Array
  limb_scale: jax.Array
  obs_noise: jax.Array | None = None
  prior_weight: jax.Array | None = None

  @property
  def num_components(self) -> int:
    """K, the number of mixture components."""
    return self.mean.shape[0]

  @property
  def num_basis(self) -> int:
    """J, the number of basis vectors per component."""
    return self.basis.shape[1]

  @property
  def num_joints(self) -> int:
    """L, the number of joints of the modelled poses."""
    return self.mean.shape[1]
