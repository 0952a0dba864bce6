"""Human3.6M: cameras, readers of a user's copy, protocol splits, a TFDS builder.

TensorFlow is not needed: the builder writes array_record files that
`tfds.data_source` and grain read back. Importing this package imports
tensorflow_datasets; the metrics live in `lift3d.eval`.
"""

from lift3d.data.h36m.builder import (
    H36mConfig,
    Lift3dH36m,
    data_source,
    make_builder,
    prepare,
    read_arrays,
)
from lift3d.data.h36m.cameras import (
    CAMERA_IDS,
    FRONTAL_CAMERA,
    Camera,
    camera_to_lift,
    camera_to_world,
    get_camera,
    lift_rotation,
    load_cameras,
    project,
    project_world,
    world_to_camera,
    world_to_model,
)
from lift3d.data.h36m.sources import (
    ALL_SUBJECTS,
    ManualDirError,
    Recording,
    detect_layout,
    read_recordings,
)
from lift3d.data.h36m.splits import PROTOCOLS, TRAIN_SUBJECTS, Protocol, get_protocol

__all__ = [
    "ALL_SUBJECTS",
    "CAMERA_IDS",
    "FRONTAL_CAMERA",
    "PROTOCOLS",
    "TRAIN_SUBJECTS",
    "Camera",
    "H36mConfig",
    "Lift3dH36m",
    "ManualDirError",
    "Protocol",
    "Recording",
    "camera_to_lift",
    "camera_to_world",
    "data_source",
    "detect_layout",
    "get_camera",
    "get_protocol",
    "lift_rotation",
    "load_cameras",
    "make_builder",
    "prepare",
    "project",
    "project_world",
    "read_arrays",
    "read_recordings",
    "world_to_camera",
    "world_to_model",
]
