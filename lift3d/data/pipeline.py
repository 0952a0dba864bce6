"""The CPM's input pipeline on real images: person records -> H36M17 training crops (grain).

    sources = [mpii.data_source(d, "train"), h36m_images.data_source(d, "protocol1", "train")]
    train_source = pipeline.TrainingSource(sources, weights=(1.0, 1.0), seed=0,
                                           options=augment.AugmentOptions(input_size=368))
    lift3d.train.train(model, pose_model, train_source, workdir, worker_count=2, ...)

- Layouts: each record's keypoints (`layout`: "mpii16", "coco17", "h36m17")
  are mapped into H36M17 with `lift3d.skeleton.convert`; a joint the dataset
  lacks (or a derived joint whose parts are not all labelled) is NaN, which
  `lift3d.train.target_maps` turns into weight 0: it gets no loss.
  `drop_estimated=True` also drops the joints a layout only approximates
  (e.g. COCO's head top).
- Mixing: item k of a `TrainingSource` picks a source with probability
  proportional to its weight, a record of it uniformly, and the augmentation
  (`lift3d.data.augment`), all from a Philox stream keyed by (seed, k): the
  item is a pure function of (sources, seed, k), whatever the order of
  access, the sharding or the number of worker processes.
- Workers: items are produced in parallel by grain (threads, or processes
  with `lift3d.train.train(..., worker_count=n)` / `batches(...)` here).

Each item: "image" (S, S, 4) uint8 (RGB and the centre map), "keypoints2d"
(17, 2) float32 crop pixels (NaN unlabelled), "visibility" (17,) float32,
"matrix" (2, 3) float32 (image pixels -> crop pixels),
"source" () int32 and "record" () int64 (where it came from), and with
`with_targets` the belief-map targets "targets" (S/s, S/s, 18) float32 at the
network's stride s.

Shape letters: S crop side, pixels.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from lift3d import skeleton
from lift3d.data import augment

_STREAM = 7  # Philox counter block of the pipeline's draws (any fixed value)


def decode_jpeg(data: bytes, *, max_reduction: int = 1):
  """JPEG bytes -> an RGB PIL image, decoded at up to 1/`max_reduction` of its size.

  JPEG decoders scale by 1/2, 1/4 or 1/8 almost for free (the DCT is
  truncated): a crop that shrinks the person anyway need not decode every
  pixel. Output pixel j of a reduction r averages input pixels j·r .. j·r+r−1,
  so input pixel x maps to (x − (r − 1)/2) / r.

  Args:
    data: the encoded image.
    max_reduction: 1, 2, 4 or 8: the largest reduction allowed.

  Returns:
    (image, reduction): the RGB PIL image and the integer r used.
  """
  from PIL import Image

  image = Image.open(io.BytesIO(bytes(data)))
  reduction = 1
  if max_reduction > 1 and image.format == "JPEG":
    width, height = image.size
    image.draft("RGB", (-(-width // max_reduction), -(-height // max_reduction)))
    reduction = round(width / image.size[0])
  image = image.convert("RGB") if image.mode != "RGB" else image
  return image, reduction


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def to_h36m17(keypoints: np.ndarray, visibility: np.ndarray, layout: str, *,
              drop_estimated: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """A record's joints in H36M17.

  Args:
    keypoints: (J, 2) pixels of the layout, NaN where unlabelled.
    visibility: (J,) in [0, 1].
    layout: a key of `lift3d.skeleton.LAYOUTS`.
    drop_estimated: treat the joints the layout only derives as unlabelled.

  Returns:
    keypoints: (17, 2) float32 pixels, NaN where unlabelled (no loss);
    visibility: (17,) float32, the least visibility of the joints used.
  """
  keypoints = np.asarray(keypoints, np.float32)
  labelled = np.all(np.isfinite(keypoints), axis=-1).astype(np.float32)
  converted = skeleton.convert(keypoints, layout, labelled)
  points = converted.keypoints
  if drop_estimated:
    points = np.where(converted.estimated[:, None], np.nan, points)
  vis = skeleton.convert(np.where(labelled[:, None] > 0, keypoints, 0.0), layout,
                         np.asarray(visibility, np.float32) * labelled).confidence
  vis = np.where(np.all(np.isfinite(points), axis=-1), vis, 0.0)
  return points.astype(np.float32), vis.astype(np.float32)


def person_centre_and_size(box: np.ndarray) -> tuple[np.ndarray, float]:
  """(centre (2,), size) of an x, y, w, h box: its middle and its longer side."""
  box = np.asarray(box, np.float64)
  return box[:2] + box[2:] / 2, float(max(box[2], box[3]))


def _rng(seed: int, index: int) -> np.random.Generator:
  return np.random.Generator(np.random.Philox(key=[int(seed), int(index)],
                                              counter=[0, 0, 0, _STREAM]))


def make_example(record, params: augment.AugmentParams, options: augment.AugmentOptions, *,
                 drop_estimated: bool = False, stride: int | None = None,
                 sigma: float = 1.0) -> dict[str, np.ndarray]:
  """One record -> one crop (see the module docstring for the fields).

  Args:
    record: a person record (`lift3d.data.person_records`).
    params: the augmentation draw.
    options: crop sizes and ranges.
    drop_estimated: see `to_h36m17`.
    stride: if given, add belief-map targets at this stride.
    sigma: their standard deviation, map cells.

  Returns:
    A dict of numpy arrays.
  """
  keypoints, visibility = to_h36m17(record["keypoints"], record["visibility"],
                                    _text(record["layout"]), drop_estimated=drop_estimated)
  centre, size = person_centre_and_size(record["box"])
  # Decode at a reduced size when the crop shrinks the image at least 2×.
  zoom = options.person_fraction * options.input_size / size * params.scale
  allowed = 1
  while allowed < 8 and zoom * allowed * 2 <= 1.0:
    allowed *= 2
  image, r = decode_jpeg(record["image"], max_reduction=allowed)
  to_reduced = np.array([[1.0 / r, 0.0, -(r - 1) / (2 * r)], [0.0, 1.0 / r, -(r - 1) / (2 * r)]])
  out = augment.augment(image, augment.transform_points(keypoints, to_reduced), visibility,
                        augment.transform_points(centre, to_reduced), size / r, params, options)
  # The crop's map from the record's (full-size) pixels.
  matrix = out["matrix"].astype(np.float64)
  out["matrix"] = np.concatenate([matrix[:, :2] @ to_reduced[:, :2],
                                  (matrix[:, :2] @ to_reduced[:, 2] + matrix[:, 2])[:, None]],
                                 axis=1).astype(np.float32)
  if stride is not None:
    cells = options.input_size // stride
    out["targets"] = augment.belief_targets(out["keypoints2d"], cells, cells, stride=stride,
                                            sigma=sigma)
  return out


class TrainingSource:
  """A grain random-access source of augmented crops mixed from several record sources.

  Item k is a pure function of (sources, weights, seed, k) (see the module
  docstring).
  """

  def __init__(self, sources: Sequence, weights: Sequence[float] | None = None, *,
               seed: int = 0, options: augment.AugmentOptions | None = None,
               length: int = 1 << 40, drop_estimated: bool = False,
               target_stride: int | None = None, target_sigma: float = 1.0):
    """Builds the source.

    Args:
      sources: record sources (e.g. `lift3d.data.mpii.data_source(...)`).
      weights: relative sampling weight of each source (default equal).
      seed: with the index, fixes every item.
      options: crop size and augmentation ranges.
      length: number of items (items are drawn with replacement).
      drop_estimated: see `to_h36m17`.
      target_stride: add "targets" belief maps at this stride (None: no).
      target_sigma: their standard deviation, map cells.
    """
    self.sources = list(sources)
    if not self.sources:
      raise ValueError("TrainingSource needs at least one source")
    weights = np.ones(len(self.sources)) if weights is None else np.asarray(weights, np.float64)
    if weights.shape != (len(self.sources),) or np.any(weights < 0) or weights.sum() <= 0:
      raise ValueError(f"expected {len(self.sources)} non-negative weights with a positive "
                       f"sum, got {weights}")
    empty = [i for i, s in enumerate(self.sources) if len(s) == 0 and weights[i] > 0]
    if empty:
      raise ValueError(f"sources {empty} are empty but have positive weights")
    self.cumulative = np.cumsum(weights / weights.sum())
    self.seed, self.length = int(seed), int(length)
    self.options = options or augment.AugmentOptions()
    self.drop_estimated = bool(drop_estimated)
    self.target_stride, self.target_sigma = target_stride, float(target_sigma)

  def __len__(self) -> int:
    return self.length

  def choose(self, index: int) -> tuple[int, int, augment.AugmentParams]:
    """(source, record, augmentation draw) of item `index`."""
    if not 0 <= index < self.length:
      raise IndexError(f"index {index} out of range for a source of length {self.length}")
    rng = _rng(self.seed, index)
    which = int(np.searchsorted(self.cumulative, rng.uniform(), side="right"))
    which = min(which, len(self.sources) - 1)
    record = int(rng.integers(len(self.sources[which])))
    return which, record, augment.sample_params(rng, self.options)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    which, record, params = self.choose(int(index))
    out = make_example(self.sources[which][record], params, self.options,
                       drop_estimated=self.drop_estimated, stride=self.target_stride,
                       sigma=self.target_sigma)
    out["source"] = np.int32(which)
    out["record"] = np.int64(record)
    return out

  def __repr__(self) -> str:
    sizes = [len(s) for s in self.sources]
    return (f"TrainingSource(records={sizes}, weights={np.diff(self.cumulative, prepend=0)}, "
            f"seed={self.seed}, input_size={self.options.input_size})")


class CentredSource:
  """Evaluation crops: record i, centred at scale 1, no augmentation (grain source)."""

  def __init__(self, records, *, input_size: int = 368, person_fraction: float = 0.6,
               drop_estimated: bool = False):
    """Args: records: a record source; input_size, person_fraction: see `AugmentOptions`."""
    self.records = records
    self.options = augment.AugmentOptions.centred(input_size, person_fraction=person_fraction)
    self.drop_estimated = bool(drop_estimated)

  def __len__(self) -> int:
    return len(self.records)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    record = self.records[int(index)]
    out = make_example(record, augment.AugmentParams(), self.options,
                       drop_estimated=self.drop_estimated)
    out["record"] = np.int64(index)
    return out


def batches(source, *, batch_size: int, seed: int = 0, start: int = 0, worker_count: int = 0,
            num_threads: int = 2, prefetch: int = 4, keys: Sequence[str] | None = None):
  """An iterator over batches of `source` from step `start` (as `lift3d.train` reads them).

  Args:
    source: a grain random-access source of dicts.
    batch_size: items per batch.
    seed: the shuffling seed.
    start: first batch.
    worker_count: grain worker processes (0: threads in this process).
    num_threads, prefetch: grain read options.
    keys: keep these keys (default all).

  Returns:
    An iterator of dicts of stacked numpy arrays.
  """
  import grain
  import grain.python as grain_python

  def pick(item):
    return {k: np.asarray(item[k]) for k in (keys or item)}

  dataset = (grain.MapDataset.source(source).shuffle(seed=seed).repeat().map(pick)
             .batch(batch_size, drop_remainder=True))[start:]
  iterable = dataset.to_iter_dataset(
      grain_python.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))
  return iter(with_workers(iterable, worker_count))


def with_workers(iterable, worker_count: int):
  """A grain `IterDataset` produced by `worker_count` processes (0: unchanged).

  The elements and their order do not change. Grain reads absl flags in its
  workers: outside an absl app (tests, notebooks) they are marked parsed, with
  their defaults, first.
  """
  import grain
  from absl import flags

  if worker_count <= 0:
    return iterable
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  return iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(worker_count)))
