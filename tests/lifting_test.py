"""Tests of lift3d.lifting against NumPy least squares, brute force and planted poses.

All tests share one small problem size (K=2 components, J=3 basis vectors,
L=17 joints, T=24 yaws, batches of 6 frames) so that jit compiles are reused.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lift3d import camera, lifting
from lift3d.eval import pa_mpjpe
from lift3d.lifting import LiftResult, lift
from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import H36M17

K, J, L, T, B = 2, 3, 17, 24, 6
LIMB_SCALE = 0.5  # metres per model unit
ROTATION = np.asarray(camera.elevation_rotation(0.4), np.float32)  # a pitched camera


def make_model(seed=0, num_components=K, num_basis=J):
  """A hand-built mixture: random centred means, orthonormal bases."""
  rng = np.random.default_rng(seed)
  mean = rng.normal(size=(num_components, L, 3)) * 0.25
  mean -= mean.mean(axis=1, keepdims=True)
  basis = np.zeros((num_components, num_basis, L, 3))
  for k in range(num_components):
    q, _ = np.linalg.qr(rng.normal(size=(3 * L, num_basis)))
    basis[k] = q.T.reshape(num_basis, L, 3)
  variances = np.sort(rng.uniform(0.002, 0.01, size=(num_components, num_basis)))[:, ::-1]
  return PoseModel(
      mean=jnp.asarray(mean, jnp.float32),
      basis=jnp.asarray(basis, jnp.float32),
      variances=jnp.asarray(variances.copy(), jnp.float32),
      noise=jnp.full((num_components,), 1e-4, jnp.float32),
      weights=jnp.asarray(np.linspace(1.0, 2.0, num_components) / np.linspace(
          1.0, 2.0, num_components).sum(), jnp.float32),
      limb_scale=jnp.asarray(LIMB_SCALE, jnp.float32),
  )


MODEL = make_model()


def plant(seed, *, yaws=None, components=None, rotation=None, noise_px=0.0, model=MODEL):
  """2D keypoints (B, L, 2) of known poses, plus the truth in the camera frame (mm)."""
  rng = np.random.default_rng(seed)
  mean = np.asarray(model.mean, np.float64)
  basis = np.asarray(model.basis, np.float64)
  variances = np.asarray(model.variances, np.float64)
  if components is None:
    components = rng.integers(0, K, size=B)
  if yaws is None:
    yaws = 2 * np.pi * rng.integers(0, T, size=B) / T
  coeffs = rng.normal(size=(B, J)) * np.sqrt(variances[components]) * 0.5
  poses = mean[components] + np.einsum("bj,bjlc->blc", coeffs, basis[components])
  rot = np.asarray(camera.yaw_rotation(yaws), np.float64)
  cam = np.einsum("bac,blc->bla", rot, poses)
  if rotation is not None:
    cam = np.einsum("ac,blc->bla", np.asarray(rotation, np.float64), cam)
  scales = rng.uniform(150, 400, size=B)
  shifts = rng.uniform(100, 500, size=(B, 2))
  pixels = np.stack([cam[..., 0], -cam[..., 1]], -1) * scales[:, None, None] + shifts[:, None]
  pixels = pixels + noise_px * rng.normal(size=pixels.shape)
  truth_mm = (cam - cam[:, :1]) * LIMB_SCALE * 1000
  return pixels.astype(np.float32), truth_mm, np.asarray(yaws), np.asarray(components)


def reference(model, keypoints, visibility, num_yaws, rotation=None,
              obs_noise=lifting.DEFAULT_OBS_NOISE):
  """Brute force in NumPy (float64): every (k, θ) by numpy.linalg.lstsq.

  The stacked system of METHOD §4 with the translation t as two more
  unknowns: rows `D_l (A_θ c + t − w)_l` and Tikhonov rows `sqrt(Λ_j) c_j`.

  Returns: costs (K, T), solutions (K, T, J+1), scores (K,) at each best θ.
  """
  mean = np.asarray(model.mean, np.float64)
  basis = np.asarray(model.basis, np.float64)
  variances = np.asarray(model.variances, np.float64)
  weights = np.asarray(model.weights, np.float64)
  noise = np.asarray(model.noise, np.float64)
  vis = np.ones(L) if visibility is None else np.asarray(visibility, np.float64)
  used = vis > 0
  omega = vis**2
  kp = np.where(used[:, None], np.asarray(keypoints, np.float64), 0.0)
  centre = (omega[:, None] * kp).sum(0) / omega.sum()
  off = np.where(used[:, None], kp - centre, 0.0)
  size = np.sqrt((omega * (off**2).sum(1)).sum() / omega.sum())
  w = off / size * np.array([1.0, -1.0])
  centred = mean - mean.mean(1, keepdims=True)
  radius2 = (0.5 * (centred[..., 0] ** 2 + centred[..., 2] ** 2) + centred[..., 1] ** 2).mean(1)
  sbar2 = 1.0 / (weights * radius2).sum()
  obs_var = sbar2 * (weights * noise).sum() + obs_noise**2
  tikhonov = obs_var / (sbar2 * variances)
  rot_e = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
  costs = np.zeros((K, num_yaws))
  sols = np.zeros((K, num_yaws, J + 1))
  for k in range(K):
    cols = np.concatenate([mean[k][None], basis[k]], 0)  # (P, L, 3)
    for t in range(num_yaws):
      theta = 2 * np.pi * t / num_yaws
      proj = (rot_e @ np.asarray(camera.yaw_rotation(theta), np.float64))[:2]
      design = np.einsum("ra,pla->lrp", proj, cols)  # (L, 2, P)
      rows = np.concatenate([design, np.broadcast_to(np.eye(2), (L, 2, 2))], -1)
      rows = (vis[:, None, None] * rows).reshape(2 * L, J + 3)
      target = (vis[:, None] * w).reshape(2 * L)
      prior = np.zeros((J, J + 3))
      prior[:, 1 : J + 1] = np.diag(np.sqrt(tikhonov[k]))
      system = np.concatenate([rows, prior])
      rhs = np.concatenate([target, np.zeros(J)])
      sol = np.linalg.lstsq(system, rhs, rcond=None)[0]
      costs[k, t] = np.sum((system @ sol - rhs) ** 2)
      sols[k, t] = sol[: J + 1]
  scores = costs.min(1) / (2 * obs_var) + 0.5 * np.log(variances).sum(1) - np.log(weights)
  return costs, sols, scores


def random_frames(seed, hidden=True):
  rng = np.random.default_rng(seed)
  kp, _, _, _ = plant(seed, noise_px=5.0)
  vis = rng.uniform(0.3, 1.0, size=(B, L)).astype(np.float32)
  if hidden:
    vis[rng.uniform(size=(B, L)) < 0.3] = 0.0
    kp = np.where(vis[..., None] > 0, kp, np.nan).astype(np.float32)
  return kp, vis


@functools.partial(jax.jit, static_argnames="rotated")
def _internal_costs(model, kp, vis, rotated=False):
  """Search costs of both paths and the exact solve at every grid yaw.

  The weighted search of a level camera returns the lower cost of each pair
  (θ, θ + π), (B, K, T/2); with `rotated` (camera ROTATION) every yaw's.
  """
  with jax.default_matmul_precision("highest"):  # as lift itself runs them
    return _internal_costs_body(model, kp, vis, rotated)


def _internal_costs_body(model, kp, vis, rotated):
  rotation = jnp.asarray(ROTATION) if rotated else None
  prep_w = lifting._prepare(model, rotation, jnp.float32(lifting.DEFAULT_OBS_NOISE), T, False)
  prep_u = lifting._prepare(model, None, jnp.float32(lifting.DEFAULT_OBS_NOISE), T, True)
  omega = vis**2
  used = omega > 0
  clean = jnp.where(used[..., None], kp, 0.0)
  points_w = jnp.where(used[..., None], camera.normalize_keypoints(clean, omega).points, 0.0)
  gram, rhs, norm2 = lifting._frame_terms(prep_w, points_w, omega)
  weighted, paired = lifting._search_weighted(prep_w, gram, rhs, norm2)
  assert paired == (not rotated)
  yaws = jnp.broadcast_to(prep_w.yaws[:, None, None], (T, K, B))
  exact, sol = lifting._solve_at(prep_w, yaws, gram[:, :, None], rhs[:, :, None], norm2,
                                 prep_w.tikhonov.T[:, None, :, None], True)
  points_u = camera.normalize_keypoints(jnp.nan_to_num(kp)).points
  unweighted = lifting._search_unweighted(prep_u, points_u)
  # Search costs come frames-minor (K, T, B), the exact solve as (T, K, B)
  # and (P, T, K, B).
  return (jnp.transpose(weighted, (2, 0, 1)), jnp.transpose(exact, (2, 1, 0)),
          jnp.transpose(sol, (3, 2, 1, 0)), jnp.transpose(unweighted, (2, 0, 1)))


class TestPerYawLeastSquares:

  def test_weighted_costs_and_solutions_equal_lstsq(self):
    kp, vis = random_frames(1)
    weighted, exact, sol, _ = _internal_costs(MODEL, kp, vis)
    for b in range(B):
      costs, sols, _ = reference(MODEL, kp[b], vis[b], T)
      pair_min = np.minimum(costs[:, : T // 2], costs[:, T // 2 :])
      np.testing.assert_allclose(weighted[b], pair_min, rtol=2e-3, atol=2e-4)
      np.testing.assert_allclose(exact[b], costs, rtol=2e-3, atol=2e-4)
      np.testing.assert_allclose(sol[b], sols, rtol=2e-3, atol=2e-3)

  def test_weighted_costs_of_a_rotated_camera_equal_lstsq(self):
    kp, vis = random_frames(4)
    weighted, exact, *_ = _internal_costs(MODEL, kp, vis, rotated=True)
    for b in range(B):
      costs, _, _ = reference(MODEL, kp[b], vis[b], T, rotation=ROTATION)
      np.testing.assert_allclose(weighted[b], costs, rtol=2e-3, atol=2e-4)
      np.testing.assert_allclose(exact[b], costs, rtol=2e-3, atol=2e-4)

  def test_unweighted_costs_equal_lstsq(self):
    kp, _ = random_frames(2, hidden=False)
    *_, unweighted = _internal_costs(MODEL, kp, np.ones((B, L), np.float32))
    for b in range(B):
      costs, _, _ = reference(MODEL, kp[b], None, T)
      np.testing.assert_allclose(unweighted[b], costs, rtol=2e-3, atol=2e-4)


class TestSearchEqualsBruteForce:

  # An odd number of yaws has no θ/θ + π pairs: the unpaired searches.
  @pytest.mark.parametrize("num_yaws", [T, T + 1])
  @pytest.mark.parametrize("weighted", [False, True])
  def test_component_yaw_cost_and_coeffs(self, weighted, num_yaws):
    kp, vis = random_frames(3, hidden=weighted)
    result = lift(MODEL, kp, vis if weighted else None, num_yaws=num_yaws)
    assert result.valid.all()
    for b in range(B):
      costs, sols, scores = reference(MODEL, kp[b], vis[b] if weighted else None, num_yaws)
      k = int(np.argmin(scores))
      t = int(np.argmin(costs[k]))
      if np.sort(scores)[1] - scores.min() < 1e-3 * abs(scores.min()):
        continue  # a near tie: float32 may pick either
      assert int(result.component[b]) == k
      np.testing.assert_allclose(float(result.yaw[b]), 2 * np.pi * t / num_yaws, atol=1e-5)
      np.testing.assert_allclose(float(result.cost[b]), costs[k, t], rtol=2e-3, atol=2e-4)
      np.testing.assert_allclose(np.asarray(result.coeffs[b]), sols[k, t, 1:] / sols[k, t, 0],
                                 rtol=2e-3, atol=2e-3)


def _errors(result, truth_mm):
  mpjpe = np.linalg.norm(np.asarray(result.pose3d) - truth_mm, axis=-1).mean(-1)
  pa = np.asarray(pa_mpjpe(np.asarray(result.pose3d), truth_mm))
  return mpjpe, pa


class TestPlantedRecovery:

  def test_exact_2d_recovers_pose_yaw_component(self):
    kp, truth, yaws, comps = plant(10)
    result = lift(MODEL, kp, num_yaws=T, obs_noise=1e-3)
    np.testing.assert_array_equal(np.asarray(result.component), comps)
    np.testing.assert_allclose(np.asarray(result.yaw), yaws, atol=1e-5)
    mpjpe, pa = _errors(result, truth)
    # Pose size: joints are ~150 mm from their centroid.
    assert mpjpe.max() < 3.0 and pa.max() < 3.0, (mpjpe, pa)

  def test_noisy_occluded_2d_recovers_pose_yaw_component(self):
    kp, truth, yaws, comps = plant(11, noise_px=1.0)
    rng = np.random.default_rng(0)
    vis = (rng.uniform(size=(B, L)) >= 0.3).astype(np.float32)
    kp = np.where(vis[..., None] > 0, kp, np.nan).astype(np.float32)
    result = lift(MODEL, kp, vis, num_yaws=T)
    assert result.valid.all()
    np.testing.assert_array_equal(np.asarray(result.component), comps)
    np.testing.assert_allclose(np.asarray(result.yaw), yaws, atol=1e-5)
    mpjpe, pa = _errors(result, truth)
    assert mpjpe.max() < 25.0 and pa.max() < 20.0, (mpjpe, pa)
    # Reprojection matches the visible input to about the noise level.
    err = np.linalg.norm(np.asarray(result.reprojected) - kp, axis=-1)[vis > 0]
    assert np.median(err) < 3.0

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

  def test_valid_mask(self):
    kp, vis = random_frames(22, hidden=False)
    vis[0, 5:] = 0.0  # 5 visible joints < min_visible=6
    kp[1, 3, 0] = np.nan  # a visible joint is NaN
    kp[2] = 100.0  # all joints coincide
    result = lift(MODEL, kp, vis, num_yaws=T)
    np.testing.assert_array_equal(np.asarray(result.valid), [False] * 3 + [True] * 3)
    for field in ("pose3d", "yaw", "scale", "coeffs", "cost", "reprojected"):
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

  @pytest.mark.parametrize("weighted", [False, True])
  def test_every_matrix_product_is_full_float32(self, weighted):
    # On GPU/TPU the default is TF32/bfloat16, which flips near-tied yaws.
    kp, vis = random_frames(5)
    fn = jax.jit(lambda k, v: lift(MODEL, k, v if weighted else None, num_yaws=T))
    text = fn.lower(np.nan_to_num(kp), vis).as_text()
    dots = [line for line in text.splitlines() if "dot_general" in line]
    assert dots
    assert all("precision = [HIGHEST, HIGHEST]" in line for line in dots), dots

  def test_shape_errors(self):
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
    # The reported component's score (the negative log posterior) never rises;
    # with the component unchanged, neither does the cost.
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
