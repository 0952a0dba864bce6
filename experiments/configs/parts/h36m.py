"""Config of the Human3.6M protocol runs (experiments/jobs/h36m.py)."""

import ml_collections


def get(smoke: bool = False, protocol: str = "protocol1") -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # "protocol1", "protocol2" or "protocol3" (lift3d.data.h36m.PROTOCOLS).
  config.protocol = protocol
  # Where the array_record files go (prepared once, reused by later runs).
  config.tfds_dir = "~/tensorflow_datasets"
  # Every n-th frame of the training subjects enters the dataset (5 = 10 fps).
  config.train_frame_step = 5
  # 2D input: "gt", "detections", or "auto" (detections when the copy has them).
  config.input = "auto"
  # Pass each camera's rotation E (pitch and roll; docs/method.md §4) to the lifting.
  config.use_camera_rotation = True
  config.num_yaws = 20 if smoke else 100
  config.refine = False
  # Frames per lift call (lift chunks internally as well).
  config.batch_size = 16384
  # Test frames per action (0 = all); smoke runs keep a few.
  config.max_frames_per_action = 40 if smoke else 0
  # Worst frames drawn in <workdir>/h36m_<protocol>_worst.png.
  config.num_worst = 6
  return config
