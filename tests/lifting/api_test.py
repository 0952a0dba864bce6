"""Tests of `lift3d.lift` against float64 brute force, planted poses and invariances."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lift3d import camera
from lift3d.eval import pa_mpjpe
from lift3d.lifting import DEFAULT_BLEND_WEIGHT, LiftResult, api, grid_scores, lift
from lift3d.skeleton import H36M17
from tests.lifting.planted import (
  EPS32,
  LIMB_SCALE,
  MODEL,
  B,
  J,
  L,
  T,
  exact_reference,
  limb_norm,
  linearised_reference,
  make_model,
  normalised,
  plant,
  random_frames,
)

OBS = 0.05  # σ_obs used with the hand-built model


def _errors(result, truth_mm):
  mpjpe = np.linalg.norm(np.asarray(result.pose3d) - truth_mm, axis=-1).mean(-1)
  pa = np.asarray(pa_mpjpe(np.asarray(result.pose3d), truth_mm))
  return mpjpe, pa


class TestExactObjective:
  """The answer minimises the exact objective: brute force over s and ridge in a."""

  # An odd number of yaws has no θ/θ + π pairs: the unpaired searches. Half
  # of T: `candidates=num_yaws` unrolls a candidate loop of that length, whose
  # compile time dominated the test (36 s for the four cases at T = 24, 25).
  @pytest.mark.parametrize("num_yaws", [T // 2, T // 2 + 1])
  @pytest.mark.parametrize("weighted", [False, True])
  def test_exhaustive_answer_equals_brute_force(self, weighted, num_yaws):
    kp, vis = random_frames(3, hidden=weighted)
    vis_in = vis if weighted else None
    # candidates = T re-ranks every local minimum, opposite_yaws both yaws of
    # each pair: the search is exhaustive.
    result = lift(MODEL, kp, vis_in, num_yaws=num_yaws, obs_noise=OBS, candidates=num_yaws,
                  opposite_yaws=True)
    checked = 0
    for b in range(B):
      ref = exact_reference(MODEL, kp[b], vis[b] if weighted else None, num_yaws, obs_noise=OBS)
      order = np.sort(ref["score"].ravel())
      # Float32 rounding of F: the cancelling terms are of the size of ||Dw||²/σ².
      tol_f = 64 * EPS32 * ref["data_norm"]
      if order[1] - order[0] < tol_f:
        continue  # a tie within rounding: float32 may pick either
      checked += 1
      k, t = np.unravel_index(np.argmin(ref["score"]), ref["score"].shape)
      assert int(result.component[b]) == k
      np.testing.assert_allclose(float(result.yaw[b]), 2 * np.pi * t / num_yaws, atol=1e-5)
      np.testing.assert_allclose(float(result.cost[b]), ref["F"][k, t], atol=tol_f)
      # log s sits at a flat minimum: an F error δ moves it by sqrt(2δ/F_tt).
      tol_t = np.sqrt(2 * tol_f / ref["F_tt"][k, t]) + 1e-5
      a = np.asarray(result.coeffs[b])
      tol_a = np.abs(ref["da"][k, t]) * tol_t + 16 * EPS32 * ref["cond"][k, t] * np.abs(
          ref["a"][k, t]).max()
      np.testing.assert_array_less(np.abs(a - ref["a"][k, t]), tol_a + 1e-6)
      # The reported scale in px/mm, from s in normalised units per model unit.
      _, _, size_px = normalised(kp[b], vis[b] if weighted else None)
      model_pose = np.asarray(MODEL.mean[k]) + np.einsum("j,jlc->lc", ref["a"][k, t],
                                                         np.asarray(MODEL.basis[k]))
      expected = ref["s"][k, t] * size_px * limb_norm(model_pose) / (LIMB_SCALE * 1000)
      np.testing.assert_allclose(float(result.scale[b]), expected, rtol=2 * tol_t + 1e-4)
    assert checked >= B - 1, checked

  def test_default_candidates_find_the_exhaustive_answer_on_planted_frames(self):
    kp, _, _, _ = plant(7, noise_px=3.0)
    full = lift(MODEL, kp, num_yaws=T, obs_noise=OBS, candidates=T, opposite_yaws=True)
    default = lift(MODEL, kp, num_yaws=T, obs_noise=OBS)
    np.testing.assert_array_equal(np.asarray(default.component), np.asarray(full.component))
    np.testing.assert_allclose(np.asarray(default.cost), np.asarray(full.cost), rtol=1e-5)

  def test_scale_is_positive_and_an_upside_down_image_is_not_a_plausible_pose(self):
    kp, _, _, _ = plant(8)
    flipped = kp.copy()
    flipped[..., 1] = -flipped[..., 1]  # the image upside down
    for frames in (kp, flipped):
      for vis in (None, np.ones((B, L), np.float32)):
        result = lift(MODEL, frames, vis, num_yaws=T, obs_noise=OBS)
        assert np.all(np.asarray(result.scale) > 0)
    upright = lift(MODEL, kp, num_yaws=T, obs_noise=OBS)
    assert bool(upright.valid.all())
    # Turned upside down, no yaw of an upright model explains it without a
    # negative scale, which is not a solution.
    upside_down = lift(MODEL, flipped, num_yaws=T, obs_noise=OBS)
    assert not bool(upside_down.valid.any())
    assert np.all(np.isfinite(np.asarray(upside_down.pose3d)))  # kept for inspection


class TestPlantedRecovery:

  def test_exact_2d_recovers_pose_yaw_component(self):
    kp, truth, yaws, comps = plant(10)
    result = lift(MODEL, kp, num_yaws=T, obs_noise=1e-3)
    assert bool(result.valid.all())
    np.testing.assert_array_equal(np.asarray(result.component), comps)
    np.testing.assert_allclose(np.asarray(result.yaw), yaws, atol=1e-5)
    mpjpe, pa = _errors(result, truth)
    # Pose size: the limb norm is 500 mm, joints ~100 mm from their centroid.
    assert mpjpe.max() < 3.0 and pa.max() < 3.0, (mpjpe, pa)
    np.testing.assert_allclose(np.asarray(result.mahalanobis) ** 2 < 3 * J, True)

  def test_noisy_occluded_2d_recovers_pose_yaw_component(self):
    kp, truth, yaws, comps = plant(11, noise_px=1.0)
    rng = np.random.default_rng(0)
    vis = (rng.uniform(size=(B, L)) >= 0.3).astype(np.float32)
    kp = np.where(vis[..., None] > 0, kp, np.nan).astype(np.float32)
    result = lift(MODEL, kp, vis, num_yaws=T, obs_noise=0.01)
    assert result.valid.all()
    np.testing.assert_array_equal(np.asarray(result.component), comps)
    np.testing.assert_allclose(np.asarray(result.yaw), yaws, atol=1e-5)
    mpjpe, pa = _errors(result, truth)
    assert mpjpe.max() < 25.0 and pa.max() < 20.0, (mpjpe, pa)
    # Reprojection matches the visible input to about the noise level.
    err = np.linalg.norm(np.asarray(result.reprojected) - kp, axis=-1)[vis > 0]
    assert np.median(err) < 3.0

  def test_size_is_the_model_size(self):
    kp, vis = random_frames(9)
    result = lift(MODEL, kp, vis, num_yaws=T, obs_noise=OBS, reconstruction="model")
    norms = limb_norm(np.asarray(result.pose3d))
    np.testing.assert_allclose(norms, LIMB_SCALE * 1000, rtol=1e-5)
    # The default blend moves joints in the image plane and scales back: the
    # same answer, validity and size.
    blend = lift(MODEL, kp, vis, num_yaws=T, obs_noise=OBS)
    np.testing.assert_array_equal(np.asarray(blend.component), np.asarray(result.component))
    np.testing.assert_array_equal(np.asarray(blend.valid), np.asarray(result.valid))
    np.testing.assert_allclose(limb_norm(np.asarray(blend.pose3d)), LIMB_SCALE * 1000,
                               rtol=1e-5)

  def test_blend_moves_visible_joints_towards_the_observation(self):
    kp, vis = random_frames(14)
    model = lift(MODEL, kp, vis, num_yaws=T, obs_noise=OBS, reconstruction="model")
    blend = lift(MODEL, kp, vis, num_yaws=T, obs_noise=OBS, reconstruction="blend",
                 blend_weight=1.0)
    default = lift(MODEL, kp, vis, num_yaws=T, obs_noise=OBS)
    explicit = lift(MODEL, kp, vis, num_yaws=T, obs_noise=OBS, reconstruction="blend",
                    blend_weight=DEFAULT_BLEND_WEIGHT)
    np.testing.assert_array_equal(np.asarray(default.pose3d), np.asarray(explicit.pose3d))
    # The blended pose is scaled back to the training size by a factor c per
    # frame: depth is c times the model's; with weight 1 and full visibility a
    # joint's image-plane position is c times the observation's, back-projected.
    zb, zm = np.asarray(blend.pose3d[..., 2]), np.asarray(model.pose3d[..., 2])
    c = np.sum(zb * zm, axis=-1) / np.sum(zm * zm, axis=-1)
    assert np.all(np.abs(c - 1) < 0.25), c
    np.testing.assert_allclose(zb, c[:, None] * zm, atol=1e-3)
    reprojected = np.asarray(model.reprojected)
    scale = np.asarray(model.scale)[:, None, None]
    moved = (np.asarray(blend.pose3d) / c[:, None, None] - np.asarray(model.pose3d))[..., :2]
    moved = moved * scale
    expected = (np.nan_to_num(kp) - reprojected) * np.array([1.0, -1.0]) * vis[..., None]
    root_shift = expected[:, :1]
    np.testing.assert_allclose(moved, expected - root_shift, atol=2e-2 * scale.max() + 1e-2)

  def test_hidden_joints_have_no_effect(self):
    kp, vis = random_frames(12)
    a = lift(MODEL, kp, vis, num_yaws=T)
    kp2 = np.where(vis[..., None] > 0, kp, 1e6).astype(np.float32)
    b = lift(MODEL, kp2, vis, num_yaws=T)
    np.testing.assert_allclose(np.asarray(a.pose3d), np.asarray(b.pose3d), atol=1e-3)

  @pytest.mark.parametrize("weighted", [False, True])
  def test_camera_rotation(self, weighted):
    rotation = np.asarray(camera.elevation_rotation(0.4))
    kp, truth, yaws, comps = plant(13, rotation=rotation)
    vis = np.ones((B, L), np.float32) if weighted else None
    result = lift(MODEL, kp, vis, num_yaws=T, camera_rotation=rotation, obs_noise=1e-3)
    np.testing.assert_array_equal(np.asarray(result.component), comps)
    np.testing.assert_allclose(np.asarray(result.yaw), yaws, atol=1e-5)
    mpjpe, _ = _errors(result, truth)
    assert mpjpe.max() < 3.0, mpjpe


class TestInvariancesAndBatching:

  def test_translation_and_scale_invariance(self):
    kp, vis = random_frames(20)
    a = lift(MODEL, kp, vis, num_yaws=T)
    moved = (kp * 2.5 + np.array([40.0, -70.0])).astype(np.float32)
    b = lift(MODEL, moved, vis, num_yaws=T)
    np.testing.assert_allclose(np.asarray(a.pose3d), np.asarray(b.pose3d), atol=0.05)
    np.testing.assert_array_equal(np.asarray(a.component), np.asarray(b.component))
    np.testing.assert_allclose(np.asarray(b.scale), 2.5 * np.asarray(a.scale), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(b.reprojected),
                               np.asarray(a.reprojected) * 2.5 + np.array([40.0, -70.0]),
                               rtol=1e-4, atol=1e-2)

  def test_jit_vmap_batch_shapes_and_chunks(self):
    kp, vis = random_frames(21)
    eager = lift(MODEL, kp, vis, num_yaws=T)
    jitted = jax.jit(lambda m, k, v: lift(m, k, v, num_yaws=T))(MODEL, kp, vis)
    shaped = lift(MODEL, kp.reshape(2, 3, L, 2), vis.reshape(2, 3, L), num_yaws=T)
    chunked = lift(MODEL, kp, vis, num_yaws=T, chunk_size=4)
    # Under vmap each call sees one frame (batch shape ()).
    mapped = jax.vmap(lambda k, v: lift(MODEL, k, v, num_yaws=T))(kp, vis)
    assert isinstance(jitted, LiftResult)
    assert shaped.pose3d.shape == (2, 3, L, 3) and shaped.yaw.shape == (2, 3)
    for other in (jitted, chunked, mapped):
      np.testing.assert_allclose(np.asarray(other.pose3d), np.asarray(eager.pose3d), atol=1e-2)
      np.testing.assert_array_equal(np.asarray(other.component), np.asarray(eager.component))
    np.testing.assert_allclose(np.asarray(shaped.pose3d).reshape(B, L, 3),
                               np.asarray(eager.pose3d), atol=1e-2)
    assert eager.coeffs.shape == (B, J) and eager.reprojected.shape == (B, L, 2)
    assert eager.component.dtype == jnp.int32 and eager.valid.dtype == jnp.bool_

  def test_new_batch_sizes_reuse_the_compiled_program(self):
    from lift3d.lifting import api

    kp, vis = (np.concatenate(x) for x in zip(random_frames(23), random_frames(24),
                                                strict=True))  # 12 frames
    lift(MODEL, kp[:5], vis[:5], num_yaws=T)  # compiles the bucket of 8 frames
    compiled = api._lift_jit._cache_size()
    six = lift(MODEL, kp[:6].reshape(2, 3, L, 2), vis[:6].reshape(2, 3, L), num_yaws=T)
    seven = lift(MODEL, kp[:7], vis[:7], num_yaws=T)
    assert api._lift_jit._cache_size() == compiled  # 6 and 7 frames: the same program
    assert six.pose3d.shape == (2, 3, L, 3) and seven.valid.shape == (7,)
    # The padding frames change nothing: each frame's answer is the one it gets alone.
    for i in range(7):
      alone = lift(MODEL, kp[i:i + 1], vis[i:i + 1], num_yaws=T)
      np.testing.assert_allclose(np.asarray(seven.pose3d[i]), np.asarray(alone.pose3d[0]),
                                 atol=1e-2)
      assert int(seven.component[i]) == int(alone.component[0])
    np.testing.assert_allclose(np.asarray(six.pose3d).reshape(6, L, 3),
                               np.asarray(seven.pose3d[:6]), atol=1e-2)

  @pytest.mark.parametrize("weighted", [False, True])
  def test_groups_in_threads_give_the_answers_of_one_call(self, weighted):
    # 13 frames in chunks of 4: in 2 threads two groups of 8 frames (2 chunks),
    # the last padded with copies of the last frame; 3 threads make the same
    # groups (a third would be padding alone); `prepare` computed once for all. Each group size has its own
    # program, so the answers agree to float32 rounding (the tolerance of
    # test_jit_vmap_batch_shapes_and_chunks), not bit for bit.
    frames = [random_frames(seed, hidden=weighted) for seed in (25, 26, 27)]
    kp, vis = (np.concatenate(x)[:13] for x in zip(*frames, strict=True))
    vis = vis if weighted else None
    one = lift(MODEL, kp, vis, num_yaws=T, chunk_size=4, threads=1)
    for threads in (2, 3):
      grouped = lift(MODEL, kp, vis, num_yaws=T, chunk_size=4, threads=threads)
      assert grouped.pose3d.shape == (13, L, 3)
      np.testing.assert_array_equal(np.asarray(grouped.component), np.asarray(one.component))
      np.testing.assert_array_equal(np.asarray(grouped.valid), np.asarray(one.valid))
      np.testing.assert_allclose(np.asarray(grouped.pose3d), np.asarray(one.pose3d), atol=1e-2)
      np.testing.assert_allclose(np.asarray(grouped.yaw), np.asarray(one.yaw), atol=1e-4)
    shaped = lift(MODEL, kp[:12].reshape(3, 4, L, 2),
                  None if vis is None else vis[:12].reshape(3, 4, L), num_yaws=T, chunk_size=4,
                  threads=2)
    np.testing.assert_allclose(np.asarray(shaped.pose3d).reshape(12, L, 3),
                               np.asarray(one.pose3d[:12]), atol=1e-2)
    with pytest.raises(ValueError, match="threads"):
      lift(MODEL, kp, vis, num_yaws=T, threads=0)

  def test_threaded_unweighted_chunk_fits_the_l2_cache(self, monkeypatch, tmp_path):
    def cache_tree(name, l2_size):  # a fake sysfs cache folder: levels 1, 2 and 3
      for index, (level, size) in enumerate([("1", "32K"), ("2", l2_size), ("3", "32768K")]):
        (tmp_path / name / f"index{index}").mkdir(parents=True)
        (tmp_path / name / f"index{index}" / "level").write_text(level + "\n")
        (tmp_path / name / f"index{index}" / "size").write_text(size + "\n")
      return str(tmp_path / name)

    assert api._l2_cache_bytes(cache_tree("a", "1024K")) == 1 << 20
    assert api._l2_cache_bytes(cache_tree("b", "2M")) == 2 << 20
    assert api._l2_cache_bytes(cache_tree("c", "garbled")) == api._DEFAULT_L2_BYTES
    # Entries that are not cache folders (sysfs has a uevent file) are skipped.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a_uevent").write_text("")
    assert api._l2_cache_bytes(cache_tree("d", "512K")) == 512 << 10
    assert api._l2_cache_bytes(str(tmp_path / "missing")) == api._DEFAULT_L2_BYTES
    # (L − 1)(2L − 1) = 528 products and K·T costs a frame, 4 bytes each:
    # K = 3 → 3.3 kB (256 frames fit 1 MiB, 512 do not), K = 9 → 5.7 kB (128).
    monkeypatch.setattr(api, "_l2_cache_bytes", lambda: 1 << 20)
    assert api._cpu_unweighted_threaded_chunk(3, 17, 100) == 256
    assert api._cpu_unweighted_threaded_chunk(9, 17, 100) == 128
    assert api._cpu_unweighted_threaded_chunk(9, 17, 1000) == 64  # never below 64
    monkeypatch.setattr(api, "_l2_cache_bytes", lambda: 2 << 20)
    assert api._cpu_unweighted_threaded_chunk(3, 17, 100) == 512
    assert api._cpu_unweighted_threaded_chunk(1, 17, 100) == 512  # never above 512

  def test_empty_batch(self):
    result = lift(MODEL, np.zeros((0, L, 2), np.float32), num_yaws=T)
    assert result.pose3d.shape == (0, L, 3) and result.coeffs.shape == (0, J)
    assert result.valid.shape == (0,) and result.valid.dtype == jnp.bool_
    shaped = lift(MODEL, np.zeros((3, 0, L, 2)), np.zeros((3, 0, L)), num_yaws=T)
    assert shaped.reprojected.shape == (3, 0, L, 2)

  def test_valid_mask(self):
    kp, vis = random_frames(22, hidden=False)
    vis[0, 5:] = 0.0  # 5 visible joints < min_visible=6
    kp[1, 3, 0] = np.nan  # a visible joint is NaN
    kp[2] = 100.0  # all joints coincide
    result = lift(MODEL, kp, vis, num_yaws=T)
    np.testing.assert_array_equal(np.asarray(result.valid), [False] * 3 + [True] * 3)
    for field in ("pose3d", "yaw", "scale", "coeffs", "cost", "reprojected", "size"):
      value = np.asarray(getattr(result, field))
      assert np.isnan(value[:3]).all() and np.isfinite(value[3:]).all(), field
    np.testing.assert_array_equal(np.asarray(result.component)[:3], -1)
    # Valid neighbours are unaffected by the invalid frames.
    fixed_kp, fixed_vis = kp.copy(), vis.copy()
    fixed_kp[:3], fixed_vis[:3] = kp[3:], vis[3:]
    fixed = lift(MODEL, fixed_kp, fixed_vis, num_yaws=T)
    np.testing.assert_allclose(np.asarray(fixed.pose3d[3:]), np.asarray(result.pose3d[3:]),
                               atol=1e-3)
    # Unweighted path: a NaN anywhere invalidates the frame.
    unweighted = lift(MODEL, kp, num_yaws=T)
    assert not bool(unweighted.valid[1]) and bool(unweighted.valid[3])

  def test_noise_is_lifted_but_not_valid(self):
    rng = np.random.default_rng(3)
    noise = rng.uniform(0, 500, size=(B, L, 2)).astype(np.float32)
    result = lift(MODEL, noise, num_yaws=T, obs_noise=OBS)
    assert np.all(np.asarray(result.component) >= 0)  # lifted ...
    assert not bool(result.valid.any())  # ... but implausible
    assert not bool(result.plausible.any())

  @pytest.mark.parametrize("weighted", [False, True])
  def test_every_matrix_product_is_full_float32(self, weighted):
    # On GPU/TPU the default is TF32/bfloat16, which flips near-tied yaws.
    kp, vis = random_frames(5)
    fn = jax.jit(lambda k, v: lift(MODEL, k, v if weighted else None, num_yaws=T))
    text = fn.lower(np.nan_to_num(kp), vis).as_text()
    dots = [line for line in text.splitlines() if "dot_general" in line]
    assert dots
    assert all("precision = [HIGHEST, HIGHEST]" in line for line in dots), dots

  def test_shape_and_option_errors(self):
    kp, vis = random_frames(23)
    with pytest.raises(ValueError, match=r"\(\.\.\., 17, 2\).*\(6, 16, 2\)"):
      lift(MODEL, kp[:, :16], num_yaws=T)
    with pytest.raises(ValueError, match="visibility shape"):
      lift(MODEL, kp, vis[:, :5], num_yaws=T)
    with pytest.raises(ValueError, match="camera_rotation"):
      lift(MODEL, kp, camera_rotation=np.eye(2), num_yaws=T)
    with pytest.raises(ValueError, match="skeleton"):
      lift(MODEL, kp, skeleton=H36M17.subset(range(16)), num_yaws=T)
    bad = MODEL.replace(variances=MODEL.variances[:, :2])
    with pytest.raises(ValueError, match=r"model\.variances"):
      lift(bad, kp, num_yaws=T)
    with pytest.raises(ValueError, match="reconstruction"):
      lift(MODEL, kp, reconstruction="mix", num_yaws=T)
    with pytest.raises(ValueError, match="candidates"):
      lift(MODEL, kp, candidates=0, num_yaws=T)
    with pytest.raises(ValueError, match="components"):
      lift(MODEL, kp, components=0, num_yaws=T)


class TestComponentShortlist:
  """`components=M`: the exact re-ranking among the M components of lowest linearised score."""

  MODEL6 = make_model(11, num_components=6)

  @pytest.mark.parametrize("opposite_yaws", [False, True])
  @pytest.mark.parametrize("weighted", [False, True])
  def test_answer_is_the_brute_force_optimum_over_the_shortlist(self, weighted, opposite_yaws):
    num_yaws, count = T // 2, 2
    half = num_yaws // 2
    kp, vis = random_frames(41, hidden=weighted)
    # Frames of several components, so that shortlists differ between frames.
    kp = np.concatenate([kp, plant(42, model=self.MODEL6, num_yaws=num_yaws, noise_px=4.0)[0]])
    vis = np.concatenate([vis, np.ones((B, L), np.float32)])
    vis_in = vis if weighted else None
    result = lift(self.MODEL6, kp, vis_in, num_yaws=num_yaws, obs_noise=OBS,
                  candidates=num_yaws, components=count, opposite_yaws=opposite_yaws)
    offset = 0.5 * np.log(np.asarray(self.MODEL6.variances, np.float64)).sum(1) - np.log(
        np.asarray(self.MODEL6.weights, np.float64))
    checked = shortlisted_away = 0
    for b in range(len(kp)):
      v = vis[b] if weighted else None
      linear, _ = linearised_reference(self.MODEL6, kp[b], v, num_yaws, obs_noise=OBS)
      linear_score = linear.min(1) / (2 * OBS**2) + offset  # (K,), nats
      ref = exact_reference(self.MODEL6, kp[b], v, num_yaws, obs_noise=OBS)
      tol_f = 64 * EPS32 * ref["data_norm"]
      order = np.sort(linear_score)
      if order[count] - order[count - 1] < tol_f:
        continue  # the shortlist's boundary is a tie within rounding
      shortlist = np.argsort(linear_score)[:count]
      # The candidates: every local minimum over the pairs (θ, θ + π) of the
      # linearised cost (`candidates=num_yaws` takes all), with both of its
      # yaws (`opposite_yaws`) or the one of lower linearised cost.
      pairs = np.minimum(linear[:, :half], linear[:, half:])
      steps = np.concatenate([pairs - np.roll(pairs, 1, 1), np.roll(pairs, -1, 1) - pairs])
      rounding = 64 * EPS32 * np.abs(linear).max()
      if np.abs(steps).min() < rounding:
        continue  # a local minimum decided by rounding
      local = (pairs <= np.roll(pairs, 1, 1)) & (pairs < np.roll(pairs, -1, 1))
      if opposite_yaws:
        members = np.concatenate([local, local], 1)
      else:
        gap = linear[:, half:] - linear[:, :half]
        if np.abs(gap[local]).min() < rounding:
          continue  # the lower yaw of a pair decided by rounding
        members = np.concatenate([local & (gap >= 0), local & (gap < 0)], 1)
      allowed = members & np.isin(np.arange(6), shortlist)[:, None]
      score = np.where(allowed, ref["score"], np.inf)
      best = np.sort(score.ravel())
      if best[1] - best[0] < tol_f:
        continue
      k, t = np.unravel_index(np.argmin(score), score.shape)
      if not ref["interior"][k, t]:
        continue  # no minimum over s > 0 (random 2D): the profile falls towards s → 0
      checked += 1
      shortlisted_away += int(np.argmin(ref["score"]) // num_yaws != k)
      assert int(result.component[b]) == k
      np.testing.assert_allclose(float(result.yaw[b]), 2 * np.pi * t / num_yaws, atol=1e-5)
      np.testing.assert_allclose(float(result.cost[b]), ref["F"][k, t], atol=tol_f)
    assert checked >= len(kp) - 2, checked
    # The planted random frames put the full optimum outside a shortlist of 2
    # in some frames: the restriction itself is exercised.
    assert shortlisted_away >= 1

  @pytest.mark.parametrize("weighted", [False, True])
  def test_all_components_and_one(self, weighted):
    kp, vis = random_frames(43, hidden=weighted)
    vis_in = vis if weighted else None
    options = dict(num_yaws=T, obs_noise=OBS)
    full = lift(self.MODEL6, kp, vis_in, components=None, **options)
    every = lift(self.MODEL6, kp, vis_in, components=6, **options)
    for name in ("component", "yaw", "cost", "pose3d"):
      np.testing.assert_array_equal(np.asarray(getattr(every, name)),
                                    np.asarray(getattr(full, name)))
    # M = 1: the component of lowest linearised score (grid_scores' minimum).
    one = lift(self.MODEL6, kp, vis_in, components=1, **options)
    linear = np.asarray(grid_scores(self.MODEL6, kp, vis_in, num_yaws=T, obs_noise=OBS))
    np.testing.assert_array_equal(np.asarray(one.component), np.argmin(linear.min(-1), -1))

  @pytest.mark.parametrize("weighted", [False, True])
  def test_a_tilted_camera_recovers_planted_frames(self, weighted):
    # The unpaired search of a tilted camera, through the shortlist's gathers.
    rotation = np.asarray(camera.elevation_rotation(0.4))
    kp, truth, yaws, comps = plant(44, rotation=rotation, model=self.MODEL6)
    vis = np.ones((B, L), np.float32) if weighted else None
    result = lift(self.MODEL6, kp, vis, num_yaws=T, camera_rotation=rotation, obs_noise=1e-3,
                  components=2)
    np.testing.assert_array_equal(np.asarray(result.component), comps)
    np.testing.assert_allclose(np.asarray(result.yaw), yaws, atol=1e-5)
    mpjpe, _ = _errors(result, truth)
    assert mpjpe.max() < 3.0, mpjpe

  def test_refine_with_a_shortlist_never_raises_the_cost(self):
    kp, vis = random_frames(43)
    options = dict(num_yaws=T, obs_noise=OBS, components=2)
    fine = lift(self.MODEL6, kp, vis, refine=True, **options)
    grid = lift(self.MODEL6, kp, vis, **options)
    same = np.asarray(fine.component) == np.asarray(grid.component)
    assert same.sum() >= B - 1
    assert np.all(np.asarray(fine.cost)[same] <= np.asarray(grid.cost)[same] * (1 + 1e-5) + 1e-7)


class TestRefineAndGradients:

  def test_refine_never_increases_cost_and_finds_off_grid_yaw(self):
    yaws = 2 * np.pi * (np.arange(B) * 4 + 1.4) / T  # between grid points
    kp, truth, _, comps = plant(30, yaws=yaws, components=np.zeros(B, int))
    vis = np.ones((B, L), np.float32)
    vis[:, :3] = 0.0
    kp = kp.copy()
    kp[:, :3] = np.nan
    grid = lift(MODEL, kp, vis, num_yaws=T, obs_noise=1e-3)
    fine = lift(MODEL, kp, vis, num_yaws=T, obs_noise=1e-3, refine=True)
    np.testing.assert_array_equal(np.asarray(fine.component), comps)
    same = np.asarray(fine.component) == np.asarray(grid.component)
    assert np.all(np.asarray(fine.cost)[same] <= np.asarray(grid.cost)[same] * (1 + 1e-5) + 1e-7)
    yaw_err = np.abs(np.angle(np.exp(1j * (np.asarray(fine.yaw) - yaws))))
    assert yaw_err.max() < 1e-2, yaw_err
    mpjpe, _ = _errors(fine, truth)
    assert mpjpe.max() < 3.0

  def test_differentiable_gradients_match_finite_differences(self):
    kp, vis = random_frames(31, hidden=False)
    kp, vis = kp[:1], np.ones((1, L), np.float32)
    probe = np.random.default_rng(0).normal(size=(1, L, 3)).astype(np.float32)

    def loss(points):
      result = lift(MODEL, points, vis, num_yaws=T, differentiable=True)
      return jnp.sum(result.pose3d * probe)

    grad = np.asarray(jax.grad(loss)(jnp.asarray(kp)))
    assert np.abs(grad).max() > 0
    no_grad = jax.grad(lambda p: jnp.sum(lift(MODEL, p, vis, num_yaws=T).pose3d * probe))(
        jnp.asarray(kp))
    np.testing.assert_array_equal(np.asarray(no_grad), 0.0)
    rng = np.random.default_rng(1)
    for _ in range(3):
      direction = rng.normal(size=kp.shape).astype(np.float32)
      eps = 0.05  # pixels; the pose spans a few hundred
      plus = float(loss(jnp.asarray(kp + eps * direction)))
      minus = float(loss(jnp.asarray(kp - eps * direction)))
      numeric = (plus - minus) / (2 * eps)
      analytic = float(np.sum(grad * direction))
      np.testing.assert_allclose(analytic, numeric, rtol=0.03, atol=0.03 * abs(numeric) + 1e-2)


def test_obs_noise_is_read_from_the_model():
  kp, vis = random_frames(32)
  calibrated = make_model(obs_noise=0.02)
  a = lift(calibrated, kp, vis, num_yaws=T)
  b = lift(MODEL, kp, vis, num_yaws=T, obs_noise=0.02)
  np.testing.assert_allclose(np.asarray(a.cost), np.asarray(b.cost), rtol=1e-6)


@pytest.mark.slow
def test_a_million_frames_in_bounded_memory():
  """1M frames run through the chunked path (outputs alone are ~0.4 GB)."""
  kp, _, _, _ = plant(40)
  frames = np.tile(kp, (1_000_000 // B + 1, 1, 1))[:1_000_000]
  result = lift(MODEL, frames, num_yaws=T)
  assert result.pose3d.shape == (1_000_000, L, 3)
  assert bool(result.valid.all())
  np.testing.assert_allclose(np.asarray(result.pose3d[-B:]),
                             np.asarray(lift(MODEL, kp, num_yaws=T).pose3d)[
                                 np.arange(1_000_000 - B, 1_000_000) % B], atol=1e-2)
