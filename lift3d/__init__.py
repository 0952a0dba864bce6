"""lift3d: "Lifting from the Deep" (Tome, Russell, Agapito, CVPR 2017) in JAX.

    import lift3d
    result = lift3d.lift(model, keypoints)   # (..., 17, 2) pixels -> LiftResult
    video = lift3d.lift_sequence(model, keypoints_over_time)   # (..., F, 17, 2) -> LiftResult
    network = lift3d.load_network("runs/default")         # or an exported .msgpack
    people = lift3d.predict(network, None, [image])[0]    # pictures -> 2D + 3D per person
"""

from lift3d.inference import Network, Person, load_network, predict
from lift3d.lifting import LiftResult, lift
from lift3d.pose_model.model import PoseModel
from lift3d.sequence import lift_sequence
from lift3d.skeleton import H36M17

__all__ = ["H36M17", "LiftResult", "Network", "Person", "PoseModel", "lift", "lift_sequence",
           "load_network", "predict"]
