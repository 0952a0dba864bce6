"""Training the CPM (docs/method.md §6): loss, state, a data-parallel jitted step, the loop.

- Loss: Σ over stages t and maps l of ||f_tl − b*_l||² (summed over the map
  grid, averaged over the batch), with `b*_l` a Gaussian at the ground-truth
  2D landmark and the background target `1 − max_l b*_l` (as in CPM).
  **(choice)** Every *labelled* landmark counts, hidden (occluded) or outside
  the image included: its position is known, a CPM should infer hidden joints
  from context (as on the paper's datasets, whose occluded joints are
  annotated), and a joint outside the image simply has a (near) zero target.
  Unlabelled landmarks (NaN, e.g. an image without a person) have weight 0;
  `mask_invisible=True` also weights each landmark by its visibility, for data
  whose invisible joints carry unreliable labels. The background term always
  counts, so an image without a person teaches all-background maps. Only 2D
  labels are used.
- Data parallel: one `jax.sharding.Mesh` axis "data" over all devices (of all
  hosts); the batch is sharded along it and the state is replicated, so the
  same jitted step runs on one CPU, several GPUs/TPUs, or several processes
  (hosts) after `initialize_distributed`. Each process reads only its rows of
  every global batch (`batch_dataset` with grain's `ShardOptions` by process
  index) and `jax.make_array_from_process_local_data` assembles the global
  batch; metrics, logs and the progress bar come from process 0; every
  process takes part in saving and restoring the (orbax) checkpoints.
- Data order: batch `s` is element `s` of a grain `MapDataset` (shuffled per
  epoch with a fixed seed, repeated, batched), so resuming at step `s` reads
  exactly what an uninterrupted run would read; there is no iterator state.
  The global batch of a step is the same for any number of processes.
- Mixed precision (`dtype="bfloat16"`): the CNN computes in bfloat16 with
  float32 parameters and optimiser state; the lifting, fusion and loss stay
  float32.
- orbax `CheckpointManager` under `<workdir>/checkpoints` (periodic, atomic:
  orbax writes to a temporary directory and renames it); `train` resumes from
  the latest checkpoint by default. Metrics: `<workdir>/metrics.jsonl`, one
  JSON object per logged step.

Shape letters: B batch, S stages, H, W map grid, L landmarks.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import flax.struct
import grain
import grain.python as grain_python
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lift3d.data import pipeline
from lift3d.models import belief_maps, cpm
from lift3d.pose_model.model import PoseModel
from lift3d.progress import bar as progress_bar

BATCH_KEYS = ("image", "keypoints2d", "visibility")
SCHEDULES = ("constant", "cosine", "warmup_cosine")
OPTIMIZERS = ("adam", "adamw", "sgd")
# Computation dtypes of the CNN (`train(dtype=...)`); parameters, optimiser
# state, lifting and loss stay float32.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training (and is checkpointed).

  Attributes:
    step: () int32, number of completed steps.
    params: the CPM's parameters.
    opt_state: the optax optimiser state.
  """

  step: jax.Array
  params: Any
  opt_state: Any


def make_optimizer(
    *,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    schedule: str = "warmup_cosine",
    warmup_steps: int = 0,
    num_steps: int = 1000,
    weight_decay: float = 0.0,
    grad_clip: float = 0.0,
) -> optax.GradientTransformation:
  """The optax optimiser and learning-rate schedule.

  Equal settings give the same (cached) object, and so the same compiled step.

  Args:
    optimizer: "adam", "adamw" (with `weight_decay`) or "sgd" (momentum 0.9).
    learning_rate: peak learning rate.
    schedule: "constant", "cosine" (decay to 0 over `num_steps`) or
      "warmup_cosine" (linear warm-up over `warmup_steps`, then cosine).
    warmup_steps: warm-up length, steps.
    num_steps: total steps (the cosine decay length).
    weight_decay: decoupled weight decay (adamw only).
    grad_clip: clip the global gradient norm to this (0: no clipping).

  Returns:
    An `optax.GradientTransformation`.
  """
  if schedule == "constant":  # the lengths do not matter: share the cache entry
    warmup_steps = num_steps = 0
  return _make_optimizer(optimizer, float(learning_rate), schedule, int(warmup_steps),
                         int(num_steps), float(weight_decay), float(grad_clip))


@functools.cache
def _make_optimizer(optimizer, learning_rate, schedule, warmup_steps, num_steps, weight_decay,
                    grad_clip):
  if schedule == "constant":
    lr = optax.constant_schedule(learning_rate)
  elif schedule == "cosine":
    lr = optax.cosine_decay_schedule(learning_rate, max(num_steps, 1))
  elif schedule == "warmup_cosine":
    lr = optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, max(warmup_steps, 1), max(num_steps, warmup_steps + 1)
    )
  else:
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
  if optimizer == "adam":
    tx = optax.adam(lr)
  elif optimizer == "adamw":
    tx = optax.adamw(lr, weight_decay=weight_decay)
  elif optimizer == "sgd":
    tx = optax.sgd(lr, momentum=0.9)
  else:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
  if grad_clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
  return tx


def target_maps(
    keypoints: jax.Array, visibility: jax.Array, height: int, width: int, *, stride: int,
    sigma: float, mask_invisible: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """Gaussian target maps `b*` and per-map loss weights.

  Args:
    keypoints: (B, L, 2) ground-truth landmarks, image pixels (x right, y down);
      NaN where there is no label.
    visibility: (B, L) in [0, 1], 0 for joints hidden or outside the image.
    height: map height H (cells).
    width: map width W (cells).
    stride: input pixels per map cell.
    sigma: Gaussian standard deviation, map cells.
    mask_invisible: weight each landmark by its visibility (else every
      labelled landmark has weight 1).

  Returns:
    targets: (B, H, W, L+1) landmark maps (zero where unlabelled), then the
      background `1 − max_l`.
    weights: (B, L+1) per landmark (0 where unlabelled), then 1 for the
      background.
  """
  labelled = jnp.all(jnp.isfinite(keypoints), axis=-1)
  # A missing label (NaN, e.g. no person) gets an all-zero target, weight 0.
  grid = belief_maps.pixels_to_grid(jnp.where(labelled[..., None], keypoints, 0.0), stride)
  landmarks = belief_maps.gaussian_maps(grid, height, width, sigma)
  landmarks = jnp.where(labelled[..., None, None, :], landmarks, 0.0)
  background = 1.0 - jnp.max(landmarks, axis=-1, keepdims=True)
  if mask_invisible:
    weight = jnp.where(labelled, visibility, 0.0)
  else:
    weight = labelled.astype(landmarks.dtype)
  weights = jnp.concatenate([weight, jnp.ones_like(weight[..., :1])], axis=-1)
  return jnp.concatenate([landmarks, background], axis=-1), weights


def cpm_loss(fused: jax.Array, targets: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The loss Σ_t Σ_l w_l ||f_tl − b*_l||², averaged over the batch.

  Args:
    fused: (S, B, H, W, L+1) fused maps of every stage.
    targets: (B, H, W, L+1) target maps.
    weights: (B, L+1) per-map weights.

  Returns:
    loss: () the total.
    per_stage: (S,) each stage's share.
  """
  squared = jnp.square(fused - targets[None]) * weights[None, :, None, None, :]
  per_stage = jnp.sum(squared, axis=(2, 3, 4)).mean(axis=1)
  return jnp.sum(per_stage), per_stage


def loss_fn(params, model: cpm.CPM, pose_model: PoseModel, batch: Mapping[str, jax.Array],
            mask_invisible: bool = False):
  """Loss of `model` with `params` on a batch; returns (loss, aux metrics).

  Args:
    params: the CPM's parameters.
    model: the `CPM` module.
    pose_model: the pose model for the lifting.
    batch: "image" (B, H, W, C) uint8 (C = `model.channels`), "keypoints2d"
      (B, L, 2) pixels y down, "visibility" (B, L).
    mask_invisible: see `target_maps`.

  Returns:
    loss: () float32.
    aux: dict of "stage_loss" (S,), "stage_valid" (S,) fraction of valid
      lifts, "fusion_weight" () mean ω.
  """
  output = model.apply({"params": params}, batch["image"], pose_model)
  height, width = output.fused.shape[2], output.fused.shape[3]
  targets, weights = target_maps(
      batch["keypoints2d"].astype(jnp.float32), batch["visibility"].astype(jnp.float32),
      height, width, stride=model.stride, sigma=model.sigma, mask_invisible=mask_invisible,
  )
  loss, per_stage = cpm_loss(output.fused, targets, weights)
  aux = {
      "stage_loss": per_stage,
      "stage_valid": jnp.mean(output.stage_valid.astype(jnp.float32), axis=1),
      "fusion_weight": jnp.mean(output.fusion_weight),
  }
  return loss, aux


def _train_step(state: TrainState, batch, pose_model, *, model: cpm.CPM, tx, mask_invisible):
  (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params, model, pose_model, batch, mask_invisible
  )
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {
      "loss": loss,
      "grad_norm": optax.global_norm(grads),
      # Per top-level module (trunk convolutions, stage_t, fusion_logits).
      "module_grad_norm": {name: optax.global_norm(g) for name, g in grads.items()},
      **aux,
  }
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


@functools.cache
def make_train_step(model: cpm.CPM, tx: optax.GradientTransformation, mesh: Mesh,
                    mask_invisible: bool = False):
  """The jitted, data-parallel training step (cached per model, optimiser, mesh).

  Args:
    model: the `CPM` module.
    tx: the optimiser (from `make_optimizer`).
    mesh: a mesh with one axis "data"; the batch is sharded over it, the state
      and the pose model are replicated.
    mask_invisible: see `target_maps`.

  Returns:
    `step(state, batch, pose_model) -> (state, metrics)`.
  """
  replicated = NamedSharding(mesh, PartitionSpec())
  sharded = NamedSharding(mesh, PartitionSpec("data"))
  return jax.jit(
      functools.partial(_train_step, model=model, tx=tx, mask_invisible=mask_invisible),
      in_shardings=(replicated, sharded, replicated),
      out_shardings=(replicated, replicated),
  )


def create_train_state(model: cpm.CPM, tx: optax.GradientTransformation, key: jax.Array,
                       image_shape: tuple[int, int], pose_model: PoseModel,
                       mesh: Mesh) -> TrainState:
  """Initial `TrainState`, replicated over `mesh` (as the training step returns it).

  Args:
    model: the `CPM` module.
    tx: the optimiser.
    key: a jax.random key for the initial parameters.
    image_shape: (H, W) pixels.
    pose_model: the pose model (only its shapes matter here).
    mesh: the data-parallel mesh.

  Returns:
    The state at step 0, placed like the step's outputs (so that the step's
    first and later calls share one compilation).
  """
  params = cpm.init(model, key, image_shape, pose_model)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
  return replicate(state, mesh)


def replicate(tree, mesh: Mesh):
  """Places a pytree of arrays, equal on every process, on every device of `mesh`.

  Unlike `jax.device_put` onto a mesh of several processes, no process talks
  to another: each fills its own devices from its own copy.

  Args:
    tree: a pytree of arrays (host or device), the same on every process.
    mesh: the mesh (of all processes' devices).

  Returns:
    The pytree of global arrays, replicated over `mesh`.
  """
  sharding = NamedSharding(mesh, PartitionSpec())

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(put, tree)


def data_mesh(devices=None) -> Mesh:
  """A one-axis ("data") mesh over `devices` (default: all devices of all hosts).

  The default orders the devices by process, so that each process's devices
  hold one contiguous block of the batch (its rows, see `batch_dataset`).
  """
  if devices is None:
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  return Mesh(np.asarray(devices), ("data",))


# Environment variables read by `initialize_distributed` (besides those of JAX
# and of the cluster: JAX_COORDINATOR_ADDRESS, SLURM, TPU pods);
# experiments/launch_local.py sets them for its processes.
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def initialize_distributed(enabled: bool = True) -> None:
  """Multi-host setup: `jax.distributed.initialize()` when `enabled`.

  Call it first thing, before any other JAX computation. The coordinator and
  process ids come from the cluster (TPU pods, SLURM, ... as JAX detects
  them) or from the environment: JAX_COORDINATOR_ADDRESS (host:port of
  process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID. Collectives between CPU
  processes go through gloo. Calling it again is a no-op.

  An uncaught exception then ends the process at once (exit code 1, after
  its traceback), so that its launcher sees which process failed: otherwise
  JAX's exit-time barrier keeps it alive until the others fail in turn.

  Args:
    enabled: False does nothing (one process).

  Raises:
    ValueError: if JAX_NUM_PROCESSES or JAX_PROCESS_ID is not an integer.
  """
  if not enabled or jax.distributed.is_initialized():
    return
  kwargs = {}
  for name, key in ((ENV_NUM_PROCESSES, "num_processes"), (ENV_PROCESS_ID, "process_id")):
    value = os.environ.get(name)
    if value is not None:
      try:
        kwargs[key] = int(value)
      except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None
  # Cross-process collectives of the CPU backend (the default from jax 0.5 on,
  # set here for clarity); without it CPU processes cannot all-reduce.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  sys.excepthook = _exit_at_once_after(sys.excepthook)
  logging.info(
      "distributed: process %d of %d, %d local / %d global devices",
      jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count(),
  )


def _exit_at_once_after(excepthook):
  def hook(kind, value, traceback):
    excepthook(kind, value, traceback)
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130 if issubclass(kind, KeyboardInterrupt) else 1)

  return hook


def batch_dataset(
    source, *, batch_size: int, seed: int, shard_options: grain_python.ShardOptions | None = None
) -> grain.MapDataset:
  """This host's batches: element `s` is its part of the batch of step `s`.

  The examples are shuffled (a new permutation every epoch) and cut into
  global batches of `batch_size * shard_count`; shard `p` of `P` takes rows
  `[p * batch_size, (p + 1) * batch_size)` of every global batch and reads
  only those examples. So the global batch of a step does not depend on the
  number of hosts, and host `p`'s rows are where
  `jax.make_array_from_process_local_data` puts process `p`'s data on a mesh
  over `jax.devices()`.

  Args:
    source: a grain random-access source (`__len__`, `__getitem__`) whose items
      are dicts with at least "image" (H, W, 3) uint8, "keypoints2d" (L, 2)
      pixels y down and "visibility" (L,).
    batch_size: examples per batch on this host.
    seed: shuffling seed.
    shard_options: which shard (host) this is (default: the only one).

  Returns:
    An infinite `grain.MapDataset` of dicts of stacked numpy arrays.
  """
  if len(source) == 0:
    raise ValueError("the data source is empty")
  shard = shard_options or grain_python.NoSharding()
  if len(source) < batch_size * shard.shard_count:
    raise ValueError(
        f"the global batch of {batch_size * shard.shard_count} exceeds the source's "
        f"{len(source)} examples"
    )
  # Batching a MapDataset is lazy: picking every P-th block of `batch_size`
  # consecutive examples reads only this host's examples.
  blocks = (
      grain.MapDataset.source(source)
      .shuffle(seed=seed)
      .repeat()
      .map(lambda item: {k: np.asarray(item[k]) for k in BATCH_KEYS})
      .batch(batch_size, drop_remainder=True)
  )
  return blocks[shard.shard_index :: shard.shard_count]


def _global_batch(batch: Mapping[str, np.ndarray], sharding: NamedSharding):
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


class MetricsWriter:
  """Appends one JSON object per logged step to `<workdir>/metrics.jsonl`."""

  def __init__(self, workdir: str, start_step: int):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = jax.process_index() == 0
    if self.enabled and os.path.exists(self.path):
      # Resuming: drop records after the checkpoint (they will be recomputed),
      # and a last line a killed run left unfinished (no newline).
      with open(self.path) as f:
        keep = [line for line in f
                if line.strip() and line.endswith("\n") and json.loads(line)["step"] <= start_step]
      with open(self.path, "w") as f:
        f.writelines(keep)

  def write(self, record: Mapping[str, Any]) -> None:
    """Appends `record` as one JSON line (on process 0 only; other processes do nothing).

    Args:
      record: JSON-able values, with an int "step" (resuming keeps the lines
        with step <= the checkpoint's).
    """
    if self.enabled:
      with open(self.path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _to_python(value):
  if isinstance(value, Mapping):
    return {k: _to_python(v) for k, v in value.items()}
  value = np.asarray(value)
  return value.item() if value.ndim == 0 else value.tolist()


def train(
    model: cpm.CPM,
    pose_model: PoseModel,
    source,
    workdir: str,
    *,
    num_steps: int,
    batch_size: int,
    seed: int = 0,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    schedule: str = "warmup_cosine",
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    grad_clip: float = 0.0,
    mask_invisible: bool = False,
    dtype: str = "float32",
    log_every: int = 10,
    ckpt_every: int = 100,
    max_to_keep: int = 2,
    num_threads: int = 2,
    prefetch: int = 4,
    worker_count: int = 0,
    progress: bool = True,
    time_limit_s: float | None = None,
    stop_at_step: int | None = None,
    initial_params=None,
) -> TrainState:
  """Trains `model` on `source`, resuming from `<workdir>/checkpoints` if present.

  Stopping (or killing) the run and calling `train` again with the same
  arguments continues from the last checkpoint and gives the same parameters
  as an uninterrupted run.

  Args:
    model: the `CPM` module.
    pose_model: the pose model for the lifting (fixed).
    source: a grain random-access source of examples (see `batch_dataset`);
      all images of one size, a multiple of `model.stride`.
    workdir: output directory (checkpoints, metrics.jsonl).
    num_steps: total training steps (including those already done).
    batch_size: global batch size, a multiple of the device count.
    seed: initialisation and data-order seed.
    optimizer, learning_rate, schedule, warmup_steps, weight_decay, grad_clip:
      see `make_optimizer`.
    mask_invisible: see `target_maps`.
    dtype: computation dtype of the CNN, "float32" or "bfloat16" (mixed
      precision: float32 parameters, optimiser state, lifting and loss).
    log_every: log metrics every this many steps (and at the last step).
    ckpt_every: checkpoint every this many steps (and at the last step).
    max_to_keep: checkpoints kept.
    num_threads: grain reader threads (examples are produced in parallel).
    prefetch: batches read ahead.
    worker_count: grain worker processes producing the batches (0: the
      `num_threads` threads of this process); the batches are the same.
    progress: show a tqdm progress bar.
    time_limit_s: stop (with a checkpoint) once this much wall time has been
      spent in this call; a later call continues the run.
    stop_at_step: leave the loop after this step *without* a final checkpoint,
      exactly like a run killed there (for tests of resuming).
    initial_params: start from these parameters (e.g. `restore_params` of
      another run: fine-tuning) instead of a fresh initialisation; ignored
      when resuming from the workdir's checkpoint.

  Returns:
    The final `TrainState` (replicated over the mesh's devices).
  """
  if num_steps < 0:
    raise ValueError(f"num_steps must be >= 0, got {num_steps}")
  if batch_size % jax.device_count() or batch_size % jax.process_count():
    raise ValueError(
        f"batch_size {batch_size} is not a multiple of the {jax.device_count()} devices "
        f"(of {jax.process_count()} processes)"
    )
  if dtype not in DTYPES:
    raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
  if DTYPES[dtype] != model.dtype:
    model = model.clone(dtype=DTYPES[dtype])
  cpm.check_pose_model(pose_model, model)
  first_shape = tuple(np.shape(source[0]["image"]))
  cpm.check_images(np.zeros((1, *first_shape), np.uint8), model)  # size and channels
  image_shape = first_shape[:2]
  os.makedirs(workdir, exist_ok=True)

  mesh = data_mesh()
  replicated = NamedSharding(mesh, PartitionSpec())
  sharded = NamedSharding(mesh, PartitionSpec("data"))
  tx = make_optimizer(
      optimizer=optimizer, learning_rate=learning_rate, schedule=schedule,
      warmup_steps=warmup_steps, num_steps=num_steps, weight_decay=weight_decay,
      grad_clip=grad_clip,
  )
  step_fn = make_train_step(model, tx, mesh, bool(mask_invisible))

  state = create_train_state(model, tx, jax.random.key(seed), image_shape, pose_model, mesh)
  if initial_params is not None:
    if jax.tree.structure(initial_params) != jax.tree.structure(state.params) or any(
        np.shape(a) != np.shape(b)
        for a, b in zip(jax.tree.leaves(initial_params), jax.tree.leaves(state.params),
                        strict=True)):
      raise ValueError("initial_params do not fit the model (another architecture or input "
                       "channels?); start from a checkpoint of the same configuration")
    params = jax.tree.map(lambda p, like: np.asarray(p, like.dtype), initial_params,
                          state.params)
    # `replicate`, as `create_train_state`: no cross-process device_put.
    state = replicate(TrainState(step=state.step, params=params, opt_state=tx.init(params)),
                      mesh)
  pose_model = jax.device_put(pose_model, replicated)

  manager = ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(
          save_interval_steps=max(ckpt_every, 1), max_to_keep=max_to_keep, create=True
      ),
  )
  latest = manager.latest_step()
  if latest is not None:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    state = manager.restore(latest, args=ocp.args.StandardRestore(abstract))
    logging.info("resumed from %s at step %d", manager.directory, latest)
  start = int(state.step)
  writer = MetricsWriter(workdir, start)

  shard_options = grain_python.ShardOptions(
      shard_index=jax.process_index(), shard_count=jax.process_count(), drop_remainder=True
  )
  dataset = batch_dataset(
      source, batch_size=batch_size // jax.process_count(), seed=seed,
      shard_options=shard_options,
  )
  iterable = dataset[start:].to_iter_dataset(
      grain_python.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  )
  batches: Iterator = iter(pipeline.with_workers(iterable, worker_count))

  bar = progress_bar(
      total=num_steps, initial=start, disable=not progress or jax.process_index() != 0,
      desc="train", unit="step",
  )
  started = tick = time.perf_counter()
  tick_step = start
  # On any exit (Ctrl-C included) the checkpoint in flight is finished and orbax
  # shut down cleanly, so a rerun resumes from the latest step saved.
  try:
    for step in range(start, num_steps):
      batch = _global_batch(next(batches), sharded)
      state, metrics = step_fn(state, batch, pose_model)
      if step == start:
        # The first step compiles (seconds to minutes): leave it out of the
        # bar's elapsed time and rate, whose estimate of the time left would
        # otherwise assume every step takes as long.
        bar.unpause()
      done = step + 1
      if done % max(log_every, 1) == 0 or done == num_steps:
        metrics = jax.device_get(metrics)
        now = time.perf_counter()
        steps_per_s = (done - tick_step) / max(now - tick, 1e-9)
        tick, tick_step = now, done
        record = {"step": done, **{k: _to_python(v) for k, v in metrics.items()}}
        record["steps_per_s"] = steps_per_s
        record["images_per_s"] = steps_per_s * batch_size
        writer.write(record)
        # (Shown at the bar's next timed refresh, with its rate updated: a
        # refresh here would print the rate of the last one.)
        bar.set_postfix(loss=f"{record['loss']:.4g}", steps_per_s=f"{steps_per_s:.3g}",
                        refresh=False)
        if not np.isfinite(record["loss"]):
          # Stop before the diverged parameters are checkpointed over good ones.
          kept = manager.latest_step()
          raise FloatingPointError(
              f"training diverged: loss {record['loss']} at step {done}; "
              + (f"the checkpoint of step {kept} is kept" if kept is not None
                 else "no checkpoint was written")
              + " (lower the learning rate or check the data)")
      out_of_time = _out_of_time(started, time_limit_s, done, log_every)
      if done % max(ckpt_every, 1) == 0 or done == num_steps or out_of_time:
        manager.save(done, args=ocp.args.StandardSave(state), force=True)
      bar.update(1)
      if out_of_time:
        logging.info("time limit of %.0f s reached at step %d", time_limit_s, done)
        break
      if stop_at_step is not None and done >= stop_at_step:
        break
  finally:
    bar.close()
    manager.wait_until_finished()
    manager.close()
  return state


def _out_of_time(started: float, time_limit_s: float | None, step: int, log_every: int) -> bool:
  """Whether to stop after `step` for the time limit, the same on every process."""
  if time_limit_s is None:
    return False
  if jax.process_count() == 1:
    return time.perf_counter() - started > time_limit_s
  # The checkpoint and every later step are collective: all processes must
  # stop at the same step, so process 0's clock decides, every `log_every`
  # steps (one small broadcast).
  if step % max(log_every, 1):
    return False
  from jax.experimental import multihost_utils

  late = np.asarray(time.perf_counter() - started > time_limit_s)
  return bool(multihost_utils.broadcast_one_to_all(late))


def restore_params(workdir: str, step: int | None = None):
  """The parameters of the latest (or given) checkpoint under `workdir`.

  Args:
    workdir: a training workdir.
    step: the checkpoint step (default: the latest).

  Returns:
    The `params` pytree (numpy-backed arrays on the default device).
  """
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    raise ValueError(f"no checkpoints under {workdir!r}; train first")
  with ocp.CheckpointManager(directory) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise ValueError(f"no checkpoints under {directory!r}; train first")
    restored = manager.restore(step, args=ocp.args.StandardRestore())
  return restored["params"]
