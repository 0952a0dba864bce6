"""lift3d: "Lifting from the Deep" (Tome, Russell, Agapito, CVPR 2017) in JAX.

    import lift3d
    result = lift3d.lift(model, keypoints)   # (..., 17, 2) pixels -> LiftResult
"""

from lift3d.lifting import LiftResult, lift
from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import H36M17

__all__ = ["H36M17", "LiftResult", "PoseModel", "lift"]
