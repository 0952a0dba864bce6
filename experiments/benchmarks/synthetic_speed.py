"""Speed of the synthetic people renderer (lift3d.data.synthetic), one process.

    python -m experiments.benchmarks.synthetic_speed            # 128 and 368 px
    python -m experiments.benchmarks.synthetic_speed --quick    # a few seconds
    python -m experiments.benchmarks.synthetic_speed --presets capsule rich

Every preset of `lift3d.data.synthetic.PRESETS` named in --presets is timed
at every size, in the same process ("capsule" is the original renderer, the
baseline of the ratio column).

Prints a table: images per second (wall clock and CPU time of this process),
the split between sampling the scene and drawing it, and the same through a
grain MapDataset (shuffle + batch). A reference NumPy operation (an in-place
float32 multiply of 1M elements) is timed in the same process, so numbers from
machines under different load can be compared.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from lift3d.data import synthetic


def _poses() -> tuple[np.ndarray, str]:
  """The embedded mocap corpus, or jittered standing poses if it is missing."""
  try:
    from lift3d.data import mocap

    return mocap.load_embedded().poses, "embedded DeepMimic corpus"
  except (ImportError, OSError, ValueError):
    rng = np.random.default_rng(0)
    rest = np.array([
        [0, 0.95, 0], [-0.12, 0.93, 0], [-0.13, 0.5, 0], [-0.14, 0.08, 0], [0.12, 0.93, 0],
        [0.13, 0.5, 0], [0.14, 0.08, 0], [0, 1.18, 0], [0, 1.45, 0], [0, 1.58, 0.08],
        [0, 1.72, 0], [0.18, 1.42, 0], [0.2, 1.15, 0], [0.22, 0.9, 0], [-0.18, 1.42, 0],
        [-0.2, 1.15, 0], [-0.22, 0.9, 0]])
    return (rest + rng.normal(0, 0.05, (256, 17, 3))).astype(np.float32), "procedural poses"


def _reference_op_ms() -> float:
  x = np.ones(1_000_000, np.float32)
  np.multiply(x, x, out=x)
  start = time.perf_counter()
  for _ in range(50):
    np.multiply(x, x, out=x)
  return (time.perf_counter() - start) / 50 * 1e3


def _time(fn, count: int) -> tuple[float, float]:
  """(wall, cpu) seconds per call of fn(i) for i < count."""
  wall, cpu = time.perf_counter(), time.process_time()
  for i in range(count):
    fn(i)
  return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="few images per size")
  parser.add_argument("--sizes", type=int, nargs="+", default=[128, 368])
  parser.add_argument("--presets", nargs="+", default=["capsule", "rich", "rich_occluded"],
                      choices=sorted(synthetic.PRESETS))
  parser.add_argument("--count", type=int, default=None, help="images per size")
  args = parser.parse_args()
  poses, what = _poses()
  cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name")), platform.processor())
  print(f"poses: {what} ({len(poses)}); machine: {os.cpu_count()} cores, {cpu_model}; "
        f"load average {os.getloadavg()[0]:.2f}")
  print(f"reference: 1M-element float32 in-place multiply {_reference_op_ms():.3f} ms")
  print()
  print("| size | preset | images/s (wall) | images/s (CPU) | CPU time vs capsule | scene ms | "
        "draw ms | grain batch-32 images/s |")
  baseline = {}
  print("|---:|---|---:|---:|---:|---:|---:|---:|")
  for size, preset in [(size, preset) for size in args.sizes for preset in args.presets]:
    count = args.count or (max(20, 4000 // size) if args.quick else max(100, 40000 // size))
    source = synthetic.SyntheticPoseSource(poses, image_size=size, seed=0, length=10 * count,
                                           preset=preset)
    source[0]  # warm caches
    wall, cpu = _time(lambda i, s=source: s[i], count)
    scenes = [source.scene(i) for i in range(count)]
    scene_wall, _ = _time(source.scene, count)
    draw_wall, _ = _time(lambda i, sc=scenes: synthetic.render(sc[i]), count)
    grain_rate = float("nan")
    try:
      import grain

      batches = max(1, count // 32)
      dataset = grain.MapDataset.source(source).shuffle(seed=0).batch(32)
      start = time.perf_counter()
      for b in range(batches):
        dataset[b]
      grain_rate = batches * 32 / (time.perf_counter() - start)
    except ImportError:
      pass
    if preset == "capsule":
      baseline[size] = cpu
    ratio = f"{cpu / baseline[size]:.2f}x" if size in baseline else "-"
    print(f"| {size}x{size} | {preset} | {1 / wall:.0f} | {1 / cpu:.0f} | {ratio} | "
          f"{scene_wall * 1e3:.2f} | {draw_wall * 1e3:.2f} | {grain_rate:.0f} |")


if __name__ == "__main__":
  main()
