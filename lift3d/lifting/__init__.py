"""Lifting 2D landmarks to 3D with a mixture-of-PPCA pose model (docs/method.md §4, paper §5.3).

Model: `w ≈ s Π E R_θ (μ_k + E_k a) + t` (weak perspective, camera rotation E,
yaw θ about the vertical, component k, coefficients a). `lift` finds, for a
batch of 2D poses, the (k, θ, s > 0, a) of lowest negative log posterior:
a fast exhaustive grid search of a linearised problem proposes candidates
(`search`), the exact objective over s and a re-ranks them (`solves`), and
the answer is checked for physical sense (size, Mahalanobis norm,
reprojection residual) before it is called `valid` (`api`).

Modules: `api` (the public `lift`, `LiftResult`, checks, chunking and the
CPU's groups of chunks in threads),
`search` (frame-independent terms, per-frame terms, the grid searches),
`solves` (unrolled small solves and the exact profile), `calibrate`
(choosing σ_obs and β by held-out validation).

Shape letters, used in every module of this package:
  L joints; J basis vectors; P = J + 1 unknowns (s and s·a of the linearised
  problem); K mixture components; T grid yaws; T_s yaws searched (T/2 pairs
  (θ, θ + π) in the weighted search of a level camera, else T); C candidates
  per component; B frames; n Gram terms (4 coordinate pairs for a level
  camera, 6 for a tilted one); U = P(P+1)/2 upper-triangle entries of a
  P × P matrix; F per-frame coordinate products of the unweighted search.
"""

from lift3d.lifting.api import (
    DEFAULT_BLEND_WEIGHT,
    DEFAULT_CANDIDATES,
    MAX_RESIDUAL,
    MAX_SIZE_ERROR,
    LiftResult,
    grid_scores,
    lift,
    max_mahalanobis,
)
from lift3d.lifting.calibrate import Calibration, calibrate_prior
from lift3d.lifting.search import default_obs_noise, typical_scale

__all__ = [
    "DEFAULT_BLEND_WEIGHT",
    "DEFAULT_CANDIDATES",
    "MAX_RESIDUAL",
    "MAX_SIZE_ERROR",
    "Calibration",
    "LiftResult",
    "calibrate_prior",
    "default_obs_noise",
    "grid_scores",
    "lift",
    "max_mahalanobis",
    "typical_scale",
]
