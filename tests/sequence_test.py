"""Tests of lift3d.sequence: Viterbi against brute force, the block-tridiagonal solve
against a dense one, and a planted smooth motion recovered from its 2D video."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lift3d import camera, lifting, sequence
from lift3d.data import bvh_writer
from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import H36M17
from tests.lifting.planted import limb_norm

# One frame count and grid for all tests, so that they share compilations.
K, J, L, F, T = 2, 3, 17, 40, 40


def _model(seed=0):
  rng = np.random.default_rng(seed)
  mean = rng.normal(size=(K, L, 3)) * 0.25
  mean -= mean.mean(axis=1, keepdims=True)
  mean /= limb_norm(mean)[:, None, None]  # normalised units, as a fitted model's
  basis = np.stack([np.linalg.qr(rng.normal(size=(3 * L, J)))[0].T.reshape(J, L, 3)
                    for _ in range(K)])
  return PoseModel(mean=jnp.asarray(mean, jnp.float32), basis=jnp.asarray(basis, jnp.float32),
                   variances=jnp.full((K, J), 0.005, jnp.float32),
                   noise=jnp.full((K,), 1e-4, jnp.float32),
                   weights=jnp.full((K,), 0.5, jnp.float32),
                   limb_scale=jnp.asarray(0.5, jnp.float32))


def _mirror_symmetric_model():
  """`_model()` with mirror-symmetric means: each left joint the mirror image
  (x -> -x) of its right twin, the others on the plane x = 0 (so the bones of
  left and right match, as a body's)."""
  model = _model()
  mean = np.asarray(model.mean, np.float64).copy()
  twins = [j for pair in H36M17.left_right for j in pair]
  mean[:, [j for j in range(L) if j not in twins], 0] = 0.0
  for left, right in H36M17.left_right:
    mean[:, left] = mean[:, right] * [-1.0, 1.0, 1.0]
  mean -= mean.mean(axis=1, keepdims=True)
  mean /= limb_norm(mean)[:, None, None]
  return model.replace(mean=jnp.asarray(mean, jnp.float32))


def _planted(num_frames=F, rotation=None, model=None):
  """A smooth motion of component 0 of `model` (default `_model()`):
  coefficients, yaw, scale and position drift, seen by a level camera or one
  rotated by `rotation` (3, 3).

  Returns (keypoints (F, L, 2) px, truth (F, L, 3) mm root-centred in the
  camera's frame, yaw (F,)).
  """
  model = _model() if model is None else model
  t = np.arange(num_frames)
  coeffs = 0.05 * np.stack([np.sin(0.1 * t), np.cos(0.07 * t), np.sin(0.05 * t + 1)], 1)
  body = np.asarray(model.mean)[0] + np.einsum("fj,jlc->flc", coeffs, np.asarray(model.basis)[0])
  yaw = 1.0 + 0.03 * t
  poses = np.einsum("fac,flc->fla", np.asarray(camera.yaw_rotation(yaw)), body)
  scale = 300.0 * (1 + 0.002 * t)
  pixels = np.asarray(camera.weak_perspective(
      poses, scale, rotation=rotation, translation=np.stack([200.0 + t, 300.0 - 0.5 * t], 1)),
      np.float32)
  if rotation is not None:
    poses = poses @ np.asarray(rotation, np.float64).T
  # lift_sequence gives every pose the training size (limb norm limb_scale).
  truth = (poses - poses[:, :1]) * (float(model.limb_scale) * 1000.0 / limb_norm(body))[
      :, None, None]
  return pixels, truth, yaw


# --- Viterbi -----------------------------------------------------------------


def _brute_force(scores, yaw_rate, switch, jump):
  num_frames, num_k, num_t = scores.shape
  states = [(k, t) for k in range(num_k) for t in range(num_t)]
  best, best_path = np.inf, None
  for path in itertools.product(states, repeat=num_frames):
    total = sum(scores[f, k, t] for f, (k, t) in enumerate(path))
    for (k0, t0), (k1, t1) in itertools.pairwise(path):
      d = abs(t1 - t0) % num_t
      delta = min(d, num_t - d) * 2 * math.pi / num_t
      total += min(0.5 * (delta / yaw_rate) ** 2, jump) + switch * (k0 != k1)
    if total < best:
      best, best_path = total, path
  return best, best_path


@pytest.mark.parametrize("yaw_rate, switch, jump", [
    (0.8, 0.7, 1.5),   # band of one bin, jumps and switches both used
    (2.0, 0.3, 4.0),   # band covering the circle (no truncation reached within it)
    (0.1, 5.0, 0.5),   # band 0: every yaw change is a jump
])
def test_viterbi_is_exact_against_brute_force(yaw_rate, switch, jump):
  rng = np.random.default_rng(int(yaw_rate * 10))
  scores = rng.uniform(0, 3, size=(4, 2, 5))  # 10^4 paths
  best, path = _brute_force(scores, yaw_rate, switch, jump)
  k, t, total = sequence.viterbi_path(scores.astype(np.float32), yaw_rate=yaw_rate,
                                      component_switch=switch, yaw_jump=jump)
  np.testing.assert_allclose(float(total), best, rtol=1e-5)  # float32 sums of ~20 terms
  assert [(int(a), int(b)) for a, b in zip(k, t, strict=True)] == list(path)


def _path_cost(scores, path, yaw_rate, switch, jump):
  total = sum(scores[f, k, t] for f, (k, t) in enumerate(path))
  for (k0, t0), (k1, t1) in itertools.pairwise(path):
    d = abs(t1 - t0) % scores.shape[2]
    delta = min(d, scores.shape[2] - d) * 2 * math.pi / scores.shape[2]
    total += min(0.5 * (delta / yaw_rate) ** 2, jump) + switch * (k0 != k1)
  return total


@pytest.mark.parametrize("switch", [0.0, 0.5])
def test_viterbi_with_tied_scores_returns_an_optimal_path(switch):
  # Small integer scores tie often (as an unobserved stretch of frames does):
  # the path returned must still cost the brute-force optimum, over three
  # components (the backward pass takes a switch from the componentwise minimum).
  rng = np.random.default_rng(7)
  scores = rng.integers(0, 3, size=(4, 3, 4)).astype(np.float64)  # 12^4 paths
  yaw_rate, jump = 1.2, 1.0
  best, _ = _brute_force(scores, yaw_rate, switch, jump)
  k, t, total = sequence.viterbi_path(scores.astype(np.float32), yaw_rate=yaw_rate,
                                      component_switch=switch, yaw_jump=jump)
  path = [(int(a), int(b)) for a, b in zip(k, t, strict=True)]
  np.testing.assert_allclose(_path_cost(scores, path, yaw_rate, switch, jump), best, rtol=1e-6)
  np.testing.assert_allclose(float(total), best, rtol=1e-6)


def _dense_optimum(scores, yaw_rate, switch, jump):
  """The optimal path cost by dynamic programming over all K·T × K·T moves (float64)."""
  num_frames, num_k, num_t = scores.shape
  d = np.abs(np.arange(num_t)[:, None] - np.arange(num_t)[None, :])
  delta = np.minimum(d, num_t - d) * 2 * math.pi / num_t
  move = np.minimum(0.5 * (delta / yaw_rate) ** 2, jump)  # (T, T)
  cost = move[None, :, None, :] + switch * (np.arange(num_k)[:, None, None, None]
                                            != np.arange(num_k)[None, None, :, None])
  values = scores[0]
  for f in range(1, num_frames):
    values = scores[f] + np.min(values[:, :, None, None] + cost, axis=(0, 1))
  return values.min()


@pytest.mark.parametrize("seed", range(4))
def test_viterbi_path_costs_the_dense_optimum(seed):
  # Longer paths than brute force reaches, against a dense dynamic programme:
  # the returned path must cost its optimum (every predecessor chosen by the
  # backward pass is a best one, switch costs included).
  rng = np.random.default_rng(seed)
  scores = rng.uniform(0, 2, size=(40, 3, 12))
  yaw_rate, switch, jump = rng.uniform(0.3, 1.0), rng.uniform(0.1, 1.5), rng.uniform(0.5, 3.0)
  k, t, total = sequence.viterbi_path(scores.astype(np.float32), yaw_rate=yaw_rate,
                                      component_switch=switch, yaw_jump=jump)
  best = _dense_optimum(scores, yaw_rate, switch, jump)
  path = [(int(a), int(b)) for a, b in zip(k, t, strict=True)]
  # float32 sums of ~120 terms of size <= 3.
  np.testing.assert_allclose(_path_cost(scores, path, yaw_rate, switch, jump), best, rtol=1e-5)
  np.testing.assert_allclose(float(total), best, rtol=1e-5)


def test_viterbi_keeps_the_optimum_on_long_videos_with_large_scores():
  # The values accumulate the path cost: 3,000 frames of scores near -1,000
  # make them ~3e6, whose float32 spacing (0.25) is larger than the choices
  # between yaws. Held relative to the previous frame's minimum, they stay the
  # size of one frame's scores (the accumulated version missed the optimum by
  # 3.1 nats here).
  rng = np.random.default_rng(1)
  num_frames, num_k, num_t, offset = 3000, 3, 60, -1000.0
  yaws = np.arange(num_t)
  centre = (np.cumsum(rng.standard_normal((num_frames, num_k)) * 0.5, axis=0)
            + rng.uniform(0, num_t, num_k)) % num_t
  d = np.abs(yaws - centre[..., None])
  d = np.minimum(d, num_t - d)
  scores = (offset + 0.05 * d**2 + rng.standard_normal(d.shape)
            + rng.uniform(0, 3, (num_frames, num_k, 1)))
  yaw_rate, switch, jump = 0.05, 20.0, 100.0
  k, t, total = sequence.viterbi_path(scores.astype(np.float32), yaw_rate=yaw_rate,
                                      component_switch=switch, yaw_jump=jump)
  best = _dense_optimum(scores, yaw_rate, switch, jump)
  cost = _path_cost(scores, [(int(a), int(b)) for a, b in zip(k, t, strict=True)], yaw_rate,
                    switch, jump)
  # Each float32 value is exact to eps times its size, |offset| + the scores' range.
  tolerance = num_frames * np.finfo(np.float32).eps * (abs(offset) + np.ptp(scores - offset))
  assert cost - best <= tolerance, (cost - best, tolerance)
  assert abs(float(total) - best) <= tolerance, (float(total) - best, tolerance)


def test_viterbi_with_padding_frames_matches_the_unpadded_video():
  # `lift_sequence` pads videos to shared lengths; the frames past `length`
  # must change neither the path before them nor its total cost.
  rng = np.random.default_rng(3)
  scores = rng.uniform(0, 3, size=(2, 9, 2, 8)).astype(np.float32)
  length = 6
  band = sequence._band(8, 0.5, sequence.DEFAULT_YAW_JUMP)
  k, t, total, _ = sequence._viterbi(jnp.asarray(scores), 0.5, 1.0, sequence.DEFAULT_YAW_JUMP,
                                     band, length=jnp.int32(length))
  for s in range(2):
    k1, t1, total1 = sequence.viterbi_path(scores[s, :length], yaw_rate=0.5, component_switch=1.0)
    np.testing.assert_array_equal(np.asarray(k)[:length, s], k1)
    np.testing.assert_array_equal(np.asarray(t)[:length, s], t1)
    np.testing.assert_allclose(float(total[s]), float(total1), rtol=1e-6)


@pytest.mark.parametrize("length", [None, 20])
def test_viterbi_gives_back_the_scores_around_its_path(length):
  # The forward pass overwrites the scores with its values, in place; the
  # backward pass recovers the scores the sub-bin yaw needs (at the path's
  # component and yaws t − 1, t, t + 1) as each value less its arrival cost.
  # Unobserved frames' scores (NaN here) count as 0. Tolerance: a value is a
  # score in [0, 40] plus an arrival in [0, jump + switch] (values are kept
  # less the previous frame's minimum), so the score comes back within two
  # float32 roundings of |V| <= 40 + jump + switch.
  rng = np.random.default_rng(5)
  num_seq, num_frames, num_components, num_yaws = 3, 24, 3, 16
  scores = rng.uniform(0, 40, size=(num_seq, num_frames, num_components, num_yaws))
  observed = rng.uniform(size=(num_seq, num_frames)) > 0.2
  observed[:, 0] = [True, False, True]  # frame 0 is read apart from the others
  scores = np.where(observed[..., None, None], scores, np.nan).astype(np.float32)
  yaw_rate, switch, jump = 0.3, 5.0, 20.0
  band = sequence._band(num_yaws, yaw_rate, jump)
  k, t, _, around = sequence._viterbi(
      jnp.asarray(scores), yaw_rate, switch, jump, band,
      length=None if length is None else jnp.int32(length), observed=jnp.asarray(observed))
  k, t, around = np.asarray(k).T, np.asarray(t).T, np.moveaxis(np.asarray(around), 0, 1)
  masked = np.where(observed[..., None, None], scores, 0.0)
  seq, frame = np.meshgrid(np.arange(num_seq), np.arange(num_frames), indexing="ij")
  expected = np.stack([masked[seq, frame, k, (t + d) % num_yaws] for d in (-1, 0, 1)], axis=-1)
  real = slice(0, num_frames if length is None else length)
  tolerance = 2 * np.finfo(np.float32).eps * (40 + jump + switch)
  np.testing.assert_allclose(around[:, real], expected[:, real], rtol=0, atol=tolerance)
  # The switch term matters: some frames arrive by a component switch.
  assert (k[:, 1:length] != k[:, :(length or num_frames) - 1]).any()


def test_the_default_grid_follows_the_yaw_rate():
  # A one-bin move costs the walk ½ (2π/T / yaw_rate)². The default T is the
  # smallest T >= DEFAULT_NUM_YAWS at which that cost is at most its cost with the
  # default yaw_rate and DEFAULT_NUM_YAWS yaws: that there, finer in proportion for
  # smaller rates.
  base = sequence.DEFAULT_NUM_YAWS

  def step_cost(num_yaws, rate):
    return 0.5 * (2 * np.pi / num_yaws / rate) ** 2

  bound = step_cost(base, sequence.DEFAULT_YAW_RATE)
  for factor in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 7.0):
    rate = sequence.DEFAULT_YAW_RATE / factor
    num_yaws = sequence.default_num_yaws(rate)
    assert num_yaws >= base and step_cost(num_yaws, rate) <= bound * (1 + 1e-9)
    assert num_yaws == base or step_cost(num_yaws - 1, rate) > bound
  assert sequence.default_num_yaws(sequence.DEFAULT_YAW_RATE / 2) == 2 * base
  with pytest.raises(ValueError, match="yaw_rate"):
    sequence.default_num_yaws(0.0)
  # lift_sequence takes it when num_yaws is None.
  keypoints, _, _ = _planted(12)
  rate = sequence.DEFAULT_YAW_RATE / 2
  auto = sequence.lift_sequence(_model(), keypoints, yaw_rate=rate)
  fine = sequence.lift_sequence(_model(), keypoints, yaw_rate=rate, num_yaws=2 * base)
  coarse = sequence.lift_sequence(_model(), keypoints, yaw_rate=rate, num_yaws=base)
  np.testing.assert_array_equal(np.asarray(auto.cost), np.asarray(fine.cost))
  assert not np.array_equal(np.asarray(auto.cost), np.asarray(coarse.cost))


def test_frame_rate_weights_lie_between_the_steady_and_random_walk_rules():
  # At 30 fps they are the validated defaults. At r fps, over one second (closed
  # forms): a yaw turning steadily at ω takes r steps of ω/r, so the walk's cost
  # per frame stays the same; a coefficient changing steadily at ċ takes r
  # steps of ċ/r, and a random walk of variance σ² a second r steps of variance
  # σ²/r. The smoothing weights sit between the two rules that keep either cost
  # per frame (× F² and × F): the steady cost per frame falls with the rate, the
  # random walk's rises, and their product stays the same (the geometric mean).
  assert sequence.frame_rate_weights(30.0) == {
      "yaw_rate": sequence.DEFAULT_YAW_RATE, "smoothing": sequence.DEFAULT_SMOOTHING,
      "blend_smoothing": sequence.DEFAULT_BLEND_SMOOTHING, "max_gap": sequence.DEFAULT_MAX_GAP}
  omega, rate_of_change, variance = 1.3, 0.4, 0.09  # rad/s, units/s, units²/s
  walk, steady, random = [], [], []
  for rate in (15.0, 30.0, 60.0, 120.0, 240.0):
    w = sequence.frame_rate_weights(rate)
    walk.append(0.5 * (omega / rate / w["yaw_rate"]) ** 2)
    steady.append([w[k] * (rate_of_change / rate) ** 2 for k in ("smoothing", "blend_smoothing")])
    random.append([w[k] * variance / rate for k in ("smoothing", "blend_smoothing")])
    assert w["max_gap"] == round(sequence.DEFAULT_MAX_GAP * rate / 30.0)  # one second
  walk, steady, random = np.array(walk), np.array(steady), np.array(random)
  np.testing.assert_allclose(walk, walk[1], rtol=1e-12)
  np.testing.assert_allclose(steady * random, np.broadcast_to(steady[1] * random[1], (5, 2)),
                             rtol=1e-12)
  assert np.all(np.diff(steady, axis=0) < 0) and np.all(np.diff(random, axis=0) > 0)
  with pytest.raises(ValueError, match="frame_rate"):
    sequence.frame_rate_weights(0.0)


def test_viterbi_batched_equals_per_sequence():
  rng = np.random.default_rng(1)
  scores = rng.uniform(0, 3, size=(3, 2, 6, 2, 8)).astype(np.float32)
  k, t, total = sequence.viterbi_path(scores, yaw_rate=0.5)
  assert k.shape == (3, 2, 6) and total.shape == (3, 2)
  k1, t1, total1 = sequence.viterbi_path(scores[2, 1], yaw_rate=0.5)
  np.testing.assert_array_equal(k[2, 1], k1)
  np.testing.assert_array_equal(t[2, 1], t1)
  np.testing.assert_allclose(total[2, 1], total1)


# --- Block-tridiagonal least squares -------------------------------------------


def _block_chain(rng, num_frames, num, rhs_cols):
  """A random SPD block-tridiagonal chain: (diagonal, coupling, rhs, its dense matrix)."""
  grams = []
  for _ in range(num_frames):
    a = rng.normal(size=(3, num))
    grams.append(a.T @ a + 0.1 * np.eye(num))  # data of each frame (rank 3 plus a ridge)
  coupling = rng.uniform(0.5, 2.0, size=(num_frames, num))
  coupling[0] = 0.0
  next_c = np.concatenate([coupling[1:], np.zeros((1, num))])
  diagonal = np.stack([g + np.diag(c + n) for g, c, n in zip(grams, coupling, next_c,
                                                             strict=True)])
  rhs = rng.normal(size=(num_frames, num, rhs_cols))
  dense = np.zeros((num_frames * num,) * 2)
  for f in range(num_frames):
    dense[f * num:(f + 1) * num, f * num:(f + 1) * num] = diagonal[f]
    if f:
      dense[f * num:(f + 1) * num, (f - 1) * num:f * num] = -np.diag(coupling[f])
      dense[(f - 1) * num:f * num, f * num:(f + 1) * num] = -np.diag(coupling[f])
  return diagonal, coupling, rhs, dense


def test_block_tridiagonal_matches_dense_solve():
  rng = np.random.default_rng(0)
  diagonal, coupling, rhs, dense = _block_chain(rng, 7, 4, 2)
  expected = np.linalg.solve(dense, rhs.reshape(-1, 2)).reshape(rhs.shape)
  got = sequence.solve_block_tridiagonal(jnp.asarray(diagonal, jnp.float32),
                                         jnp.asarray(coupling, jnp.float32),
                                         jnp.asarray(rhs, jnp.float32))
  cond = np.linalg.cond(dense)
  np.testing.assert_allclose(got, expected, atol=1e-6 * cond * np.abs(expected).max())


def test_block_tridiagonal_batched_chains_match_dense_solves():
  # A (2, 3) batch of chains of 11×11 blocks (the size of the K=3, J=10 model's
  # systems), each against its own dense float64 solve.
  rng = np.random.default_rng(5)
  chains = [_block_chain(rng, 6, 11, 1) for _ in range(6)]
  stack = lambda i: np.stack([c[i] for c in chains]).reshape((2, 3, *chains[0][i].shape))  # noqa: E731
  got = np.asarray(sequence.solve_block_tridiagonal(
      jnp.asarray(stack(0), jnp.float32), jnp.asarray(stack(1), jnp.float32),
      jnp.asarray(stack(2), jnp.float32))).reshape((6, *chains[0][2].shape))
  for (_, _, rhs, dense), solution in zip(chains, got, strict=True):
    expected = np.linalg.solve(dense, rhs.reshape(-1, 1)).reshape(rhs.shape)
    cond = np.linalg.cond(dense)
    np.testing.assert_allclose(solution, expected, atol=1e-6 * cond * np.abs(expected).max())


@pytest.mark.parametrize("write", ["_write_slices", "_write_masked"])
def test_sweep_inverse_both_platform_variants_match_float64(write):
  # `_sweep_inverse` picks one way of writing each pass per platform; this CPU
  # run checks both against float64 inverses (batch minor, P = 15), with the
  # tolerance of Gauss–Jordan in float32: eps × cond × |inverse|.
  rng = np.random.default_rng(3)
  a = rng.normal(size=(8, 15, 15))
  spd = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(15)
  got = np.asarray(sequence._sweep_passes(jnp.asarray(np.moveaxis(spd, 0, -1), jnp.float32),
                                          getattr(sequence, write)))
  expected = np.linalg.inv(spd)
  for i in range(8):
    bound = 20 * np.finfo(np.float32).eps * np.linalg.cond(spd[i]) * np.abs(expected[i]).max()
    np.testing.assert_allclose(got[..., i], expected[i], atol=bound)


def test_smooth_scalar_matches_dense_least_squares():
  # argmin Σ_f w_fr (x_fr − v_fr)² + l_f (x_fr − x_{f−1,r})² per column r, weights per
  # column (some zero: those frames take their neighbours' values), as dense normal
  # equations.
  rng = np.random.default_rng(1)
  num_frames, cols = 9, 3
  values = rng.normal(size=(num_frames, cols))
  weights = rng.uniform(0.0, 2.0, size=(num_frames, cols))
  weights[3:5, 1] = 0.0
  links = rng.uniform(0.5, 3.0, size=num_frames)
  ridge = 1e-3
  expected = np.zeros_like(values)
  cond = 1.0
  for r in range(cols):
    a = np.diag(weights[:, r] + ridge)
    for f in range(1, num_frames):
      e = np.zeros(num_frames)
      e[f], e[f - 1] = 1.0, -1.0
      a += links[f] * np.outer(e, e)
    expected[:, r] = np.linalg.solve(a, (weights[:, r] + ridge) * values[:, r])
    cond = max(cond, np.linalg.cond(a))
  got = sequence._smooth_scalar(jnp.asarray(values, jnp.float32), jnp.asarray(weights, jnp.float32),
                                jnp.asarray(links, jnp.float32), ridge)
  atol = 1e-6 * cond * np.abs(expected).max()  # float32 eps ~ 1e-7, times the condition
  np.testing.assert_allclose(got, expected, atol=atol)
  # Frame weights (F,) broadcast over the columns.
  got = sequence._smooth_scalar(jnp.asarray(values, jnp.float32),
                                jnp.asarray(weights[:, 0], jnp.float32),
                                jnp.asarray(links, jnp.float32), ridge)
  np.testing.assert_allclose(got[:, 0], expected[:, 0], atol=atol)


def test_gap_lengths_match_a_loop():
  rng = np.random.default_rng(3)
  observed = rng.uniform(size=(200,)) < 0.6
  observed[:4], observed[4] = False, True  # a gap at the start and one at the end
  observed[-3:], observed[-4] = False, True
  expected, f = np.zeros(200, int), 0
  while f < 200:
    if observed[f]:
      f += 1
      continue
    end = f
    while end < 200 and not observed[end]:
      end += 1
    expected[f:end] = end - f
    f = end
  assert (expected > 0).sum() == (~observed).sum() and expected[0] == 4 and expected[-1] == 3
  np.testing.assert_array_equal(sequence._gap_lengths(jnp.asarray(observed)), expected)


# --- The sequence ----------------------------------------------------------------
# The planted motions' bones change with the coefficients (a random linear model,
# not a body), so the tests of steps 1-4 keep each frame's own skeleton
# (fixed_bones=False); step 5 has its own tests below.


def test_planted_motion_recovered_from_clean_video():
  keypoints, truth, yaw = _planted()
  # yaw_rate 0.1: the planted turn (0.03 rad/frame) lags less under the random walk at
  # the ends than with the default 0.05.
  result = sequence.lift_sequence(_model(), keypoints, num_yaws=T, smoothing=1.0, yaw_rate=0.1,
                                  fixed_bones=False)
  assert result.pose3d.shape == (F, L, 3) and bool(result.valid.all())
  assert np.all(np.asarray(result.component) == 0)
  yaw_error = np.angle(np.exp(1j * (np.asarray(result.yaw) - yaw)))
  assert np.abs(yaw_error).max() < 0.02  # grid spacing 0.157 rad; sub-bin and smoothed
  error = np.linalg.norm(np.asarray(result.pose3d) - truth, axis=-1)
  # The pose's joints are ~100-250 mm from the root; the prior's pull and the
  # yaw error (0.02 rad x 250 mm = 5 mm) bound what clean input can give.
  assert error.max() < 8.0, error.max()
  np.testing.assert_allclose(result.reprojected, keypoints, atol=0.02 * 300 * 0.5)


PITCH_ROTATION = np.asarray(camera.elevation_rotation(0.25), np.float32)  # 14°


def _pitched():
  """`_planted` seen by the camera `PITCH_ROTATION`, pitched down by 14°."""
  return _planted(rotation=PITCH_ROTATION.astype(np.float64))


@pytest.mark.parametrize("weighted", [False, True])
def test_a_pitched_camera_given_as_camera_rotation(weighted):
  # The planted motion seen from 14° above: with the camera's rotation the
  # clean video's bound holds (pose in the camera's frame, the subject's yaw),
  # the reprojection matches the 2D; lifted as if level, the pose is tilted.
  keypoints, truth, yaw = _pitched()
  visibility = np.ones(keypoints.shape[:2], np.float32) if weighted else None
  kwargs = dict(num_yaws=T, smoothing=1.0, yaw_rate=0.1)
  result = sequence.lift_sequence(_model(), keypoints, visibility,
                                  camera_rotation=PITCH_ROTATION, **kwargs, fixed_bones=False)
  assert bool(result.valid.all()) and np.all(np.asarray(result.component) == 0)
  assert np.abs(np.angle(np.exp(1j * (np.asarray(result.yaw) - yaw)))).max() < 0.02
  error = np.linalg.norm(np.asarray(result.pose3d) - truth, axis=-1)
  assert error.max() < 8.0, error.max()
  np.testing.assert_allclose(result.reprojected, keypoints, atol=0.02 * 300 * 0.5)
  level = sequence.lift_sequence(_model(), keypoints, visibility, **kwargs, fixed_bones=False)
  assert np.linalg.norm(np.asarray(level.pose3d) - truth, axis=-1).max() > 3 * error.max()


def test_an_identity_camera_rotation_is_the_level_camera():
  keypoints, _, _ = _planted()
  visibility = np.random.default_rng(2).uniform(0.3, 1.0, keypoints.shape[:2]).astype(np.float32)
  model = _model()
  kwargs = dict(num_yaws=T, smoothing=1.0, yaw_rate=0.1)  # the pitched test's programs
  for vis in (None, visibility):
    level = sequence.lift_sequence(model, keypoints, vis, **kwargs)
    same = sequence.lift_sequence(model, keypoints, vis, camera_rotation=np.eye(3), **kwargs)
    np.testing.assert_array_equal(level.component, same.component)
    # float32: the rotated path's sums in another order (~1e-6 relative of
    # poses ~250 mm from the root, through the solve).
    np.testing.assert_allclose(same.pose3d, level.pose3d, atol=1e-2)


def test_a_frame_whose_whole_grid_failed_does_not_derail_the_path(monkeypatch):
  # grid_scores marks a (k, θ) whose linearised problem failed numerically +inf.
  # A frame with every (k, θ) failed must count as unobserved: summed into the
  # Viterbi it made every later path cost +inf, and the yaw stuck while the
  # person turned (errors growing to 55 mm, all frames still valid).
  keypoints, truth, _ = _planted()
  original = sequence.grid_scores
  monkeypatch.setattr(sequence, "grid_scores",
                      lambda *a, **k: original(*a, **k).at[..., 10, :, :].set(jnp.inf))
  sequence._lift_sequence_jit.clear_cache()  # trace with the patched search
  try:
    result = sequence.lift_sequence(_model(), keypoints, num_yaws=T, smoothing=1.0,
                                    yaw_rate=0.1, fixed_bones=False)
  finally:
    sequence._lift_sequence_jit.clear_cache()
  assert bool(result.valid.all())  # frame 10 is filled from its neighbours
  error = np.linalg.norm(np.asarray(result.pose3d) - truth, axis=-1)
  assert error.max() < 8.0, error.max()  # the clean video's bound


def test_noisy_video_with_a_gap_beats_per_frame_lifting():
  keypoints, truth, _ = _planted()
  rng = np.random.default_rng(3)
  noisy = keypoints + rng.normal(scale=3.0, size=keypoints.shape).astype(np.float32)
  visibility = np.ones(keypoints.shape[:2], np.float32)
  visibility[20:26] = 0.0  # six frames with nothing visible
  visibility[30:35, :5] = 0.0  # legs hidden for five frames
  noisy[20:26] = np.nan
  model = _model()
  per_frame = lifting.lift(model, noisy, visibility, num_yaws=T)
  result = sequence.lift_sequence(model, noisy, visibility, num_yaws=T, max_gap=6,
                                  fixed_bones=False)
  assert not bool(per_frame.valid[20:26].any())
  assert bool(result.valid.all())  # the gap is filled from the neighbours
  err_seq = np.linalg.norm(np.asarray(result.pose3d) - truth, axis=-1).mean(-1)
  err_lift = np.linalg.norm(np.asarray(per_frame.pose3d) - truth, axis=-1).mean(-1)
  ok = np.asarray(per_frame.valid)
  assert ok.sum() == F - 6
  assert err_seq[ok].mean() < 0.8 * err_lift[ok].mean(), (err_seq[ok].mean(),
                                                           err_lift[ok].mean())
  assert err_seq[20:26].max() < 3 * err_seq[ok].mean() + 5.0
  # Too long a gap: only that run is not valid.
  short = sequence.lift_sequence(model, noisy, visibility, num_yaws=T, max_gap=5,
                                 fixed_bones=False)
  np.testing.assert_array_equal(np.asarray(short.valid), ~np.isin(np.arange(F), range(20, 26)))
  assert np.all(np.isnan(np.asarray(short.pose3d)[20:26]))


def test_cost_is_the_frames_regularised_least_squares_objective_at_the_answer():
  # The documented `cost`: ‖D(w − A x)‖² + Σ t x² of each frame at its answer,
  # x = (s, s·a), w in the sequence's normalised units, the translation at its
  # optimum; recomputed here in float64 from the returned yaw, component,
  # coefficients and scale. Small next to ‖Dw‖² (3 px noise on a 300 px
  # pose), which a quadratic-form evaluation loses to cancellation.
  keypoints, _, _ = _planted()
  rng = np.random.default_rng(5)
  noisy = (keypoints + rng.normal(scale=3.0, size=keypoints.shape)).astype(np.float32)
  visibility = rng.uniform(0.3, 1.0, size=keypoints.shape[:2]).astype(np.float32)
  visibility[:, :3] *= rng.uniform(size=(F, 1)) > 0.3  # the legs hidden in some frames
  model, obs_noise = _model(), 0.05
  result = sequence.lift_sequence(model, noisy, visibility, num_yaws=T, obs_noise=obs_noise)
  assert bool(result.valid.all())
  weights = visibility.astype(np.float64) ** 2
  size = float(np.median(np.asarray(camera.normalize_keypoints(noisy, weights).size)))
  points = noisy.astype(np.float64) * [1.0, -1.0] / size  # y up; any origin
  scale = (np.asarray(result.scale, np.float64) * float(model.limb_scale) * 1000.0
           / np.asarray(result.size, np.float64) / size)  # s, normalised units
  k, a, yaw = (np.asarray(result.component), np.asarray(result.coeffs, np.float64),
               np.asarray(result.yaw, np.float64))
  body = (np.asarray(model.mean, np.float64)[k]
          + np.einsum("fj,fjlc->flc", a, np.asarray(model.basis, np.float64)[k]))
  projected = scale[:, None, None] * np.stack(
      [np.cos(yaw)[:, None] * body[..., 0] + np.sin(yaw)[:, None] * body[..., 2],
       body[..., 1]], axis=-1)
  residual = points - projected
  residual -= (np.sum(weights[..., None] * residual, axis=1)
               / np.sum(weights, axis=1)[:, None])[:, None]  # the optimal translation
  data = np.sum(weights[..., None] * residual**2, axis=(1, 2))
  tikhonov = np.asarray(sequence._Prior(model, jnp.float32(obs_noise)).tikhonov, np.float64)
  prior = np.sum(tikhonov[k, 1:] * (scale[:, None] * a) ** 2, axis=1)
  signal = np.sum(weights[..., None] * (points - points.mean(1, keepdims=True)) ** 2, (1, 2))
  assert np.all(data + prior < 0.05 * signal)  # a cost that cancels most of ‖Dw‖²
  # float32: the answer's rounding (a few ulps, ~1e-6 relative) moves the
  # residuals by ~1e-6·|Dw|, the cost by ~2e-6·sqrt(cost·‖Dw‖²), and summing
  # L = 17 joints' terms adds ~L·6e-8 of the cost. (From its residuals the
  # cost is off by 3% of this bound here; evaluated as the quadratic form
  # xᵀHx − 2bᵀx + ‖Dw‖², as it was, by 99.8%.)
  tolerance = 4e-6 * np.sqrt((data + prior) * signal) + 1e-5 * (data + prior)
  np.testing.assert_array_less(np.abs(np.asarray(result.cost, np.float64) - (data + prior)),
                               tolerance)


def test_blend_moves_visible_joints_onto_the_observation():
  # Without temporal smoothing of the offsets and with weight 1, each visible joint's
  # image-plane position is the observation's, back-projected, before the pose is
  # scaled back to the model pose's size by a factor c per frame (depth: c times the
  # model's), as `lift`'s blend.
  keypoints, _, _ = _planted()
  rng = np.random.default_rng(5)
  noisy = keypoints + rng.normal(scale=4.0, size=keypoints.shape).astype(np.float32)
  model = _model()
  plain = sequence.lift_sequence(model, noisy, num_yaws=T, reconstruction="model",
                                 fixed_bones=False)
  blend = sequence.lift_sequence(model, noisy, num_yaws=T, blend_weight=1.0,
                                 blend_smoothing=0.0, fixed_bones=False)
  for name in ("component", "yaw", "scale", "reprojected", "valid"):
    np.testing.assert_array_equal(np.asarray(getattr(blend, name)),
                                  np.asarray(getattr(plain, name)))
  zb, zm = np.asarray(blend.pose3d[..., 2]), np.asarray(plain.pose3d[..., 2])
  c = np.sum(zb * zm, axis=-1) / np.sum(zm * zm, axis=-1)
  assert np.all(np.abs(c - 1) < 0.25), c
  np.testing.assert_allclose(zb, c[:, None] * zm, atol=1e-3)
  scale = np.asarray(plain.scale)[:, None, None]  # pixels per mm
  moved = (np.asarray(blend.pose3d) / c[:, None, None] - np.asarray(plain.pose3d))[..., :2]
  expected = (noisy - np.asarray(plain.reprojected)) * np.array([1.0, -1.0])
  # Root-relative output: the root's own move is subtracted from every joint.
  np.testing.assert_allclose(moved * scale, expected - expected[:, :1], atol=0.05)
  np.testing.assert_allclose(limb_norm(np.asarray(blend.pose3d)),
                             limb_norm(np.asarray(plain.pose3d)), rtol=1e-4)


def test_blend_offsets_are_smoothed_over_time_and_reach_hidden_frames():
  # A joint drawn 12 px off the model's support in every frame (a systematic offset)
  # plus 3 px noise: the smoothed blend moves it by the offset, without the noise,
  # also in frames where it is hidden.
  keypoints, _, _ = _planted()
  rng = np.random.default_rng(6)
  noisy = keypoints + rng.normal(scale=3.0, size=keypoints.shape).astype(np.float32)
  wrist = 13
  noisy[:, wrist, 0] += 12.0
  visibility = np.ones(keypoints.shape[:2], np.float32)
  visibility[15:22, wrist] = 0.0
  model = _model()
  plain = sequence.lift_sequence(model, noisy, visibility, num_yaws=T, reconstruction="model",
                                 fixed_bones=False)
  kwargs = dict(blend_weight=1.0, blend_hidden=1.0)
  smooth = sequence.lift_sequence(model, noisy, visibility, num_yaws=T, blend_smoothing=100.0,
                                  **kwargs, fixed_bones=False)
  raw = sequence.lift_sequence(model, noisy, visibility, num_yaws=T, blend_smoothing=0.0,
                               **kwargs, fixed_bones=False)

  def move_px(result):  # the wrist's move relative to the root, pixels, size factor removed
    c = np.sum(result.pose3d[..., 2] * plain.pose3d[..., 2], -1) / np.sum(
        plain.pose3d[..., 2] ** 2, -1)
    moved = np.asarray(result.pose3d) / np.asarray(c)[:, None, None] - np.asarray(plain.pose3d)
    return (moved[:, wrist, :2] - moved[:, 0, :2]) * np.asarray(plain.scale)[:, None]

  target = (noisy - np.asarray(plain.reprojected))[:, wrist] - (
      noisy - np.asarray(plain.reprojected))[:, 0]  # per-frame offsets, pixels, y down
  mean_offset = target[np.arange(F) < 15].mean(0)
  smooth_move, raw_move = move_px(smooth), move_px(raw)
  smooth_move[:, 1] *= -1
  raw_move[:, 1] *= -1
  assert np.abs(mean_offset[0]) > 4.0  # much of the planted offset survives the fit
  # Hidden frames: without smoothing the wrist does not move (relative to the root, which
  # moves by its own offset); with it, the wrist takes its neighbours' offset.
  root_offset = (noisy - np.asarray(plain.reprojected))[15:22, 0] * np.array([1.0, -1.0])
  np.testing.assert_allclose(raw_move[15:22], -root_offset * np.array([1.0, -1.0]), atol=0.05)
  np.testing.assert_allclose(smooth_move[15:22], np.broadcast_to(mean_offset, (7, 2)),
                             atol=4.0)
  # Visible frames: the smoothed move is closer to the offset's mean than the raw one,
  # which carries each frame's noise.
  visible = np.isin(np.arange(F), range(15, 22), invert=True)
  spread = lambda m: np.sqrt(np.mean((m[visible] - mean_offset) ** 2))  # noqa: E731
  assert spread(smooth_move) < 0.5 * spread(raw_move), (spread(smooth_move), spread(raw_move))


def _symmetric_mean_lengths(poses, frames):
  """(17,) bone lengths (0 for the root): the mean over `frames` of each bone's
  length, left and right averaged (NumPy, float64)."""
  poses = np.asarray(poses, np.float64)[frames]
  parents = np.maximum(np.asarray(H36M17.parents), 0)
  lengths = np.linalg.norm(poses - poses[:, parents], axis=-1).mean(0)
  for left, right in H36M17.left_right:  # a bone is named by its child joint
    lengths[left] = lengths[right] = 0.5 * (lengths[left] + lengths[right])
  return lengths


def test_one_skeleton_puts_each_frames_pose_on_the_mean_symmetric_bones():
  # Step 5 against an independent NumPy retargeting (bvh_writer.fix_bone_lengths)
  # of the per-frame skeletons' output: lengths averaged over the valid frames only
  # (a gap longer than max_gap makes frames 20-25 invalid), left and right averaged,
  # directions and root kept; nothing but pose3d changes.
  keypoints, _, _ = _planted()
  rng = np.random.default_rng(7)
  noisy = keypoints + rng.normal(scale=3.0, size=keypoints.shape).astype(np.float32)
  visibility = rng.uniform(0.3, 1.0, size=keypoints.shape[:2]).astype(np.float32)
  visibility[20:26] = 0.0
  model = _model()
  own = sequence.lift_sequence(model, noisy, visibility, num_yaws=T, max_gap=5,
                               fixed_bones=False)
  fixed = sequence.lift_sequence(model, noisy, visibility, num_yaws=T, max_gap=5)
  valid = np.asarray(own.valid)
  assert valid.sum() == F - 6 and not valid[20:26].any()
  for name in ("component", "yaw", "scale", "coeffs", "cost", "reprojected", "valid"):
    np.testing.assert_array_equal(np.asarray(getattr(fixed, name)),
                                  np.asarray(getattr(own, name)))
  lengths = _symmetric_mean_lengths(own.pose3d, valid)
  expected = bvh_writer.fix_bone_lengths(np.asarray(own.pose3d)[valid], lengths)
  # float32: each joint is the root plus up to 5 rescaled bones of ~100 mm; a
  # few roundings of ~6e-8 relative each, on positions up to ~500 mm.
  np.testing.assert_allclose(np.asarray(fixed.pose3d)[valid], expected, atol=1e-3)
  assert np.all(np.isnan(np.asarray(fixed.pose3d)[~valid]))
  # The per-frame skeletons did differ: by more than a millimetre somewhere.
  assert np.abs(np.asarray(own.pose3d)[valid] - expected).max() > 1.0


def test_one_skeleton_recovers_a_rigid_body_better_than_per_frame_skeletons():
  # A motion of a model with a body's symmetry, retargeted onto one symmetric
  # skeleton at the training size (limb norm limb_scale): a body whose bones keep
  # their lengths, seen with 3 px noise. The frames' poses scatter its bone
  # lengths; averaged over the video they come close to the planted ones, and the
  # poses with them.
  model = _mirror_symmetric_model()
  _, moving, _ = _planted(model=model)
  lengths = _symmetric_mean_lengths(moving, np.ones(F, bool))
  lengths *= float(model.limb_scale) * 1000.0 / np.sqrt(np.sum(lengths**2))
  truth = bvh_writer.fix_bone_lengths(moving, lengths)  # (F, L, 3) mm, root at 0
  t = np.arange(F)
  rng = np.random.default_rng(8)
  keypoints = np.asarray(camera.weak_perspective(
      truth, 0.6, translation=np.stack([200.0 + t, 300.0 - 0.5 * t], 1)), np.float32)
  keypoints += rng.normal(scale=3.0, size=keypoints.shape).astype(np.float32)
  kwargs = dict(num_yaws=T, smoothing=1.0, yaw_rate=0.1)
  own = sequence.lift_sequence(model, keypoints, fixed_bones=False, **kwargs)
  fixed = sequence.lift_sequence(model, keypoints, **kwargs)
  assert bool(own.valid.all()) and bool(fixed.valid.all())
  bone = lambda x: np.linalg.norm(x - x[:, np.maximum(H36M17.parents, 0)], axis=-1)  # noqa: E731
  own_bones, fixed_bones = bone(np.asarray(own.pose3d)), bone(np.asarray(fixed.pose3d))
  assert np.ptp(fixed_bones, axis=0).max() < 1e-3 and np.ptp(own_bones, axis=0).max() > 5.0
  bone_error = lambda b: np.abs(b - lengths).mean()  # noqa: E731
  assert bone_error(fixed_bones) < 0.5 * bone_error(own_bones), (
      bone_error(fixed_bones), bone_error(own_bones))
  error = lambda r: np.linalg.norm(np.asarray(r.pose3d) - truth, axis=-1).mean()  # noqa: E731
  assert error(fixed) < 0.95 * error(own), (error(fixed), error(own))  # 5.25 against 5.75 mm


def test_one_skeleton_takes_the_lifted_frames_when_none_is_plausible():
  # A symmetric body seen through the asymmetric `_model()`: every frame is lifted
  # but none is plausible (the residual is far above its limit), so the lengths
  # are the means over the lifted frames.
  _, moving, _ = _planted(model=_mirror_symmetric_model())
  t = np.arange(F)
  keypoints = np.asarray(camera.weak_perspective(
      moving, 0.6, translation=np.stack([200.0 + t, 300.0 - 0.5 * t], 1)), np.float32)
  kwargs = dict(num_yaws=T, smoothing=1.0, yaw_rate=0.1)
  model = _model()
  own = sequence.lift_sequence(model, keypoints, fixed_bones=False, **kwargs)
  fixed = sequence.lift_sequence(model, keypoints, **kwargs)
  lifted = np.isfinite(np.asarray(own.pose3d)).all(axis=(1, 2))  # (some have scale <= 0)
  assert not np.asarray(own.plausible).any() and lifted.sum() >= F // 2
  lengths = _symmetric_mean_lengths(own.pose3d, lifted)
  expected = bvh_writer.fix_bone_lengths(np.asarray(own.pose3d)[lifted], lengths)
  np.testing.assert_allclose(np.asarray(fixed.pose3d)[lifted], expected,
                             atol=1e-3)  # the float32 bound of the test above
  assert np.abs(np.asarray(own.pose3d)[lifted] - expected).max() > 1.0


def test_nan_joints_without_a_visibility_are_hidden():
  keypoints, _, _ = _planted()
  keypoints = keypoints.copy()
  keypoints[:, 3] = np.nan  # one foot never detected
  model = _model()
  hidden = sequence.lift_sequence(model, keypoints, num_yaws=T)
  explicit = sequence.lift_sequence(
      model, keypoints, np.isfinite(keypoints).all(-1).astype(np.float32), num_yaws=T)
  assert bool(hidden.valid.all())
  np.testing.assert_array_equal(np.asarray(hidden.pose3d), np.asarray(explicit.pose3d))


def test_batch_shape_and_jit():
  keypoints, _, _ = _planted()
  batch = np.stack([keypoints, keypoints[::-1] + 5.0])[None]  # (1, 2, F, L, 2)
  model = _model()
  result = sequence.lift_sequence(model, batch, num_yaws=T)
  assert result.pose3d.shape == (1, 2, F, L, 3) and result.valid.shape == (1, 2, F)
  # One sequence under an outer jit: the same as its place in the eager batch.
  jitted = jax.jit(lambda kp: sequence.lift_sequence(model, kp, num_yaws=T))(batch[0, 1])
  assert jitted.pose3d.shape == (F, L, 3)
  np.testing.assert_allclose(jitted.pose3d, result.pose3d[0, 1], atol=1e-3)
  np.testing.assert_array_equal(jitted.component, result.component[0, 1])


def test_sequences_in_threads_give_the_answers_of_one_call():
  # Five videos with hidden joints lifted in one call, and as a (1, 5) batch in
  # 2 threads: groups of 3 sequences, the last padded with a copy of the last
  # video. Each group size runs its own program, so the answers agree to
  # float32 rounding (the tolerance of test_batch_shape_and_jit), not bit for bit.
  keypoints, _, _ = _planted()
  rng = np.random.default_rng(11)
  videos = np.stack([keypoints + 7.0 * i for i in range(3)]
                    + [keypoints[::-1], keypoints[::-1] + 3.0])
  videos = videos + rng.normal(scale=1.0, size=videos.shape).astype(np.float32)
  vis = rng.uniform(0.5, 1.0, size=videos.shape[:-1]).astype(np.float32)
  vis[rng.uniform(size=vis.shape) < 0.15] = 0.0
  videos[vis == 0] = np.nan
  model = _model()
  one = sequence.lift_sequence(model, videos, vis, num_yaws=T, threads=1)
  programs = sequence._lift_sequence_jit._cache_size()
  grouped = sequence.lift_sequence(model, videos[None], vis[None], num_yaws=T, threads=2)
  assert sequence._lift_sequence_jit._cache_size() == programs + 1  # one program, both groups
  assert grouped.pose3d.shape == (1, 5, F, L, 3)
  np.testing.assert_array_equal(grouped.component[0], one.component)
  np.testing.assert_array_equal(grouped.valid[0], one.valid)
  np.testing.assert_allclose(grouped.pose3d[0], one.pose3d, atol=1e-3)
  np.testing.assert_allclose(grouped.yaw[0], one.yaw, atol=1e-5)
  with pytest.raises(ValueError, match="threads"):
    sequence.lift_sequence(model, videos, vis, num_yaws=T, threads=0)
  # No videos: an empty result of the batch shape (it used to fail inside XLA).
  empty = sequence.lift_sequence(model, videos[:0], vis[:0], num_yaws=T)
  assert empty.pose3d.shape == (0, F, L, 3) and empty.valid.shape == (0, F)


def test_padding_to_the_compiled_length_changes_nothing():
  # Eager calls pad the frames to a power of two (F = 40 -> 64) so that other
  # lengths reuse the program; under an outer jit there is no padding. The real
  # frames' answers must be the unpadded ones, and a video ending in a gap longer
  # than max_gap must keep that gap's frames invalid (the padding is not part of
  # the gap). (Unweighted, test_batch_shape_and_jit compares the same two ways.)
  keypoints, _, _ = _planted()
  rng = np.random.default_rng(5)
  keypoints = keypoints + rng.normal(scale=2.0, size=keypoints.shape).astype(np.float32)
  vis = rng.uniform(0.4, 1.0, size=keypoints.shape[:2]).astype(np.float32)
  vis[-4:] = 0.0  # the video ends in a gap of 4 frames > max_gap = 2
  keypoints[-4:] = np.nan
  model = _model()
  options = dict(num_yaws=T, max_gap=2)
  eager = sequence.lift_sequence(model, keypoints, vis, **options)
  unpadded = jax.jit(lambda kp, v: sequence.lift_sequence(model, kp, v, **options))(
      keypoints, vis)
  np.testing.assert_array_equal(eager.valid, unpadded.valid)
  assert not bool(eager.valid[-4:].any()) and bool(eager.valid[:-4].all())
  np.testing.assert_array_equal(eager.component, unpadded.component)
  np.testing.assert_allclose(eager.pose3d, unpadded.pose3d, atol=1e-3)
  np.testing.assert_allclose(eager.yaw, unpadded.yaw, atol=1e-5)
  # Another length in the same bucket reuses the compiled program.
  compiled = sequence._lift_sequence_jit._cache_size()
  shorter = sequence.lift_sequence(model, keypoints[7:], vis[7:], **options)
  assert sequence._lift_sequence_jit._cache_size() == compiled
  assert shorter.pose3d.shape == (F - 7, L, 3)


@pytest.mark.parametrize("pitched", [False, True])
def test_grid_scores_agree_with_lift(pitched):
  keypoints, _, _ = _pitched() if pitched else _planted()
  rotation = PITCH_ROTATION if pitched else None
  rng = np.random.default_rng(0)
  visibility = rng.uniform(0.3, 1.0, size=keypoints.shape[:2]).astype(np.float32)
  model = _model()
  for vis in (None, visibility):
    scores = np.asarray(lifting.grid_scores(model, keypoints, vis, num_yaws=T,
                                            camera_rotation=rotation))
    assert scores.shape == (F, K, T)
    best = scores.reshape(F, -1).argmin(-1)
    lifted = lifting.lift(model, keypoints, vis, num_yaws=T, camera_rotation=rotation)
    np.testing.assert_array_equal(best // T, lifted.component)
    np.testing.assert_allclose(np.angle(np.exp(1j * ((best % T) * 2 * np.pi / T - np.asarray(
        lifted.yaw)))), 0.0, atol=1e-5)


def test_grid_scores_unweighted_equal_weighted_with_unit_weights():
  # Two independent searches (the unweighted products, frames major; the weighted
  # Gram solves, frames minor, moved) must give the same (K, T) grid per frame.
  keypoints, _, _ = _planted()
  model = _model()
  unweighted = np.asarray(lifting.grid_scores(model, keypoints, num_yaws=T), np.float64)
  weighted = np.asarray(lifting.grid_scores(model, keypoints, np.ones(keypoints.shape[:2]),
                                            num_yaws=T), np.float64)
  assert unweighted.shape == weighted.shape == (F, K, T)
  # float32 costs of unit-size normalised points: relative errors of ~1e-6 of the
  # largest per-frame cost (the prior offset added to both is exact).
  spread = np.max(np.abs(unweighted), axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(unweighted, weighted, atol=1e-4 * spread.max())
  np.testing.assert_array_equal(unweighted.reshape(F, -1).argmin(-1) // T,
                                weighted.reshape(F, -1).argmin(-1) // T)


@pytest.mark.parametrize("kwargs, match", [
    ({"yaw_rate": 0.0}, "yaw_rate must be"),
    ({"smoothing": -1.0}, "smoothing must be"),
    ({"num_yaws": 2}, "num_yaws"),
    ({"reconstruction": "mean"}, "reconstruction must be"),
    ({"blend_weight": 1.5}, "blend_weight must be"),
    ({"blend_smoothing": float("nan")}, "blend_smoothing must be"),
    ({"blend_smoothing": float("inf")}, "blend_smoothing must be"),
    ({"blend_hidden": -0.1}, "blend_hidden must be"),
    ({"camera_rotation": np.eye(2)}, r"camera_rotation must be \(3, 3\)"),
])
def test_bad_options(kwargs, match):
  keypoints, _, _ = _planted(4)
  with pytest.raises(ValueError, match=match):
    sequence.lift_sequence(_model(), keypoints, **kwargs)


def test_bad_shapes():
  with pytest.raises(ValueError, match=r"\(\.\.\., F, 17, 2\)"):
    sequence.lift_sequence(_model(), np.zeros((17, 2)))
  with pytest.raises(ValueError, match="visibility shape"):
    sequence.lift_sequence(_model(), np.zeros((3, 17, 2)), np.ones((3, 16)))
  model = _model()
  sixteen = model.replace(mean=model.mean[:, :16], basis=model.basis[:, :, :16])
  with pytest.raises(ValueError, match="H36M17 pose model"):
    sequence.lift_sequence(sixteen, np.zeros((3, 16, 2)))
