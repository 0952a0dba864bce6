"""The 3D pose model: a mixture of PPCA over normalised, ground-aligned poses.

docs/method.md §1–§3 (paper §4). `fit` builds a `PoseModel` from raw 3D poses
in metres; `save`/`load` store it in one portable .npz file; `reconstruct`
gives the best in-model reconstruction of 3D poses. Modules: normalization
(§1: `normalize`, `mirror`), alignment (§2: `align`), ppca and mixture (§3),
stream (chunked, sharded sums), fitting (`fit`), reconstruction
(`reconstruct`), model, io, plot. No module shares its name with a function,
so `lift3d.pose_model.fit` is always the function and
`lift3d.pose_model.fitting` the module.
"""

from lift3d.pose_model.alignment import AlignResult, align, optimal_yaw
from lift3d.pose_model.fitting import FitResult, fit, fit_detailed
from lift3d.pose_model.io import load, save
from lift3d.pose_model.mixture import Mixture, fit_mixture, greedy_centres
from lift3d.pose_model.model import PoseModel
from lift3d.pose_model.normalization import limb_norm, mirror, normalize
from lift3d.pose_model.ppca import PPCA
from lift3d.pose_model.reconstruction import Reconstruction, reconstruct

__all__ = [
    "PPCA",
    "AlignResult",
    "FitResult",
    "Mixture",
    "PoseModel",
    "Reconstruction",
    "align",
    "fit",
    "fit_detailed",
    "fit_mixture",
    "greedy_centres",
    "limb_norm",
    "load",
    "mirror",
    "normalize",
    "optimal_yaw",
    "reconstruct",
    "save",
]
