"""Temporally coherent lifting of video: a path over the lifting grid, then smoothing.

Per-frame lifting (METHOD §4) scores every (component k, yaw θ_t) of its grid
for each frame independently. Consecutive frames of a video show the same
person, so `lift_sequence` chooses the whole sequence at once:

1. **Path.** The per-frame scores `C_f(k, t)` (negative log posterior, nats,
   `lift3d.lifting.grid_scores`) plus transition costs, minimised over all
   paths by Viterbi (`lax.scan` forward, then backward),
   exact on the grid. A yaw change Δ (wrapped to (−π, π]) costs
   `min(½ (Δ / yaw_rate)², yaw_jump)`: a Gaussian random walk of step
   `yaw_rate` radians per frame, truncated so that a sudden turn (or a
   front/back flip of the 2D evidence) costs at most `yaw_jump`. A component
   switch costs `component_switch`. Since the quadratic exceeds `yaw_jump`
   beyond a band of W bins, each forward step needs only the 2W + 1 shifted
   copies of the previous costs and one minimum per component: O(K·T·W) a
   frame, values only (and their minimum over the components), each frame's
   less the previous frame's minimum so that float32 stays exact on long
   videos (the total adds the minima back); the backward
   pass recovers each frame's predecessor from the stored values for the one
   state the path is in: the best within its component or the best switch,
   O(T + K) a frame (among equally good predecessors it stays in the component).
2. **Yaw.** The path's yaws are refined below the grid spacing by a parabola
   through the three scores around each, whose curvature κ_f is the frame's
   yaw information; the unwrapped yaws are then smoothed with the same random
   walk, `Σ ½ κ_f (θ_f − θ̂_f)² + Σ ½ (θ_f − θ_{f−1})² / yaw_rate²`
   (a tridiagonal least squares; not across a jump).
3. **Scale and coefficients.** At the chosen (k_f, θ_f) each frame is the
   linear least squares of METHOD §4 in `c_f = (s, s·a)`, data weighted by
   visibility², translation eliminated, Tikhonov prior Λ_k. The frames are
   coupled by `smoothing · Σ_f (c_f − c_{f−1})ᵀ Λ̃_k (c_f − c_{f−1})`, with
   Λ̃_k = Λ_k on the coefficients and their mean on the scale (only the scale
   is coupled across a component switch): a block-tridiagonal system, solved
   exactly by block elimination (`lax.scan` forward and backward). Frames
   with hidden joints borrow from their neighbours; frames with none take
   theirs from them.
4. **Blend** (`reconstruction="blend"`, the default, as `lift`'s): each
   joint's image-plane coordinates move part of the way (`blend_weight`) to
   the observation, back-projected with the frame's scale, keeping the model's
   depth; the pose is then scaled back to the model pose's size. The offsets
   to the observations are first smoothed over time per joint
   (`Σ_f w_fl (o_fl − r_fl)² + blend_smoothing Σ_f (o_fl − o_{f−1,l})²`, a
   tridiagonal least squares), so that the 2D noise averages out while the
   model's slowly varying misfit is kept, and hidden joints take their
   neighbours' offset (`blend_hidden` of it).
5. **One skeleton** (`fixed_bones=True`, the default). A video shows one
   person, whose bones keep their lengths and whose left and right limbs
   match; the frames' poses do not (each is the model's pose at the training
   size). Every bone is set to its mean length over the sequence's
   plausible frames, left and right averaged, keeping each bone's direction
   and the root (the poses rebuilt from the root outwards). On the held-out
   test videos this lowers MPJPE by about 2% (RESULTS.md, issue 16). (The
   median length was within 0.15 mm of the mean on validation videos, and
   XLA's CPU sort of the lengths cost 15% of the whole call.)

The 2D poses are normalised with one size for the whole sequence (the median
of the per-frame RMS radii), so that the scale is comparable across frames.
Frames `lift` could not lift (fewer than `min_visible` visible joints) get
their pose from their neighbours; they are `valid=False` only in a run of
more than `max_gap` such frames (or when the sequence has no usable frame).

Prior constants (s̄, σ_obs², Λ) follow `lift3d.lifting` (its module docstring).
The default weights were chosen on held-out clips
(experiments/benchmarks/sequence_eval.py, RESULTS.md).

Shape letters: F frames, L joints, J basis vectors, P = J + 1, K components,
T yaws.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from lift3d import _compile, camera
from lift3d._precision import float32_matmuls
from lift3d.lifting import (
    MAX_RESIDUAL,
    MAX_SIZE_ERROR,
    LiftResult,
    grid_scores,
    max_mahalanobis,
)
from lift3d.lifting.api import (
    _bucket,
    _check_model,
    _default_threads,
    _empty_result,
    _group_layout,
    _in_threads,
    _join_groups,
    _limb_norm,
    _prior,
    _split_groups,
    first_frames,
    pad_frames,
)
from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import H36M17

# Chosen by held-out validation (experiments/benchmarks/sequence_eval.py
# --accel_cap 0.25: a coordinate search over all seven weights, two sweeps, on
# 60 videos of the default job's validation clips, CMU and HDM05 actor "tr",
# 30 fps, default pose model K = 9, J = 14 with its calibrated prior), minimising
# MPJPE among the weights whose acceleration error is at most a quarter of
# per-frame `lift`'s (half of issue 16's bound); RESULTS.md, issue 16. At 30 fps;
# `frame_rate_weights` converts them for other frame rates. (The previous
# defaults, chosen on MPJPE + acceleration error: component_switch 100,
# smoothing 100, blend_smoothing 10.) Searched again with step 5 (one skeleton
# per sequence): on 180 videos (3 per validation clip) the same weights; on
# the 60 videos component_switch 100 instead of 20, by 0.19 mm, which the 180
# videos reverse (by 0.42 mm); RESULTS.md.
DEFAULT_YAW_RATE = 0.05  # radians per frame
DEFAULT_YAW_JUMP = 100.0  # nats
DEFAULT_COMPONENT_SWITCH = 20.0  # nats
DEFAULT_SMOOTHING = 30.0
DEFAULT_MAX_GAP = 30  # frames
# A call's default groups of videos run in threads at once (`threads`) hold at
# least this many (padded) frames each. Two threads against one call on the
# 2-core CPU (K = 9, J = 14; median of 15 interleaved rounds; RESULTS.md,
# session 17): 0.88x for 2 videos of 256 frames, 0.94x for 4, 1.05x for 8,
# 1.26x for 16; 1.31x for 2 videos of 1,024 frames.
_GROUP_FRAMES = 1024
# Grid yaws of `lift_sequence` at the default yaw_rate (`lift` keeps 100). The
# path's yaws are refined below the grid spacing (step 2 of the module
# docstring), so a coarse grid loses nothing measurable at 30 fps: with one
# skeleton per video (step 5), validation MPJPE at T = 32 / 48 / 64 / 100 was
# 65.77 / 65.97 / 65.90 / 65.93 mm on 180 videos (sequence_eval's clips, K = 9,
# J = 14) and 64.37 / 64.49 / 64.38 / 64.46 on 60, while the grid costs in
# proportion to T and the Viterbi to T times its band (lift_sequence 1.17x
# faster at 32 than at 64, median of 15 interleaved rounds, 2-core CPU). At a
# higher frame rate the grid is finer in proportion (`default_num_yaws`); a
# grid finer than that still gained a little at 60 fps (RESULTS.md, issue 16).
# (Until session 15: 64, when T = 32 had measured 0.29 mm worse.)
DEFAULT_NUM_YAWS = 32


VALIDATED_FRAME_RATE = 30.0  # frames per second of the clips the defaults were chosen on
# `frame_rate_weights` scales the smoothing weights by (rate / 30 fps) to this
# power: between a steady motion's 2 and a random walk's 1, chosen on validation
# videos at 15-120 fps (its docstring).
SMOOTHING_RATE_EXPONENT = 1.5


# The blend (step 4).
DEFAULT_BLEND_WEIGHT = 1.0
DEFAULT_BLEND_SMOOTHING = 3.0
DEFAULT_BLEND_HIDDEN = 1.0


def frame_rate_weights(frame_rate: float) -> dict:
  """The default temporal weights of `lift_sequence` for a video at `frame_rate`.

  The defaults were validated at 30 fps. At F times that rate the same motion
  changes 1/F as much between frames while the frames (the data) are F times
  as many. yaw_rate / F keeps the walk's cost of a steady turn per frame, and
  max_gap × F the same duration (1 s); yaw_jump and component_switch are costs
  per event and do not change. The smoothing weights (smoothing and
  blend_smoothing) lie between two closed forms: × F² keeps the cost of a
  steady motion (first differences ∝ 1/F) per frame, × F that of a random walk
  (variance of the differences ∝ 1/F). They are scaled by F^1.5, the
  geometric mean of the two (`SMOOTHING_RATE_EXPONENT`), chosen on the validation
  videos resampled to 15, 20, 24, 60 and 120 fps (180 videos at each, K = 9,
  J = 14): MPJPE against × F² −0.26 ± 0.03, −0.10 ± 0.02, −0.04 ± 0.01,
  −0.01 ± 0.03 and −0.16 ± 0.05 mm. × F was better still at 15 and 20 fps (by
  0.08 and 0.02 mm) but 0.11 ± 0.05 mm worse than × F² at 60 fps, so 1.5 is
  the best single exponent (RESULTS.md). The acceleration error moves the
  other way above 30 fps (8.6 against 7.7 mm/frame² at 60 fps, per-frame
  `lift` 81).
  `lift_sequence`'s default grid follows the yaw_rate (`default_num_yaws`).

  Args:
    frame_rate: frames per second, > 0.

  Returns:
    A dict of `lift_sequence` keywords: yaw_rate (radians per frame),
    smoothing, blend_smoothing, max_gap (frames).
  """
  if not (math.isfinite(float(frame_rate)) and float(frame_rate) > 0):
    raise ValueError(f"frame_rate must be a finite number > 0, got {frame_rate}")
  ratio = float(frame_rate) / VALIDATED_FRAME_RATE
  smoothing = ratio**SMOOTHING_RATE_EXPONENT
  return {"yaw_rate": DEFAULT_YAW_RATE / ratio, "smoothing": DEFAULT_SMOOTHING * smoothing,
          "blend_smoothing": DEFAULT_BLEND_SMOOTHING * smoothing,
          "max_gap": max(1, round(DEFAULT_MAX_GAP * ratio))}


def default_num_yaws(yaw_rate: float) -> int:
  """`lift_sequence`'s default T for a yaw walk of `yaw_rate` radians per frame.

  `DEFAULT_NUM_YAWS` (32) at the validated `DEFAULT_YAW_RATE` or above, and
  in proportion to `DEFAULT_YAW_RATE / yaw_rate` below it (rounded up), so
  that a move of one bin costs the walk at most what it costs with the
  defaults (½ (2π/32 / 0.05)² ≈ 7.7 nats). Measured on validation videos
  rendered at 60 fps with the weights of `frame_rate_weights(60)`: 62.72 mm
  MPJPE at this rule's T = 64, 62.57 at 96 and 62.51 at 128 (180 videos;
  at 120 fps, 60 videos: 62.60 at 128, 62.52 at 256; RESULTS.md): pass a
  larger `num_yaws` for the last 0.3%.

  Args:
    yaw_rate: radians per frame, > 0.

  Returns:
    T, at least `DEFAULT_NUM_YAWS`.
  """
  if not (math.isfinite(float(yaw_rate)) and float(yaw_rate) > 0):
    raise ValueError(f"yaw_rate must be a finite number > 0, got {yaw_rate}")
  # (The 1e-9 keeps a ratio that float rounding puts just above an integer on it.)
  return max(DEFAULT_NUM_YAWS,
             math.ceil(DEFAULT_NUM_YAWS * (DEFAULT_YAW_RATE / float(yaw_rate)) - 1e-9))


# ---------------------------------------------------------------------------
# The time scans.


# Steps of each time scan that one loop iteration runs off the CPU (static). On
# an accelerator every scan step costs kernel launches whatever its arithmetic,
# and unrolling lets XLA fuse consecutive steps: measured on an H100 (K = 9,
# J = 14, unweighted), these values made `lift_sequence` 1.98x faster on 64
# sequences of 256 frames and 1.31x on 1,024 (rolled, 41.2 and 154.9 ms). On
# the CPU unrolling was slower (0.79-1.0x for the Viterbi): the scans stay rolled.
_UNROLL_OFF_CPU = {"viterbi": 4, "tridiagonal": 4, "chain": 8}


def _time_scan(kind: str, body, init, xs, reverse: bool = False):
  """`jax.lax.scan` over the frames, unrolled `_UNROLL_OFF_CPU[kind]` steps off the CPU."""
  unroll = _UNROLL_OFF_CPU[kind]
  if unroll == 1:
    return jax.lax.scan(body, init, xs, reverse=reverse)
  return jax.lax.platform_dependent(
      init, xs, cpu=lambda i, x: jax.lax.scan(body, i, x, reverse=reverse),
      default=lambda i, x: jax.lax.scan(body, i, x, reverse=reverse, unroll=unroll))


def _cpu_barrier(x):
  """`x`, materialised on the CPU (an optimisation barrier); unchanged elsewhere.

  On the CPU, XLA fuses a producer with several consumers into each of them
  and recomputes it per consumer; a barrier makes it one buffer. Off the CPU
  the scans are unrolled so that consecutive steps fuse (`_time_scan`), which
  a barrier would prevent.
  """
  return jax.lax.platform_dependent(x, cpu=jax.lax.optimization_barrier, default=lambda v: v)


# ---------------------------------------------------------------------------
# Viterbi over the (component, yaw) grid.


def _band(num_yaws: int, yaw_rate: float, yaw_jump: float) -> int:
  """W: the largest bin shift whose quadratic cost is below the jump cost."""
  spacing = 2 * math.pi / num_yaws
  return int(min(num_yaws // 2, math.floor(yaw_rate * math.sqrt(2 * yaw_jump) / spacing)))


def _first_min(x, axis):
  """(min, first index of the min) along `axis`, as two min-reductions (XLA's
  variadic argmin reduce is slow on CPU)."""
  low = jnp.min(x, axis=axis, keepdims=True)
  iota = jax.lax.broadcasted_iota(jnp.int32, x.shape, axis % x.ndim)
  return jnp.squeeze(low, axis), jnp.min(jnp.where(x == low, iota, x.shape[axis]), axis=axis)


def _viterbi(scores, yaw_rate, component_switch, yaw_jump, band: int, length=None,
             observed=None):
  """Exact minimum-cost paths of S sequences.

  scores (S, F, K, T) -> (k, t (F, S), total (S,), around (F, S, 3)): the
  path's component and yaw index, its cost, and each frame's scores at the
  path's component and yaws t − 1, t, t + 1 (for the sub-bin yaw).

  `length` (a traced int, default F): the paths end at frame `length − 1`;
  later frames (padding) repeat its state and do not change the path before.
  `observed` (S, F) bool, optional: where False, the frame's scores count as 0
  (applied as each frame is read, so that no masked copy of the scores is made).

  The forward pass computes the values V_f (K, T) of each sequence, less
  the previous frame's minimum (so that they stay the size of one frame's
  scores on long videos; the total adds those minima back), and their
  minimum over the components, which it computes anyway: within a
  component the best of the band's shifts (V[t ∓ s] + q_s, as static slices of
  a circularly padded copy) or a jump from the component's best yaw; then the
  best other component plus the switch cost. Each frame's values overwrite its
  scores, in place (frame 0's values are its scores, masked where they are
  read): a second buffer of the grid's size was the largest temporary of
  `lift_sequence`, and its first touch on every call cost system time on the
  CPU. The backward pass recovers each frame's predecessor from
  V_{f−1} for the one state the path is in: O(T + K) a frame (its own
  component's row, and the componentwise minimum); among equally good
  predecessors it stays in the component. It recovers `around` as V_f less
  the arrival cost the forward pass added, recomputed from V_{f−1} by the same
  float operations, so the scores come back to within rounding of V_f.

  Layout (a measured CPU choice): all S sequences step together and each
  component's values are a separate (S, T) array, the sequences along the
  rows; each component's update is one fused loop over (S, T). Values carried
  as one (K, S, T) array, or reduced over a component axis, made XLA split a
  step into fusions that recompute every component's band (2–3x slower on the
  2-core CPU).
  """
  num_seq, num_frames, num_components, num_yaws = scores.shape
  dtype = scores.dtype
  spacing = 2 * math.pi / num_yaws
  quad = [0.5 * (jnp.asarray(s * spacing, dtype) / yaw_rate) ** 2 for s in range(band + 1)]

  def smaller(a, b):  # min of non-NaN values: a compare and a select (jnp.minimum's
    return jnp.where(a < b, a, b)  # NaN propagation costs two more instructions on CPU)

  def band_min(values, lowest):  # (S, T), its min over T (S,) -> min over the band and the jump
    best = values
    if band:
      # The padded copy is materialised (measured: a band minimum 1.3x faster
      # than with the concatenation left to fuse into the 2W slices).
      padded = _cpu_barrier(
          jnp.concatenate([values[:, num_yaws - band:], values, values[:, :band]], axis=1))
      for s in range(1, band + 1):
        nearest = smaller(padded[:, band - s : band - s + num_yaws],
                          padded[:, band + s : band + s + num_yaws])
        best = smaller(best, nearest + quad[s])
    return smaller(best, lowest[:, None] + yaw_jump)

  def read(values, frame):  # (S, K, T) scores of a frame
    frame_scores = jax.lax.dynamic_index_in_dim(values, frame, axis=1, keepdims=False)
    if observed is None:
      return frame_scores
    seen = jax.lax.dynamic_index_in_dim(observed, frame, axis=1, keepdims=False)
    return jnp.where(seen[:, None, None], frame_scores, 0.0)

  def step(carry, frame):
    previous, minima, values = carry
    frame_scores = read(values, frame)
    # The best arrival from any component: band_min commutes with the minimum
    # over components (both are minima; adding q is monotone), so it is the
    # band minimum of the componentwise minimum, bit for bit: each
    # component's update computes two band minima instead of K (with K = 9,
    # the Viterbi ran 2.9x faster on the 2-core CPU).
    lowest = previous[0]
    for component_values in previous[1:]:
      lowest = jnp.minimum(lowest, component_values)
    # Every arrival is at least min V_{f−1} and at most that plus the jump and
    # the switch: less that minimum, the values stay the size of one frame's
    # scores however long the video (accumulated, float32 lost the optimal path
    # on 1.2% of 50,000 frames and the total by 200 nats).
    offset = jnp.min(minima, axis=1)  # (S,) min V_{f−1}, also the minimum of `lowest`
    # One buffer: fused into the K updates, XLA recomputed this band per component.
    switch = _cpu_barrier(band_min(lowest, offset) + component_switch)
    current = tuple(
        frame_scores[:, k] + (jnp.minimum(band_min(v, minima[:, k]), switch) - offset[:, None])
        for k, v in enumerate(previous))
    stacked = jnp.stack(current, axis=1)  # (S, K, T)
    values = jax.lax.dynamic_update_index_in_dim(values, stacked, frame, 1)
    # Each component's minimum over the yaws (the jump's start), for the next
    # frame: one reduction of the stacked values, which the buffer's update
    # writes anyway, instead of K + 1 small ones (the Viterbi 1.04x faster,
    # the same path; 2-core CPU, RESULTS.md session 17).
    return (current, jnp.min(stacked, axis=2), values), (lowest, offset)

  first = tuple(read(scores, 0)[:, k] for k in range(num_components))  # V_0, (S, T) each
  # values[:, f] = V_f (S, K, T) less Σ offsets[:f] for f ≥ 1; values[:, 0] keeps
  # the scores of frame 0, read through `first_mask` (V_0 = the masked scores;
  # writing it into the buffer made XLA copy the buffer). lows[f − 1] = min_k
  # V_{f−1} (S, T) and offsets[f − 1] (S,) its minimum, for the backward pass.
  first_minima = jnp.stack([jnp.min(v, axis=1) for v in first], axis=1)  # (S, K)
  (last, _, values), (lows, offsets) = _time_scan(
      "viterbi", step, (first, first_minima, scores), jnp.arange(1, num_frames))

  def first_mask(frame, x):  # x (S, ...) read from values[:, frame]: V_frame
    if observed is None:
      return x
    keep = (frame > 0) | observed[:, 0]
    return jnp.where(keep.reshape((-1,) + (1,) * (x.ndim - 1)), x, 0.0)

  def first_min(candidates):  # (S, K, T) -> (min (S,), first flat index k·T + t (S,))
    return _first_min(candidates.reshape(num_seq, -1), 1)

  if length is None or num_frames == 1:
    total, end = first_min(jnp.stack(last, axis=1))
    total = total + jnp.sum(offsets, axis=0)
  else:  # V at the last real frame
    at_end = jnp.maximum(length - 1, 0)
    total, end = first_min(first_mask(at_end, jax.lax.dynamic_index_in_dim(
        values, at_end, axis=1, keepdims=False)))
    total = total + jnp.sum(jnp.where(jnp.arange(1, num_frames)[:, None] < length, offsets, 0.0),
                            axis=0)
  yaw_index = jnp.arange(num_yaws)
  sequences = jnp.arange(num_seq)

  def near(state):  # (S,) -> (S, 3) the state's yaws t − 1, t, t + 1
    return jnp.mod(state[:, None] % num_yaws + jnp.arange(-1, 2), num_yaws)

  def around_at(state, frame):  # V_f (S, 3) at the state's component and near yaws
    return first_mask(frame, values[sequences[:, None], frame, (state // num_yaws)[:, None],
                                    near(state)])

  if num_frames == 1:
    return end[None] // num_yaws, end[None] % num_yaws, total, around_at(end, 0)[None]
  # The truncated quadratic of every wrapped yaw difference d = t − t' (mod T).
  shift = np.minimum(np.arange(num_yaws), num_yaws - np.arange(num_yaws))
  within_cost = jnp.where(jnp.asarray(shift <= band),
                          jnp.minimum(0.5 * (jnp.asarray(shift * spacing, dtype) / yaw_rate) ** 2,
                                      yaw_jump), yaw_jump)
  taps = np.arange(-band, band + 1)  # the band's shifts, and their costs q_|s|
  tap_cost = jnp.stack([quad[abs(int(s))] for s in taps])

  def arrival_band(row, yaws):  # band_min(row) (S, T) at yaws (S, 3), as the forward pass
    candidates = jnp.take_along_axis(
        row, jnp.mod(yaws[..., None] - taps, num_yaws).reshape(num_seq, -1), axis=1)
    best = jnp.min(candidates.reshape(num_seq, 3, taps.size) + tap_cost, axis=-1)
    return jnp.minimum(best, jnp.min(row, axis=1, keepdims=True) + yaw_jump)

  def back(state, frame):
    """The predecessor (S,) of frame f's state (S,), from V_{f−1} = values[:, f − 1]
    (read by gathers: a slice was a copy) and low (S, T) = min_k V_{f−1}; and
    frame f's scores around the state (S, 3).

    The best of all K·T predecessors in O(T + K) a sequence: the best within
    the state's own component k, or the best arrival from `low` plus the
    switch cost (`low` includes k at a cost it never wins by), and then the
    component holding that minimum at its yaw. Ties stay in the component.
    """
    low = jax.lax.dynamic_index_in_dim(lows, frame - 1, keepdims=False)
    k, t = state // num_yaws, state % num_yaws
    move = within_cost[jnp.mod(t[:, None] - yaw_index, num_yaws)]  # (S, T)
    own = first_mask(frame - 1, values[sequences, frame - 1, k])  # (S, T)
    stay_cost, stay_yaw = _first_min(own + move, 1)
    switch_cost, switch_yaw = _first_min(low + move, 1)
    at_yaw = first_mask(frame - 1, values[sequences, frame - 1, :, switch_yaw])  # (S, K)
    _, switch_to = _first_min(at_yaw, 1)
    before = jnp.where(stay_cost <= switch_cost + component_switch,
                       k * num_yaws + stay_yaw, switch_to * num_yaws + switch_yaw)
    if length is not None:  # a padding frame's predecessor is in its state
      before = jnp.where(frame >= length, state, before)
    yaws = near(state)
    offset = jax.lax.dynamic_index_in_dim(offsets, frame - 1, keepdims=False)
    arrival = jnp.minimum(arrival_band(own, yaws),
                          arrival_band(low, yaws) + component_switch) - offset[:, None]
    return before, (before, around_at(state, frame) - arrival)

  # Predecessors of frames F−1 … 1 (and those frames' scores around the path).
  start, (path, around) = _time_scan("viterbi", back, end, jnp.arange(1, num_frames),
                                     reverse=True)
  path = jnp.concatenate([path, end[None]])  # (F, S)
  around = jnp.concatenate([around_at(start, 0)[None], around])  # (F, S, 3)
  return path // num_yaws, path % num_yaws, total, around


@_compile.cpu_tuned_jit(static_argnames=("band",))
def _viterbi_batch(scores, yaw_rate, component_switch, yaw_jump, *, band):
  """scores (S, F, K, T) -> component (S, F), yaw index (S, F), total (S,)."""
  k, t, total, _ = _viterbi(scores, yaw_rate, component_switch, yaw_jump, band)
  return k.T, t.T, total


@float32_matmuls
def viterbi_path(scores, *, yaw_rate: float = DEFAULT_YAW_RATE,
                 component_switch: float = DEFAULT_COMPONENT_SWITCH,
                 yaw_jump: float = DEFAULT_YAW_JUMP):
  """The minimum-cost path over the (component, yaw) grid of a sequence.

  Minimises `Σ_f C_f(k_f, t_f) + Σ_{f>0} [min(½ (Δθ_f / yaw_rate)², yaw_jump)
  + component_switch · (k_f ≠ k_{f−1})]` over all paths, Δθ the yaw change
  wrapped to (−π, π], exactly (Viterbi).

  Args:
    scores: (..., F, K, T) per-frame costs (e.g. `lifting.grid_scores`), any
      finite values; yaw t is 2πt/T.
    yaw_rate: radians per frame, > 0.
    component_switch: cost of changing component, >= 0.
    yaw_jump: the most a yaw change costs, >= 0.

  Returns:
    (component (..., F) int32, yaw index (..., F) int32, total cost (...)).
  """
  scores = jnp.asarray(scores)
  if scores.ndim < 3:
    raise ValueError(f"expected scores (..., F, K, T), got {scores.shape}")
  _check_weights(yaw_rate, component_switch, yaw_jump, 1.0)
  band = _band(scores.shape[-1], yaw_rate, yaw_jump)
  flat = scores.reshape((-1, *scores.shape[-3:]))
  k, t, total = _viterbi_batch(flat, jnp.asarray(yaw_rate, scores.dtype),
                               jnp.asarray(component_switch, scores.dtype),
                               jnp.asarray(yaw_jump, scores.dtype), band=band)
  batch = scores.shape[:-2]
  return (k.reshape(batch).astype(jnp.int32), t.reshape(batch).astype(jnp.int32),
          total.reshape(batch[:-1]))


# ---------------------------------------------------------------------------
# Block-tridiagonal least squares.


def _sweep_passes(matrix, write):
  """Gauss–Jordan elimination without pivoting (the sweep operator) of (P, P, S)
  matrices, unrolled; `write(new, k, row, column, inv_pivot)` puts pass k's
  pivot row, column and entry into the updated matrix `new`."""
  for k in range(matrix.shape[0]):
    inv_pivot = 1.0 / matrix[k, k]  # (S,)
    column, row = matrix[:, k], matrix[k, :] * inv_pivot  # (P, S)
    matrix = write(matrix - column[:, None] * row[None, :], k, row, column * inv_pivot, inv_pivot)
  return -matrix


def _write_slices(new, k, row, column, inv_pivot):
  return new.at[k, :].set(row).at[:, k].set(column).at[k, k].set(-inv_pivot)


def _write_masked(new, k, row, column, inv_pivot):
  index = jnp.arange(new.shape[0])
  on_row, on_col = (index == k)[:, None, None], (index == k)[None, :, None]
  return jnp.where(on_row & on_col, -inv_pivot,
                   jnp.where(on_row, row[None], jnp.where(on_col, column[:, None], new)))


def _sweep_inverse(matrix):
  """Inverse of symmetric positive-definite matrices (P, P, S), batch minor.

  Gauss–Jordan elimination without pivoting (the sweep operator; its pivots
  are those of an LDLᵀ factorisation, positive for SPD matrices): P
  elementwise passes over all S matrices at once, no LAPACK call. How each
  pass writes its pivot row and column is a measured per-platform choice
  (the same numbers either way): on CPU by static slices (the block-
  tridiagonal solve of 64 chains of 256 frames 1.9-2.6x faster at P = 11
  and 15 than with index masks, 2-core CPU); elsewhere by masks
  (on an H100 the slices were 1.56x slower at P = 15 with 64 chains, 1.12x
  with 1,024).
  """
  return jax.lax.platform_dependent(
      matrix, cpu=lambda m: _sweep_passes(m, _write_slices),
      default=lambda m: _sweep_passes(m, _write_masked))


def solve_block_tridiagonal(diagonal, coupling, rhs):
  """Solves symmetric positive-definite block-tridiagonal systems of chains.

  Each system is `D_f x_f − S_f x_{f−1} − S_{f+1} x_{f+1} = b_f` (the normal
  equations of `Σ_f q_f(x_f) + Σ_f ½ (x_f − x_{f−1})ᵀ S_f (x_f − x_{f−1})`
  with S_f diagonal), solved by block elimination: `lax.scan` forward over
  the frames (the inverse of each P×P Schur complement by `_sweep_inverse`),
  then backward. All chains of the batch step together with the batch as the
  minor axis, so each pass of the inversion is one elementwise loop over
  them: measured on the 2-core CPU for 64 chains of 256 frames, 1.5–1.9x
  faster than a batched LAPACK Cholesky and inverse per step at P = 15, about
  even at P = 11; and no LAPACK call in the scan.

  Args:
    diagonal: (..., F, P, P) diagonal blocks D_f (they include the coupling
      terms S_f + S_{f+1}).
    coupling: (..., F, P) diagonal of S_f, the coupling of frame f to f − 1
      (frame 0's is ignored).
    rhs: (..., F, P, R) right-hand sides.

  Returns:
    (..., F, P, R) the solution.
  """
  batch = diagonal.shape[:-3]
  num_frames, size = diagonal.shape[-3], diagonal.shape[-1]
  width = rhs.shape[-1]
  count = math.prod(batch)
  # Batch minor: (F, P, P, S), (F, P, S), (F, P, R, S).
  blocks = jnp.moveaxis(diagonal.reshape(count, num_frames, size, size), 0, -1)
  links = jnp.moveaxis(coupling.reshape(count, num_frames, size), 0, -1).at[0].set(0.0)
  values = jnp.moveaxis(rhs.reshape(count, num_frames, size, width), 0, -1)

  def matvec(matrix, vector):  # (P, P, S) · (P, R, S) -> (P, R, S)
    # Unrolled over the P columns: elementwise, one loop fusion (an axis
    # reduction here went to a library call costing ~80 µs a step on the CPU).
    out = matrix[:, 0, None] * vector[0]
    for j in range(1, size):
      out = out + matrix[:, j, None] * vector[j]
    return out

  def forward(carry, frame):
    # Each frame's inverse and y overwrite its block and right-hand side, in
    # place (as scan outputs they were two more buffers, zero-filled first:
    # the solve alone 1.28x slower for 64 chains of 256 frames, P = 15, 2-core CPU).
    inv_prev, y_prev, blocks, values = carry  # (P, P, S), (P, R, S), (F, P, P, S), (F, P, R, S)
    block = jax.lax.dynamic_index_in_dim(blocks, frame, keepdims=False)
    link = jax.lax.dynamic_index_in_dim(links, frame, keepdims=False)
    b = jax.lax.dynamic_index_in_dim(values, frame, keepdims=False)
    schur = block - link[:, None] * inv_prev * link[None, :]
    y = b + link[:, None] * matvec(inv_prev, y_prev)
    inv = _sweep_inverse(schur)
    return (inv, y, jax.lax.dynamic_update_index_in_dim(blocks, inv, frame, 0),
            jax.lax.dynamic_update_index_in_dim(values, y, frame, 0)), None

  init = (jnp.zeros(blocks.shape[1:], blocks.dtype), jnp.zeros(values.shape[1:], values.dtype),
          blocks, values)
  (_, _, inverses, ys), _ = _time_scan("tridiagonal", forward, init, jnp.arange(num_frames))
  next_links = jnp.concatenate([links[1:], jnp.zeros_like(links[:1])])

  def backward(x_next, inputs):
    inv, y, link_next = inputs
    x = matvec(inv, y + link_next[:, None] * x_next)
    return x, x

  _, xs = _time_scan("tridiagonal", backward, jnp.zeros(values.shape[1:], values.dtype),
                       (inverses, ys, next_links), reverse=True)
  return jnp.moveaxis(xs, -1, 0).reshape(rhs.shape)


def _solve_scalar_chain(diagonal, coupling, rhs):
  """`solve_block_tridiagonal` for 1×1 blocks, elementwise over a trailing axis.

  diagonal, coupling, rhs: (F, R) (coupling row 0 ignored) -> (F, R). Plain
  divisions (no LAPACK call, so nothing in this scan can wait on another
  LAPACK call of the same program: tests/lapack_order.py).
  """
  coupling = coupling.at[0].set(0.0)

  def forward(carry, inputs):
    inv_prev, y_prev = carry
    d, link, b = inputs
    inv = 1.0 / (d - link * inv_prev * link)
    y = b + link * inv_prev * y_prev
    return (inv, y), (inv, y)

  zeros = jnp.zeros(rhs.shape[1:], rhs.dtype)
  _, (inverses, ys) = _time_scan("chain", forward, (zeros, zeros), (diagonal, coupling, rhs))
  next_links = jnp.concatenate([coupling[1:], jnp.zeros_like(coupling[:1])])

  def backward(x_next, inputs):
    inv, y, link_next = inputs
    x = inv * (y + link_next * x_next)
    return x, x

  _, xs = _time_scan("chain", backward, zeros, (inverses, ys, next_links), reverse=True)
  return xs


def _smooth_scalar(values, weights, links, ridge):
  """argmin Σ ½ w_f (x_f − v_f)² + Σ ½ l_f (x_f − x_{f−1})² (+ ½ ridge (x_f − v_f)²).

  values (F, R), weights (F,) or (F, R) (per column), links (F,) (l_0
  ignored) -> (F, R); each column independently.
  """
  shape = values.shape
  links = links.at[0].set(0.0)
  next_links = jnp.concatenate([links[1:], jnp.zeros_like(links[:1])])
  data = jnp.broadcast_to(weights if weights.ndim == 2 else weights[:, None], shape) + ridge
  diagonal = data + (links + next_links)[:, None]
  return _solve_scalar_chain(diagonal, jnp.broadcast_to(links[:, None], shape), data * values)


# ---------------------------------------------------------------------------
# The sequence.


class _Prior:
  """The model's frame-independent terms (as in `lift3d.lifting.search.prepare`).

  `obs_noise` is σ_obs (normalised 2D units): the model's calibrated value or
  `lift3d.lifting.default_obs_noise` (resolved by `lift_sequence`).
  """

  def __init__(self, model: PoseModel, obs_noise):
    mean = model.mean
    dtype = mean.dtype
    blocks = jnp.concatenate([mean[:, None], model.basis], axis=1)  # (K, P, L, 3)
    self.blocks = jnp.transpose(blocks, (0, 2, 3, 1))  # (K, L, 3, P)
    weights = model.weights / jnp.sum(model.weights)
    variances = jnp.maximum(model.variances, jnp.finfo(dtype).tiny)
    centred = mean - jnp.mean(mean, axis=1, keepdims=True)
    radius2 = jnp.mean(0.5 * (centred[..., 0] ** 2 + centred[..., 2] ** 2)
                       + centred[..., 1] ** 2, axis=1)
    typical_scale2 = 1.0 / jnp.sum(weights * radius2)
    del weights
    obs_var = obs_noise**2
    self.inv_variances = 1.0 / variances  # (K, J)
    ridge = obs_var / (typical_scale2 * variances)  # (K, J)
    self.tikhonov = jnp.concatenate([jnp.zeros_like(ridge[:, :1]), ridge], axis=1)  # (K, P)
    # Coupling weights: Λ on the coefficients, their mean on the scale.
    self.coupling = jnp.concatenate([jnp.mean(ridge, axis=1, keepdims=True), ridge], axis=1)


def _outer(u, v):
  """(..., P), (..., Q) -> (..., P, Q)."""
  return u[..., :, None] * v[..., None, :]


def _joint_sums(features, blocks, spread, weights, component, *, unweighted: bool):
  """Σ_l w_l of the frame's component's per-joint features and blocks.

  features (K, L, N, P, P), blocks (K, L, 3, P), `spread` (F, L) -> (F, K·L)
  (x at the frame's component), weights (F, L), component (F,) -> (terms (F, N,
  P, P), sums (F, 3, P)). Unweighted the sums over the joints are the model's
  own, gathered per frame (the gathers fuse into their consumers).
  """
  num_components, num_joints, num_features, num_basis = features.shape[:4]
  if unweighted:
    terms = jnp.sum(features, axis=1).reshape(num_components, -1)[component]
    sums = jnp.sum(blocks, axis=1).reshape(num_components, -1)[component]
  else:
    spread_weights = spread(weights)
    terms = spread_weights @ features.reshape(num_components * num_joints, -1)
    sums = spread_weights @ blocks.reshape(num_components * num_joints, -1)
  num_frames = component.shape[0]
  return (terms.reshape(num_frames, num_features, num_basis, num_basis),
          sums.reshape(num_frames, 3, num_basis))


def _frame_systems(prior: _Prior, points, weights, component, yaw, rotation=None, *,
                   unweighted: bool):
  """Normal equations of every frame at its (k, θ): H (F, P, P), b (F, P).

  points (F, L, 2) sequence-normalised, y up; weights (F, L) D² (0 where
  unused; all 1 when `unweighted`, static). The translation is eliminated by
  centring on the weighted mean. With A_x = cos θ B_x + sin θ B_z and
  A_y = B_y (B = the component's blocks), `Σ_l w_l A_lᵀA_l` is a combination
  of the per-joint products of B: one matrix product of the frames' weights,
  spread over a one-hot of their component (F, K·L), against the products
  (K·L, 4·P²), which selects each frame's component without computing the
  others' terms and then gathering (a measured CPU choice); unweighted, the
  sums over the joints are the model's own, gathered per frame. With a camera
  rotation E (3, 3), A_l = M_θ B_l with M_θ = Π E R_θ (2 × 3), and the
  products of all six coordinate pairs enter, weighted by M_θᵀM_θ.
  """
  num_frames, num_joints = weights.shape
  blocks = prior.blocks  # (K, L, 3, P)
  num_components, num_basis = blocks.shape[0], blocks.shape[-1]
  dtype = points.dtype
  onehot = (component[:, None] == jnp.arange(num_components)).astype(dtype)  # (F, K)
  spread = lambda x: (onehot[:, :, None] * x[:, None, :]).reshape(  # noqa: E731
      num_frames, num_components * num_joints)  # (F, L) -> (F, K·L): x at the frame's k
  if unweighted:
    total = jnp.full((num_frames,), float(num_joints), dtype)
  else:
    total = jnp.sum(weights, axis=-1)
  safe = jnp.where(total > 0, total, 1.0)
  points_c = points - jnp.sum(weights[..., None] * points, axis=1, keepdims=True) / safe[
      :, None, None]
  if rotation is not None:
    return _rotated_frame_systems(blocks, points_c, weights, spread, safe, yaw, rotation,
                                  unweighted=unweighted, component=component)
  cos, sin = jnp.cos(yaw), jnp.sin(yaw)
  # Σ_l w_l B_lp B_lqᵀ for (p, q) = (x, x), (z, z), (x, z) + (z, x), (y, y).
  bx, by, bz = blocks[:, :, 0], blocks[:, :, 1], blocks[:, :, 2]  # (K, L, P)
  features = jnp.stack([_outer(bx, bx), _outer(bz, bz), _outer(bx, bz) + _outer(bz, bx),
                        _outer(by, by)], axis=2)  # (K, L, 4, P, P)
  terms, sums = _joint_sums(features, blocks, spread, weights, component, unweighted=unweighted)
  c, s_ = cos[:, None, None], sin[:, None, None]
  gram = c * c * terms[:, 0] + s_ * s_ * terms[:, 1] + c * s_ * terms[:, 2] + terms[:, 3]
  mx = cos[:, None] * sums[:, 0] + sin[:, None] * sums[:, 2]
  my = sums[:, 1]
  gram = gram - (_outer(mx, mx) + _outer(my, my)) / safe[:, None, None]
  # Σ_l w_l A_lᵀ p_l with p centred (so the centring of A drops out).
  flat_blocks = blocks.reshape(num_components * num_joints, 3 * num_basis)
  proj = (spread(weights * points_c[..., 0]) @ flat_blocks).reshape(num_frames, 3, num_basis)
  proj_y = spread(weights * points_c[..., 1]) @ by.reshape(num_components * num_joints, -1)
  rhs = cos[:, None] * proj[:, 0] + sin[:, None] * proj[:, 2] + proj_y
  return gram, rhs


def _rotated_frame_systems(blocks, points_c, weights, spread, safe, yaw, rotation, *,
                           unweighted: bool, component):
  """`_frame_systems` for a camera rotation E: (H (F, P, P), b (F, P)).

  blocks (K, L, 3, P); points_c (F, L, 2) centred on the weighted mean; the
  projection rows M_θ = Π E R_θ (F, 2, 3).
  """
  num_frames = points_c.shape[0]
  num_components, num_joints, _, num_basis = blocks.shape
  rows = jnp.einsum("ab,fbc->fac", rotation[:2], camera.yaw_rotation(yaw))  # (F, 2, 3)
  metric = jnp.einsum("fac,fad->fcd", rows, rows)  # M_θᵀM_θ (F, 3, 3)
  pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
  b = [blocks[:, :, c] for c in range(3)]  # (K, L, P) each
  features = jnp.stack([_outer(b[p], b[q]) if p == q
                        else _outer(b[p], b[q]) + _outer(b[q], b[p])
                        for p, q in pairs], axis=2)  # (K, L, 6, P, P)
  terms, sums = _joint_sums(features, blocks, spread, weights, component, unweighted=unweighted)
  gram = sum(metric[:, p, q, None, None] * terms[:, i] for i, (p, q) in enumerate(pairs))
  means = jnp.einsum("fac,fcp->fap", rows, sums)  # Σ_l w_l A_l (F, 2, P)
  gram = gram - (_outer(means[:, 0], means[:, 0])
                 + _outer(means[:, 1], means[:, 1])) / safe[:, None, None]
  flat_blocks = blocks.reshape(num_components * num_joints, 3 * num_basis)
  # Σ_l w_l A_lᵀ p_l = Σ_a Σ_c M_θ[a, c] Σ_l w_l p_la B_lc.
  proj = jnp.stack([(spread(weights * points_c[..., a]) @ flat_blocks).reshape(
      num_frames, 3, num_basis) for a in range(2)], axis=1)  # (F, 2, 3, P)
  rhs = jnp.einsum("fac,facp->fp", rows, proj)
  return gram, rhs


def _gap_lengths(observed):
  """(F,) length of the run of unobserved frames each frame is in (0 where observed)."""
  num_frames = observed.shape[0]
  index = jnp.arange(num_frames)
  last = jax.lax.cummax(jnp.where(observed, index, -1))  # last observed frame at or before
  following = jax.lax.cummin(jnp.where(observed, index, num_frames), reverse=True)
  return jnp.where(observed, 0, following - last - 1).astype(jnp.int32)


def _bone_tables(skeleton):
  """Static tables of a skeleton's bones (the limbs, parent to child): parents
  (B,), children (B,), paths (L, B) (1 where bone b is on the path from the
  root to joint l), and the (left, right) bone pairs (index arrays)."""
  parents = np.array([p for p, _ in skeleton.limbs])
  children = np.array([c for _, c in skeleton.limbs])
  paths = np.zeros((skeleton.num_joints, len(children)), np.float32)
  for joint in range(skeleton.num_joints):
    node = joint
    while skeleton.parents[node] >= 0:
      paths[joint, int(np.flatnonzero(children == node)[0])] = 1.0
      node = skeleton.parents[node]
  bone_of = {int(c): b for b, c in enumerate(children)}
  left = np.array([bone_of[a] for a, _ in skeleton.left_right])
  right = np.array([bone_of[b] for _, b in skeleton.left_right])
  return parents, children, paths, left, right


def _one_skeleton(pose, use, skeleton=H36M17):
  """Step 5: the poses on one skeleton, each bone at its mean length over the
  `use` frames, left and right averaged, directions and root joint kept.

  pose (F, L, 3) (any unit; NaN allowed outside `use`), use (F,) bool -> (F, L,
  3). Where no frame is used a bone keeps each frame's own length; a bone of
  length 0 stays 0.
  """
  parents, children, paths, left, right = _bone_tables(skeleton)
  root = skeleton.parents.index(-1)
  vectors = pose[:, children] - pose[:, parents]  # (F, B, 3)
  lengths = jnp.sqrt(jnp.sum(vectors**2, axis=-1))  # (F, B)
  count = jnp.sum(use)
  mean = jnp.sum(jnp.where(use[:, None], lengths, 0.0), axis=0) / jnp.maximum(count, 1)  # (B,)
  pair = 0.5 * (mean[left] + mean[right])
  mean = mean.at[left].set(pair).at[right].set(pair)
  target = jnp.where(count > 0, mean, lengths)
  unit = vectors / jnp.where(lengths > 0, lengths, 1.0)[..., None]
  bones = unit * target[..., None]  # (F, B, 3)
  return pose[:, root : root + 1] + jnp.einsum("lb,fbc->flc", paths.astype(pose.dtype), bones)


def _sequence_system(prior: _Prior, around, observed, present, component, index, keypoints,
                     weights, yaw_rate, smoothing, rotation=None, *, band: int,
                     unweighted: bool, num_yaws: int):
  """Steps 2–3 up to the solve, for one sequence: the yaws along the path and the
  block-tridiagonal system of (s, s·a) over the frames.

  around (F, 3): each frame's scores at the path's component and yaws t − 1, t,
  t + 1 (read as 0 where not observed), observed (F,), present (F,) (False
  for padding frames: they are decoupled from the others, and unobserved), the
  Viterbi path's component and yaw index (F,), keypoints (F, L, 2) px, weights
  (F, L) D² (all 1 on the present frames when `unweighted`), rotation the
  camera's E (3, 3) or None (level). Returns (diagonal
  (F, P, P), coupling (F, P), rhs (F, P), the state `_finish_sequence` needs).
  """
  dtype = keypoints.dtype
  spacing = 2 * math.pi / num_yaws

  # Sub-bin yaw from a parabola through the path's score and its neighbours.
  left, mid, right = (jnp.where(observed, around[:, i], 0.0) for i in range(3))
  curvature = left - 2 * mid + right
  # (A neighbour whose linearised problem failed is +inf: no parabola there.)
  curved = jnp.isfinite(curvature) & (curvature > 0)
  offset = jnp.where(curved, 0.5 * (left - right) / jnp.where(curved, curvature, 1.0), 0.0)
  offset = jnp.clip(offset, -0.5, 0.5)
  information = jnp.where(observed & curved, curvature / spacing**2, 0.0)
  # Unwrap the path (steps within the band), then smooth with the random walk.
  step = jnp.mod(index[1:] - index[:-1] + num_yaws // 2, num_yaws) - num_yaws // 2
  linked = jnp.concatenate([jnp.zeros((1,), bool), jnp.abs(step) <= band]) & present
  unwrapped = jnp.concatenate([index[:1], index[0] + jnp.cumsum(step)]).astype(dtype)
  raw_yaw = (unwrapped + offset) * spacing
  yaw = _smooth_scalar(raw_yaw[:, None], information,
                       jnp.where(linked, 1.0 / yaw_rate**2, 0.0).astype(dtype),
                       1e-6 * (1.0 / yaw_rate**2))[:, 0]

  # Sequence normalisation: per-frame centre, one size for the whole sequence.
  norm = camera.normalize_keypoints(jnp.where(weights[..., None] > 0, keypoints, 0.0), weights)
  has_data = jnp.sum(weights, axis=-1) > 0
  sizes = jnp.where(observed & jnp.isfinite(norm.size), norm.size, jnp.nan)
  size = jnp.nanmedian(sizes)
  size = jnp.where(jnp.isfinite(size) & (size > 0), size, 1.0)
  centre = jnp.where(has_data[:, None], norm.centre, 0.0)
  points = camera.flip_y(jnp.where(weights[..., None] > 0, keypoints - centre[:, None], 0.0)
                         ) / size

  gram, rhs = _frame_systems(prior, points, weights, component, yaw, rotation,
                             unweighted=unweighted)
  tikhonov = prior.tikhonov[component]  # (F, P)
  same = jnp.concatenate([jnp.zeros((1,), bool), component[1:] == component[:-1]])
  couple = prior.coupling[component]
  couple = jnp.where(same[:, None], couple, couple * (jnp.arange(couple.shape[1]) == 0))
  couple = smoothing * jnp.where(present[:, None], couple, 0.0).at[0].set(0.0)
  next_couple = jnp.concatenate([couple[1:], jnp.zeros_like(couple[:1])])
  # A tiny ridge on the scale keeps an unobserved sequence's system regular.
  ridge = jnp.zeros_like(tikhonov).at[:, 0].set(1e-6 * jnp.mean(prior.coupling[:, 0]))
  diagonal = gram + jax.vmap(jnp.diag)(tikhonov + couple + next_couple + ridge)
  # Padding frames: an identity block and no link; their solution is the mean
  # pose at scale 1 (finite, as IEEE's 0 · NaN is not 0).
  eye = jnp.eye(diagonal.shape[-1], dtype=dtype)
  diagonal = jnp.where(present[:, None, None], diagonal, eye)
  rhs = jnp.where(present[:, None], rhs, eye[0])
  state = {"tikhonov": tikhonov, "component": component, "yaw": yaw, "points": points,
           "weights": weights, "has_data": has_data, "centre": centre, "size": size,
           "observed": observed, "present": present}
  return diagonal, couple, rhs, state


def _finish_sequence(prior: _Prior, state, solution, max_gap, blend_weight, blend_smoothing,
                     blend_hidden, fixed_bones, rotation=None, *, root: int, limb_mm, limbs):
  """Step 3's answer and steps 4-5 for one sequence: `LiftResult` (F frames) from the
  solution (F, P) of `_sequence_system`'s system; the pose in the camera's frame
  (E R_θ(μ_k + E_k a) with a camera rotation E (3, 3), R_θ(μ_k + E_k a) for a level one)."""
  tikhonov = state["tikhonov"]
  component, yaw, points, weights = (state["component"], state["yaw"], state["points"],
                                     state["weights"])
  has_data, centre, size, observed, present = (
      state["has_data"], state["centre"], state["size"], state["observed"], state["present"])
  num_frames = points.shape[0]
  dtype = points.dtype
  scale = solution[:, 0]
  coeffs = solution[:, 1:] / scale[:, None]
  # μ_k + a·e_k at each frame's k: the coefficients spread over a one-hot of
  # the component (F, K·P) against the blocks (K·P, L·3), one product that
  # writes only the frame's own pose (a product for every k, then a gather,
  # wrote K poses a frame).
  blocks = prior.blocks  # (K, L, 3, P)
  num_components, num_basis = blocks.shape[0], blocks.shape[-1]
  onehot = (component[:, None] == jnp.arange(num_components)).astype(dtype)  # (F, K)
  spread = (onehot[:, :, None] * jnp.concatenate([jnp.ones_like(scale)[:, None], coeffs], 1)[
      :, None, :]).reshape(num_frames, num_components * num_basis)
  body = (spread @ jnp.moveaxis(blocks, -1, 1).reshape(num_components * num_basis, -1)
          ).reshape(num_frames, -1, 3)  # (F, L, 3)
  cos, sin = jnp.cos(yaw)[:, None], jnp.sin(yaw)[:, None]
  pose = jnp.stack([cos * body[..., 0] + sin * body[..., 2], body[..., 1],
                    cos * body[..., 2] - sin * body[..., 0]], axis=-1)
  if rotation is not None:
    pose = pose @ rotation.T
  # Reprojection: the projected pose plus the fitted translation (weighted LS
  # where the frame has data, interpolated over frames without).
  projected = scale[:, None, None] * pose[..., :2]  # s Π E R_θ(μ + a·e): (F, L, 2) y up
  safe = jnp.where(has_data, jnp.sum(weights, -1), 1.0)
  shift = (jnp.sum(weights[..., None] * (points - projected), axis=1) / safe[:, None])
  # The weighted RMS reprojection residual, a fraction of the sequence's 2D size.
  offsets = jnp.where(weights[..., None] > 0, points - projected - shift[:, None], 0.0)
  error = weights[..., None] * offsets**2
  data_cost = jnp.sum(error, axis=(-1, -2))
  residual = jnp.where(has_data, jnp.sqrt(data_cost / safe), 0.0)
  # The frame's regularised least-squares cost ‖D(w − A x)‖² + Σ t x² from its
  # residuals (the same as xᵀ(G + diag t)x − 2bᵀx + ‖Dw‖², without that form's
  # cancellation, and without G).
  cost = data_cost + jnp.sum(tikhonov * solution**2, axis=-1)
  shift = centre / size * jnp.asarray([1.0, -1.0], dtype) + shift  # origin, y-up seq units
  # (No link into a padding frame, so the real frames are those of the unpadded video.)
  shift = _smooth_scalar(shift, has_data.astype(dtype), jnp.where(present, 1e-6, 0.0).astype(
      dtype), 1e-9)
  reprojected = camera.flip_y(projected + shift[:, None]) * size

  gap = _gap_lengths(observed | ~present)
  valid = (jnp.any(observed) & (gap <= max_gap) & (scale > 0)
           & jnp.all(jnp.isfinite(solution), axis=-1))
  # Size and plausibility as in `lift` (docs/method.md §4.5): the pose at the
  # training size; the model pose's own size, Mahalanobis norm and residual.
  body_size = _limb_norm(body, limbs)
  mm_per_unit = limb_mm / body_size
  # Blend (as `lift`'s reconstruction="blend"): move each joint's image-plane
  # coordinates part of the way to the observation, keep the model's depth.
  # The offsets to the observations are smoothed over time first (per joint,
  # weighted by the data, so hidden joints and dropouts borrow from their
  # neighbours and the 2D noise averages out), then scaled back to the model
  # pose's size.
  # A weight of 0 ("model") skips it (a `cond` on the unbatched weight stays
  # one branch under the vmap over sequences).
  num_joints = weights.shape[1]

  def blend(pose):
    smooth = _smooth_scalar(offsets.reshape(num_frames, -1), jnp.repeat(weights, 2, axis=1),
                            jnp.where(present, blend_smoothing, 0.0).astype(dtype), 1e-6
                            ).reshape(num_frames, num_joints, 2)  # (F, L, 2)
    root_w = jnp.sqrt(weights)
    share = blend_weight * (root_w + blend_hidden * (1.0 - root_w))
    moved = pose.at[..., :2].add(share[..., None] * smooth / scale[:, None, None])
    moved_size = _limb_norm(moved, limbs)
    return moved * (body_size / moved_size)[:, None, None]

  pose = jax.lax.cond(blend_weight > 0, blend, lambda pose: pose, pose)
  pose3d = (pose - pose[:, root : root + 1]) * mm_per_unit[:, None, None]
  mahalanobis = jnp.sqrt(jnp.sum(coeffs**2 * prior.inv_variances[component], axis=-1))
  plausible = ((jnp.abs(body_size - 1.0) <= MAX_SIZE_ERROR)
               & (mahalanobis <= max_mahalanobis(coeffs.shape[-1]))
               & (residual <= MAX_RESIDUAL))
  lifted = valid
  plausible = plausible & lifted
  # Step 5: the lengths from the plausible frames (else the lifted ones). A
  # `cond` on the traced flag, so that either value runs the same program.
  use = jnp.where(jnp.any(plausible & present), plausible, lifted) & present
  pose3d = jax.lax.cond(fixed_bones, lambda pose: _one_skeleton(pose, use), lambda pose: pose,
                        pose3d)
  nan = jnp.asarray(jnp.nan, dtype)
  mask = lambda x: jnp.where(lifted.reshape((-1,) + (1,) * (x.ndim - 1)), x, nan)  # noqa: E731
  return LiftResult(
      pose3d=mask(pose3d), yaw=mask(jnp.mod(yaw, 2 * math.pi)),
      scale=mask(scale * size / mm_per_unit), coeffs=mask(coeffs),
      component=jnp.where(lifted, component, -1).astype(jnp.int32), cost=mask(cost),
      reprojected=mask(reprojected), size=mask(body_size), mahalanobis=mask(mahalanobis),
      residual=mask(residual), plausible=plausible, valid=plausible)


@_compile.cpu_tuned_jit(static_argnames=("num_yaws", "band", "min_visible", "root"))
def _lift_sequence_jit(model, keypoints, visibility, obs_noise, yaw_rate, component_switch,
                       yaw_jump, smoothing, max_gap, blend_weight, blend_smoothing, blend_hidden,
                       fixed_bones, length, camera_rotation, *, num_yaws, band, min_visible,
                       root):
  """`lift_sequence` on (..., F, L, 2) keypoints whose first `length` frames are
  the video and the rest padding (so that videos of other lengths share the
  compiled program); the padding's outputs are meaningless. `length` None: no
  padding (the masks fold away). `camera_rotation` (3, 3) or None (level)."""
  model, keypoints, visibility, camera_rotation = jax.lax.stop_gradient(
      (model, keypoints, visibility, camera_rotation))
  scores = grid_scores(model, keypoints, visibility, num_yaws=num_yaws,
                       min_visible=min_visible, obs_noise=obs_noise,
                       camera_rotation=camera_rotation)
  finite = jnp.all(jnp.isfinite(keypoints), axis=-1)
  if visibility is None:
    weights = finite.astype(keypoints.dtype)
  else:
    vis = jnp.where(jnp.isfinite(visibility), jnp.clip(visibility, 0.0, 1.0), 0.0)
    weights = jnp.where(finite, vis * vis, 0.0)
  clean = jnp.where(weights[..., None] > 0, keypoints, 0.0)
  batch_shape = keypoints.shape[:-3]
  num_frames = keypoints.shape[-3]
  flat = lambda x: x.reshape((-1, num_frames, *x.shape[len(batch_shape) + 1:]))  # noqa: E731
  prior = _Prior(model, obs_noise)
  scores = flat(scores)  # (S, F, K, T)
  present = (jnp.ones((num_frames,), bool) if length is None
             else jnp.arange(num_frames) < length)  # (F,)
  # (S, F): a frame is observed where its grid has a finite score. grid_scores
  # gives NaN for a whole frame that cannot be lifted and +inf for a (k, θ)
  # whose linearised problem failed; a frame with no finite score at all would
  # make every path cost +inf from there on (the Viterbi then loses the path).
  observed = jnp.isfinite(jnp.min(scores, axis=(-2, -1))) & present
  # Unobserved frames' scores count as 0: masked where they are read (a masked
  # copy of the whole grid cost a pass over it and its fresh memory).
  # The Viterbi overwrites the scores (its values, in place): after it, only
  # the three scores around the path are left (`around`).
  component, index, _, around = _viterbi(scores, yaw_rate, component_switch, yaw_jump, band,
                                         length, observed)
  system = functools.partial(_sequence_system, prior, rotation=camera_rotation, band=band,
                             unweighted=visibility is None, num_yaws=num_yaws)
  diagonal, coupling, rhs, state = jax.vmap(system, in_axes=(0, 0, None) + (0,) * 4 + (None,) * 2)(
      jnp.moveaxis(around, 0, 1), observed, present, component.T, index.T, flat(clean),
      flat(weights) * present[:, None], yaw_rate, smoothing)
  solution = solve_block_tridiagonal(diagonal, coupling, rhs[..., None])[..., 0]  # (S, F, P)
  finish = functools.partial(_finish_sequence, prior, rotation=camera_rotation, root=root,
                             limb_mm=model.limb_scale * 1000.0, limbs=H36M17.limbs)
  out = jax.vmap(finish, in_axes=(0, 0) + (None,) * 5)(
      state, solution, max_gap, blend_weight, blend_smoothing, blend_hidden, fixed_bones)
  return jax.tree.map(lambda x: x.reshape(batch_shape + x.shape[1:]), out)


def _check_weights(yaw_rate, component_switch, yaw_jump, smoothing):
  for name, value, low in (("yaw_rate", yaw_rate, 0.0), ("component_switch", component_switch,
                                                         None),
                           ("yaw_jump", yaw_jump, None), ("smoothing", smoothing, None)):
    value = float(value)
    if not math.isfinite(value) or value < 0 or (low is not None and value <= low):
      raise ValueError(f"{name} must be a finite number {'> 0' if low is not None else '>= 0'}, "
                       f"got {value}")


@float32_matmuls
def lift_sequence(
    model: PoseModel,
    keypoints,
    visibility=None,
    *,
    num_yaws: int | None = None,
    yaw_rate: float = DEFAULT_YAW_RATE,
    component_switch: float = DEFAULT_COMPONENT_SWITCH,
    smoothing: float = DEFAULT_SMOOTHING,
    yaw_jump: float = DEFAULT_YAW_JUMP,
    max_gap: int = DEFAULT_MAX_GAP,
    min_visible: int = 6,
    obs_noise: float | None = None,
    reconstruction: str = "blend",
    blend_weight: float = DEFAULT_BLEND_WEIGHT,
    blend_smoothing: float = DEFAULT_BLEND_SMOOTHING,
    blend_hidden: float = DEFAULT_BLEND_HIDDEN,
    camera_rotation=None,
    fixed_bones: bool = True,
    threads: int | None = None,
) -> LiftResult:
  """Lifts 2D keypoint sequences (video) to 3D, coherently over time.

  See the module docstring for the method: a Viterbi path over the
  per-frame (component, yaw) grid, the yaw smoothed along it, then scale and
  coefficients smoothed over time by a block-tridiagonal least squares. One
  fixed camera: level, or rotated by `camera_rotation`; runs under `jax.jit`
  with the options static. Called with concrete arrays, the frames are padded
  to the next power of two (frames that are decoupled from the video and
  dropped from the result), so that videos of other lengths reuse a compiled
  program instead of compiling for seconds; the answers are those of the
  unpadded video.

  Args:
    model: the pose model (K components, J basis vectors, L joints, H36M17).
    keypoints: (..., F, L, 2) pixels, x right, y down; F frames in time order.
    visibility: optional (..., F, L) weights in [0, 1] (weight-0 joints may
      be NaN). None: every finite joint visible, with weight 1; NaN joints
      are hidden (weight 0). Under an outer `jax.jit` (traced keypoints) None
      means every joint visible: pass a visibility where joints may be NaN.
    num_yaws: T, grid yaws 2πt/T (static). None (default):
      `default_num_yaws(yaw_rate)`, 32 at the default yaw_rate (validated at
      30 fps: the path's yaws are refined below the grid spacing) and more in
      proportion for a smaller yaw_rate (a higher frame rate), so that the
      walk's steps stay as fine as validated.
    yaw_rate: radians per frame, the step of the yaw's random walk (the
      default 0.05 rad/frame is 1.5 rad/s at 30 fps; for other frame rates
      pass `**frame_rate_weights(fps)`, which converts it and the smoothing
      weights).
    component_switch: cost (nats) of changing mixture component between frames.
    smoothing: weight of the temporal coupling of scale and coefficients (0:
      independent frames at the path's yaws; the default 30 was validated at
      30 fps, heavier values flatten real motion; `frame_rate_weights`).
    yaw_jump: the most (nats) any yaw change between frames costs.
    max_gap: frames without a liftable pose get their pose from their
      neighbours; in a run of more than `max_gap` of them they are not valid.
    min_visible: a frame needs this many visible joints to be scored.
    obs_noise: σ_obs, as in `lift` (None: the model's calibrated value, or
      `lift3d.lifting.default_obs_noise`).
    reconstruction: "blend" (default) or "model" (the model pose alone); see
      step 4 of the module docstring. Only `pose3d` changes.
    blend_weight: α in [0, 1], the share of each joint's (smoothed) offset to
      its observation that the pose takes (default 1.0, validated for
      sequences; `lift`'s per-frame default is 0.8: its offsets carry the
      frame's noise).
    blend_smoothing: ≥ 0, the temporal weight of the offsets' smoothing
      (0: each frame's own offsets, noise included; default 3, validated).
    blend_hidden: in [0, 1], the share of the smoothed offset a joint takes
      where it is hidden (weight w: α·(√w + blend_hidden·(1 − √w))).
    camera_rotation: optional (3, 3) rotation E of the camera, the same for
      every frame and sequence (e.g. `lift3d.camera.elevation_rotation(pitch)`
      for a pitched camera), as in `lift`; None for a level camera. The yaw is
      the subject's about the vertical, and pose3d is in the camera's frame,
      E R_θ(μ_k + E_k a).
    fixed_bones: step 5 of the module docstring (default True): every
      sequence's poses share one skeleton, each bone at its mean length over
      the sequence's plausible frames, left and right averaged. False: each
      frame's pose on its own (the model's proportions of that frame). Only
      `pose3d` changes.
    threads: run the sequences in this many equal groups at once, one
      thread each, when called with concrete arrays (the same answers, to
      float32 rounding: each group runs a program compiled for its size).
      None (default): one per CPU core on the CPU backend, but groups of at
      least 1,024 (padded) frames; 1 elsewhere. On the CPU the scans over the
      frames run on one core per call, so many videos run faster in groups
      (64 videos of 256 frames 1.41x in two threads, 2-core CPU); pass 1
      where the caller runs its own threads. Grouped, the call returns once
      the answers are computed.

  Returns:
    A `LiftResult` with batch shape (..., F): pose3d (..., F, L, 3) mm,
    yaw, scale (pixels per mm), coeffs, component, cost (the frame's
    regularised least-squares cost at the solution, in units of the
    sequence's normalised size²), reprojected (..., F, L, 2) pixels, valid.

  Raises:
    ValueError: on malformed shapes or weights.
  """
  _check_model(model)
  num_joints = int(np.shape(model.mean)[1])
  if num_joints != H36M17.num_joints:
    # Size, plausibility and the mm scale use the H36M17 limbs and root.
    raise ValueError(f"lift_sequence needs an H36M17 pose model (17 joints), got {num_joints}; "
                     "use lift3d.lift for other skeletons")
  shape = tuple(np.shape(keypoints))
  if len(shape) < 3 or shape[-1] != 2 or shape[-2] != num_joints or shape[-3] < 1:
    raise ValueError(f"expected keypoints (..., F, {num_joints}, 2) with F >= 1 frames, got "
                     f"{shape}; map joints with lift3d.skeleton.convert first")
  if visibility is not None and tuple(np.shape(visibility)) != shape[:-1]:
    raise ValueError(f"visibility shape {tuple(np.shape(visibility))} does not match keypoints "
                     f"{shape} (expected {shape[:-1]})")
  _check_weights(yaw_rate, component_switch, yaw_jump, smoothing)
  if reconstruction not in ("model", "blend"):
    raise ValueError(f"reconstruction must be 'model' or 'blend', got {reconstruction!r}")
  for name, value, high in (("blend_weight", blend_weight, 1.0),
                            ("blend_smoothing", blend_smoothing, math.inf),
                            ("blend_hidden", blend_hidden, 1.0)):
    if not (math.isfinite(float(value)) and 0.0 <= float(value) <= high):
      raise ValueError(f"{name} must be a finite number in [0, {high:g}], got {value}")
  if num_yaws is None:
    num_yaws = default_num_yaws(yaw_rate)
  if int(num_yaws) < 3:
    raise ValueError(f"num_yaws must be >= 3, got {num_yaws}")
  if camera_rotation is not None and tuple(np.shape(camera_rotation)) != (3, 3):
    raise ValueError(f"camera_rotation must be (3, 3), got {tuple(np.shape(camera_rotation))}")
  if int(max_gap) < 0 or int(min_visible) < 1:
    raise ValueError(f"max_gap must be >= 0 and min_visible >= 1, got {max_gap}, {min_visible}")
  if threads is not None and int(threads) < 1:
    raise ValueError(f"threads must be >= 1 or None, got {threads}")
  if visibility is None and not isinstance(keypoints, jax.core.Tracer):
    finite = np.all(np.isfinite(np.asarray(keypoints)), axis=-1)
    if not finite.all():  # the unweighted search needs every joint: hide the missing ones
      visibility = finite.astype(np.float32)
  dtype = jnp.result_type(float)
  if math.prod(shape[:-3]) == 0:  # no videos: an empty result of the batch shape
    return _empty_result(shape[:-2], num_joints, int(np.shape(model.basis)[1]), dtype)
  model = jax.tree.map(lambda x: jnp.asarray(x, dtype), model)
  obs_noise, _ = _prior(model, obs_noise, None)
  f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
  keypoints = f(keypoints)
  visibility = None if visibility is None else f(visibility)
  num_frames = shape[-3]
  if camera_rotation is not None:
    camera_rotation = f(camera_rotation)
  traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(
      (model, keypoints, visibility, camera_rotation)))
  # Concrete inputs: pad the frames to the next power of two, so that videos of
  # other lengths reuse the compiled program (a compile costs seconds).
  padded = num_frames if traced else _bucket(num_frames)
  frame_axis = len(shape) - 3
  if padded > num_frames:
    keypoints, visibility = pad_frames((keypoints, visibility), size=padded, axis=frame_axis)

  def run(keypoints, visibility):
    return _lift_sequence_jit(
        model, keypoints, visibility, f(obs_noise),
        f(yaw_rate), f(component_switch), f(yaw_jump), f(smoothing),
        jnp.asarray(int(max_gap), jnp.int32),
        f(blend_weight if reconstruction == "blend" else 0.0), f(blend_smoothing),
        f(blend_hidden), jnp.asarray(bool(fixed_bones)),
        None if padded == num_frames else jnp.asarray(num_frames, jnp.int32),
        camera_rotation, num_yaws=int(num_yaws),
        band=_band(int(num_yaws), float(yaw_rate), float(yaw_jump)),
        min_visible=int(min_visible), root=H36M17.parents.index(-1))

  batch_shape = shape[:-3]
  count = math.prod(batch_shape)
  groups = 1
  if not traced and threads is not None:
    groups = min(int(threads), count)
  elif not traced and jax.default_backend() == "cpu":
    # Groups of at least _GROUP_FRAMES frames: smaller ones lose more to
    # running at once than they gain.
    groups = max(1, min(_default_threads(), count, count * padded // _GROUP_FRAMES))
  if groups > 1:
    groups, size = _group_layout(count, groups)
  if groups > 1:
    # One group per thread (`lift3d.lifting.api._in_threads`): the scans over
    # the frames (the Viterbi, the block-tridiagonal and scalar solves) step
    # through small per-frame arrays, which XLA's CPU backend runs on one core.
    # The groups share one program (the last padded with copies of the last
    # video); it holds no LAPACK call (tests/lapack_order_test.py).
    parts = _split_groups((keypoints, visibility), batch_ndim=len(batch_shape), groups=groups,
                          size=size)
    out = _join_groups(_in_threads(run, parts), batch_shape=batch_shape)
  else:
    out = run(keypoints, visibility)
  return out if padded == num_frames else first_frames(out, size=num_frames, axis=frame_axis)
