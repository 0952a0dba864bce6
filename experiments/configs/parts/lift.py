"""Config of lifting 2D landmarks to 3D (issue 5, docs/method.md §4) and of its evaluation.

`num_yaws`, `refine`, `min_visible`, `obs_noise`, `reconstruction` and
`blend_weight` are `lift3d.lift` arguments; `eval` sets up the held-out lifting experiment of
`experiments/jobs/lifting.py` (2D made from the held-out mocap clips by
pinhole cameras at random heights and distances, subject yaws, pixel noise
and occlusions), `video` its video step (the held-out clips as videos).
"""

import ml_collections


def get(smoke: bool = False) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # Yaws searched exhaustively (paper: 80–100).
  config.num_yaws = 40 if smoke else 100
  # A few Levenberg–Marquardt steps on the yaw after the grid search.
  config.refine = False
  # Frames with fewer visible joints are reported as not valid.
  config.min_visible = 6
  # σ_obs, the 2D noise std in normalised units (fraction of the pose's RMS
  # radius); None takes the pose model's, chosen on validation clips.
  config.obs_noise = None
  # "model" (the model's pose) or "blend" (visible joints moved `blend_weight`
  # of the way to the observed 2D in the image plane; lift3d.lift). Blend at
  # 0.8 was chosen on the validation clips (lift_quality.py section 3,
  # RESULTS.md issue 11): about 8 mm MPJPE better than "model".
  config.reconstruction = "blend"
  config.blend_weight = 0.8

  ev = ml_collections.ConfigDict()
  ev.seed = 0
  # Frames sampled from the held-out clips (split evenly over the cameras).
  ev.num_frames = 96 if smoke else 4000
  ev.num_cameras = 4
  # Pinhole cameras looking at the subject's hip: distance and height (metres),
  # focal length and image size (pixels). Elevation follows from height and
  # distance (about -5° to 25° below the horizon here).
  ev.distance_m = (3.5, 6.0)
  ev.height_m = (0.6, 2.8)
  ev.focal_px = 1100.0
  ev.image_size = (1000, 1000)
  # Give lift the true camera rotation (True) or assume a level camera.
  ev.known_camera = True
  # 2D pixel noise (std) and the probability that a joint is hidden.
  ev.noise_px = 3.0
  ev.occlusion_prob = 0.1
  # Examples drawn in lifting_examples.png.
  ev.num_examples = 4
  config.eval = ev

  # The video step (experiments/jobs/lifting.py `evaluate_video`, issue 16): the
  # held-out clips as videos, per-frame `lift` against `lift3d.lift_sequence`.
  video = ml_collections.ConfigDict()
  video.seed = 2
  video.videos_per_clip = 1
  video.num_frames = 24 if smoke else 120
  # The first `max_clips` held-out clips (0: all).
  video.max_clips = 4 if smoke else 0
  video.noise_px = 3.0
  config.video = video
  return config
