"""Config of the 3D pose model fit (issue 4, docs/method.md §1–§3).

Most keys are `lift3d.pose_model.fit` arguments (mapped in
`experiments.settings.fit_kwargs`), plus `seed` (the PRNG key), `max_poses`
(a cap on the poses fitted) and `plot_modes` (modes drawn per component in
the figure).
"""

import ml_collections


def get(smoke: bool = False) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # K mixture components and J basis vectors per component: chosen by the
  # lifting's error on the validation clips of real people (default blend
  # reconstruction, the default job's views; experiments/benchmarks/lift_quality.py
  # section 1 over K in 3..12, J in 10..17; RESULTS.md, issue 11).
  config.num_components = 2 if smoke else 9
  config.num_basis = 4 if smoke else 14
  # Add the left-right mirror of every training pose (docs/method.md §1.3).
  config.mirror = True
  # Ground-plane alignment (docs/method.md §2): alternations per basis size, yaw
  # updates per alternation, relative cost tolerance, and the size of the
  # subset the alternation runs on for large corpora.
  config.align_iterations = 2 if smoke else 4
  config.align_yaw_steps = 2
  config.align_tolerance = 1e-4
  config.align_subsample = 65536
  # EM for the mixture (docs/method.md §3).
  config.em_iterations = 5 if smoke else 30
  config.em_tolerance = 1e-4
  config.init_subsample = 2000
  config.min_centre_distance = 1e-6
  config.noise_floor = 1e-7
  # Poses per streamed chunk of the sufficient statistics.
  config.chunk_size = 8192
  config.seed = 0
  # At most this many training poses (evenly strided; 0 = all).
  config.max_poses = 0
  config.plot_modes = 3
  # Choose the lifting's prior (σ_obs, β) on views of the validation clips
  # after the fit (lift3d.lifting.calibrate_prior), frames per condition.
  config.calibrate = True
  config.calibration_frames = 64 if smoke else 500
  return config
