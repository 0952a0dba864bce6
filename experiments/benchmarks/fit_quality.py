r"""Held-out quality of the pose model against K (components) and J (basis size).

  python -m experiments.benchmarks.fit_quality            # K = 1, 2, 3, 5 × J = 2..12
  python -m experiments.benchmarks.fit_quality --quick    # K = 1, 3 × J = 4, 8

The model is fitted (default settings, mirrors on) on the embedded mocap corpus
minus the held-out clips of `experiments/configs/parts/data.py` (whole clips:
walk and punch). Every held-out pose is normalised and reconstructed as well as
the model can (`lift3d.pose_model.reconstruct`: best yaw, best component,
least-squares coefficients); the error is the mean per-joint Euclidean
distance, turned into millimetres with the pose's own normalisation scale.
The same is reported on (a subsample of) the training poses, to show the gap.
Reconstruction has no prior on the coefficients, so errors fall as J grows; the
defaults are chosen where the held-out gain flattens (see experiments/benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs.parts import data as data_config
from lift3d import pose_model
from lift3d.data import mocap
from lift3d.pose_model.reconstruction import reconstruct


def per_joint_error_mm(model, poses) -> np.ndarray:
  """(N,) mean per-joint error (mm) of the best in-model reconstruction of `poses` (metres)."""
  normalised, scale = pose_model.normalize(poses)
  recon = reconstruct(model, normalised)
  err = jnp.mean(jnp.linalg.norm(recon.poses - normalised, axis=-1), axis=-1)
  return np.asarray(err * scale * 1000.0)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--components", type=int, nargs="*")
  parser.add_argument("--basis", type=int, nargs="*")
  parser.add_argument("--train_eval", type=int, default=400,
                      help="training poses evaluated (evenly spaced)")
  args = parser.parse_args()
  ks = args.components or ([1, 3] if args.quick else [1, 2, 3, 5])
  js = args.basis or ([4, 8] if args.quick else [2, 4, 6, 8, 10, 12])
  holdout = tuple(data_config.get().holdout_clips)
  corpus = mocap.load_embedded()
  train, held = corpus.split(holdout)
  train_eval = train.poses[np.linspace(0, len(train.poses) - 1, args.train_eval).astype(int)]
  print(f"fit_quality: {len(train.poses)} training poses, {len(held.poses)} held-out poses "
        f"({', '.join(holdout)}); {platform.machine()}, {os.cpu_count()} CPUs")
  print(f"{'K':>3} {'J':>3} {'held-out mm':>12} {'(median)':>9} {'train mm':>9} {'fit s':>6} "
        f"{'K used':>6}")
  for k in ks:
    for j in js:
      start = time.perf_counter()
      model = pose_model.fit(train.poses, num_components=k, num_basis=j, key=jax.random.key(0),
                             progress=False)
      seconds = time.perf_counter() - start
      held_err = per_joint_error_mm(model, held.poses)
      train_err = per_joint_error_mm(model, train_eval)
      print(f"{k:>3} {j:>3} {held_err.mean():>12.1f} {np.median(held_err):>9.1f} "
            f"{train_err.mean():>9.1f} {seconds:>6.1f} {model.num_components:>6}", flush=True)


if __name__ == "__main__":
  main()
