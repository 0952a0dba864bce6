"""Config of the mocap corpus and its train/held-out split (experiments.settings.split_corpus)."""

import ml_collections


def get(smoke: bool = False) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # The mocap corpus: "embedded" (lift3d.data.mocap.load_embedded()).
  config.corpus = "embedded"
  # Whole clips of the embedded DeepMimic corpus kept out of every fit, for
  # held-out evaluation (lift3d.data.mocap.load_embedded().clip_names).
  config.holdout_clips = ("humanoid3d_walk", "humanoid3d_punch")
  # Keep every n-th frame of the corpus (1 = all); smoke runs subsample.
  config.frame_stride = 8 if smoke else 1
  return config
