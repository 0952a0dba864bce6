"""The 3D pose model: a mixture of PPCA over normalised, ground-aligned poses.

METHOD §1–§3 (paper §4). `fit` builds a `PoseModel` from raw 3D poses in
metres; `save`/`load` store it in one portable .npz file; `reconstruct` gives
the best in-model reconstruction of 3D poses. Modules: normalize (§1), align
(§2), ppca and mixture (§3), stream (chunked, sharded sums), fit, io, plot.

Note: the names `align`, `fit`, `mirror`, `normalize` here are the functions;
import a module as `importlib.import_module("lift3d.pose_model.align")` or
`from lift3d.pose_model.align import ...`.
"""

from lift3d.pose_model.align import AlignResult, align, optimal_yaw
from lift3d.pose_model.fit import FitResult, fit, fit_detailed
from lift3d.pose_model.io import load, save
from lift3d.pose_model.mixture import Mixture, fit_mixture, greedy_centres
from lift3d.pose_model.model import PoseModel
from lift3d.pose_model.normalize import limb_norm, mirror, normalize
from lift3d.pose_model.ppca import PPCA
from lift3d.pose_model.reconstruct import Reconstruction, reconstruct

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
