r"""Speed of the real-image input pipeline against bare JPEG decoding (issue 13).

  python -m experiments.benchmarks.input_pipeline [--quick] [--train_steps=3]

On a fake MPII copy at MPII's image size (1280×720 JPEGs, written by
`lift3d.data.fake_datasets`, built with `lift3d.data.mpii`), in one process:
1. bare decode: PIL decodes each record's JPEG to an RGB array (the baseline);
2. the pipeline, one process: `TrainingSource[i]` (decode, H36M17 mapping,
   scale/rotation/flip crop to 368×368, colour jitter, centre map);
3. the same through grain batches with 0 (threads), 1 and 2 worker processes;
4. with `--train_steps`, the training step of the paper's fused CPM (6
   stages, stride 8, 368×368×4) on this host's device, batch `--batch_size`.
Prints images/s and the ratio of each to the bare decode rate.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time

import numpy as np


def _rate(fn, count: int, repeat: int = 2) -> float:
  best = np.inf
  for _ in range(repeat):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return count / best


def _train_step_time(steps: int, batch_size: int, source) -> float:
  import jax

  from experiments.configs.parts import cpm as cpm_config
  from lift3d import train
  from lift3d.models import cpm
  from tests.models import tiny

  fields = dict(cpm_config.paper_model().to_dict())
  fields["trunk_features"] = tuple(fields["trunk_features"])
  model = cpm.CPM(centre_map=True, **fields)
  pose_model = tiny.pose_model(num_basis=10)
  mesh = train.data_mesh()
  tx = train.make_optimizer(schedule="constant")
  state = train.create_train_state(model, tx, jax.random.key(0), (368, 368), pose_model, mesh)
  step = train.make_train_step(model, tx, mesh)
  items = [source[i] for i in range(batch_size)]
  batch = {k: np.stack([it[k] for it in items]) for k in train.BATCH_KEYS}
  state, metrics = step(state, batch, pose_model)  # compile
  jax.block_until_ready(metrics["loss"])
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch, pose_model)
  jax.block_until_ready(metrics["loss"])
  return (time.perf_counter() - start) / steps


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="fewer images")
  parser.add_argument("--train_steps", type=int, default=0, help="time the paper CPM's step")
  parser.add_argument("--batch_size", type=int, default=2)
  args = parser.parse_args()
  num_images = 12 if args.quick else 40
  count = 48 if args.quick else 160

  import jax
  from PIL import Image

  from lift3d.data import augment, fake_datasets, mpii, pipeline

  with tempfile.TemporaryDirectory() as root:
    fake_datasets.write_mpii(os.path.join(root, "mpii"), num_images=num_images, height=720,
                             width=1280)
    mpii.prepare(os.path.join(root, "tfds"), os.path.join(root, "mpii"))
    records = mpii.data_source(os.path.join(root, "tfds"), "train")
    jpegs = [records[i]["image"] for i in range(len(records))]
    print(f"{len(records)} person records, JPEG {np.mean([len(j) for j in jpegs]) / 1e3:.0f} kB "
          f"on average, 1280×720; crops 368×368; {count} items per timing")

    def decode():
      for i in range(count):
        np.asarray(Image.open(io.BytesIO(jpegs[i % len(jpegs)])).convert("RGB"))

    source = pipeline.TrainingSource([records], seed=0,
                                     options=augment.AugmentOptions(input_size=368))

    def items():
      for i in range(count):
        source[i]

    rows = [("bare JPEG decode (baseline)", _rate(decode, count))]
    rows.append(("pipeline, in process", _rate(items, count)))
    batch = 8
    for workers in (0, 1, 2):
      def batches(workers=workers):
        it = pipeline.batches(source, batch_size=batch, seed=1, worker_count=workers,
                              num_threads=1, keys=("image", "keypoints2d", "visibility"))
        next(it)  # start-up (worker processes) not timed
        start = time.perf_counter()
        for _ in range(count // batch):
          next(it)
        return count / (time.perf_counter() - start)
      label = f"grain batches, {workers} worker processes" if workers else \
          "grain batches, 1 thread, no worker process"
      rows.append((label, max(batches() for _ in range(2))))
    base = rows[0][1]
    print(f"{'':44s} {'images/s':>9s} {'vs decode':>9s}")
    for name, rate in rows:
      print(f"{name:44s} {rate:9.1f} {rate / base:9.2f}")
    if args.train_steps:
      seconds = _train_step_time(args.train_steps, args.batch_size, source)
      print(f"paper fused CPM training step, batch {args.batch_size}, "
            f"{jax.devices()[0].platform}: {seconds:.3f} s/step "
            f"({args.batch_size / seconds:.2f} images/s)")


if __name__ == "__main__":
  main()
