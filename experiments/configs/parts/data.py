"""Config of the mocap corpus and its train / validation / held-out split.

`experiments.settings.split_corpus` splits off whole clips, so no pose of a
held-out motion is seen in training: `holdout_*` clips are the default job's
test set; `validation_*` clips choose the lifting's prior (σ_obs, β) after the
fit (`lift3d.lifting.calibrate_prior`). Both are kept out of the fit.
"""

import ml_collections


def get(smoke: bool = False) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # The mocap corpus: "embedded" (lift3d.data.mocap.load_embedded(): CMU,
  # HDM05 and DeepMimic clips).
  config.corpus = "embedded"
  # Test clips: DeepMimic walk and punch, real people walking, running,
  # punching, bending to scoop, dancing and sitting on playground equipment
  # (CMU), and every clip of one HDM05 actor ("mm": squats, kicks, lying down,
  # reaching, throwing, ...).
  config.holdout_clips = ("humanoid3d_walk", "humanoid3d_punch", "cmu/02_01", "cmu/02_03",
                          "cmu/02_05", "cmu/02_06", "cmu/05_02", "cmu/01_08")
  config.holdout_prefixes = ("hdm05/mm_",)
  # Validation clips for the lifting's prior: other CMU clips and another HDM05 actor.
  config.validation_clips = ("cmu/02_02", "cmu/02_07", "cmu/05_03", "cmu/06_02", "cmu/01_14")
  config.validation_prefixes = ("hdm05/tr_",)
  # Keep every n-th training frame (1 = all; the clips are at most 30 fps);
  # smoke runs subsample more.
  config.frame_stride = 8 if smoke else 2
  return config
