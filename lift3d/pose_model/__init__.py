"""The 3D pose model: a mixture of PPCA over normalised, ground-aligned poses.

METHOD §1–§3 (paper §4). `fit` builds a `PoseModel` from raw 3D poses in
metres; `save`/`load` store it in one portable .npz file.
"""

from lift3d.pose_model.align import AlignResult, align, optimal_yaw, rotate, yaw_rotation
from lift3d.pose_model.fit import FitResult, fit, fit_detailed
from lift3d.pose_model.io import load, save
from lift3d.pose_model.mixture import Mixture, fit_mixture, greedy_centres
from lift3d.pose_model.model import PoseModel
from lift3d.pose_model.normalize import limb_norm, mirror, normalize
from lift3d.pose_model.ppca import PPCA

__all__ = [
    "PPCA",
    "AlignResult",
    "FitResult",
    "Mixture",
    "PoseModel",
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
    "rotate",
    "save",
    "yaw_rotation",
]
