"""A small planted world for the lifting tests, and float64 NumPy references.

All tests share one small problem size (K=2 components, J=3 basis vectors,
L=17 joints, T=24 yaws, batches of 6 frames) so that jit compiles are reused.
The hand-built model is in normalised units like a fitted one: its means have
limb-length norm 1.
"""

import numpy as np

from lift3d import camera
from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import H36M17

K, J, L, T, B = 2, 3, 17, 24, 6
LIMB_SCALE = 0.5  # metres per model unit
ROTATION = np.asarray(camera.elevation_rotation(0.4), np.float32)  # a pitched camera
EPS32 = float(np.finfo(np.float32).eps)
PARENTS = np.array([p for p, _ in H36M17.limbs])
CHILDREN = np.array([c for _, c in H36M17.limbs])


def limb_norm(poses):
  """(..., L, 3) -> (...) sqrt of the sum of squared limb lengths (float64)."""
  poses = np.asarray(poses, np.float64)
  return np.sqrt(((poses[..., CHILDREN, :] - poses[..., PARENTS, :]) ** 2).sum((-1, -2)))


def make_model(seed=0, num_components=K, num_basis=J, obs_noise=None):
  """A hand-built mixture: random centred means of limb norm 1, orthonormal bases."""
  rng = np.random.default_rng(seed)
  mean = rng.normal(size=(num_components, L, 3))
  mean -= mean.mean(axis=1, keepdims=True)
  mean /= limb_norm(mean)[:, None, None]
  basis = np.zeros((num_components, num_basis, L, 3))
  for k in range(num_components):
    q, _ = np.linalg.qr(rng.normal(size=(3 * L, num_basis)))
    basis[k] = q.T.reshape(num_basis, L, 3)
  variances = np.sort(rng.uniform(0.0005, 0.002, size=(num_components, num_basis)))[:, ::-1]
  return PoseModel(
      mean=np.asarray(mean, np.float32),
      basis=np.asarray(basis, np.float32),
      variances=np.asarray(variances.copy(), np.float32),
      noise=np.full((num_components,), 1e-5, np.float32),
      weights=np.asarray(np.linspace(1.0, 2.0, num_components) / np.linspace(
          1.0, 2.0, num_components).sum(), np.float32),
      limb_scale=np.asarray(LIMB_SCALE, np.float32),
      obs_noise=None if obs_noise is None else np.asarray(obs_noise, np.float32),
  )


MODEL = make_model()


def plant(seed, *, yaws=None, components=None, rotation=None, noise_px=0.0, model=MODEL,
          batch=B, num_yaws=T):
  """2D keypoints (B, L, 2) of known poses, the truth in the camera frame (mm), yaws, components.

  The truth has the size `lift` gives every pose: limb norm `LIMB_SCALE` metres.
  """
  rng = np.random.default_rng(seed)
  mean = np.asarray(model.mean, np.float64)
  basis = np.asarray(model.basis, np.float64)
  variances = np.asarray(model.variances, np.float64)
  num_components, num_basis = variances.shape
  if components is None:
    components = rng.integers(0, num_components, size=batch)
  if yaws is None:
    yaws = 2 * np.pi * rng.integers(0, num_yaws, size=batch) / num_yaws
  coeffs = rng.normal(size=(batch, num_basis)) * np.sqrt(variances[components]) * 0.5
  poses = mean[components] + np.einsum("bj,bjlc->blc", coeffs, basis[components])
  rot = np.asarray(camera.yaw_rotation(yaws), np.float64)
  cam = np.einsum("bac,blc->bla", rot, poses)
  if rotation is not None:
    cam = np.einsum("ac,blc->bla", np.asarray(rotation, np.float64), cam)
  scales = rng.uniform(150, 400, size=batch)
  shifts = rng.uniform(100, 500, size=(batch, 2))
  pixels = np.stack([cam[..., 0], -cam[..., 1]], -1) * scales[:, None, None] + shifts[:, None]
  pixels = pixels + noise_px * rng.normal(size=pixels.shape)
  size = limb_norm(poses)
  truth_mm = (cam - cam[:, :1]) * (LIMB_SCALE * 1000 / size)[:, None, None]
  return pixels.astype(np.float32), truth_mm, np.asarray(yaws), np.asarray(components)


def random_frames(seed, hidden=True):
  """Noisy planted frames with random visibility weights, some joints hidden (NaN)."""
  rng = np.random.default_rng(seed)
  kp, _, _, _ = plant(seed, noise_px=5.0)
  vis = rng.uniform(0.3, 1.0, size=(B, L)).astype(np.float32)
  if hidden:
    vis[rng.uniform(size=(B, L)) < 0.3] = 0.0
    kp = np.where(vis[..., None] > 0, kp, np.nan).astype(np.float32)
  return kp, vis


def normalised(keypoints, visibility):
  """Float64 normalised 2D (L, 2), y up, the D² weights (L,) and the size in pixels."""
  vis = np.ones(L) if visibility is None else np.asarray(visibility, np.float64)
  used = vis > 0
  omega = vis**2
  kp = np.where(used[:, None], np.asarray(keypoints, np.float64), 0.0)
  centre = (omega[:, None] * kp).sum(0) / omega.sum()
  off = np.where(used[:, None], kp - centre, 0.0)
  size = np.sqrt((omega * (off**2).sum(1)).sum() / omega.sum())
  return off / size * np.array([1.0, -1.0]), omega, size


def typical_scale(model):
  mean = np.asarray(model.mean, np.float64)
  weights = np.asarray(model.weights, np.float64)
  centred = mean - mean.mean(1, keepdims=True)
  radius2 = (0.5 * (centred[..., 0] ** 2 + centred[..., 2] ** 2) + centred[..., 1] ** 2).mean(1)
  return 1.0 / np.sqrt((weights * radius2).sum())


def designs(model, num_yaws, rotation, omega):
  """Per (k, t) the design A_θ (2L, P) with columns centred by the D²-weighted mean."""
  mean = np.asarray(model.mean, np.float64)
  basis = np.asarray(model.basis, np.float64)
  rot_e = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
  out = np.zeros((mean.shape[0], num_yaws, 2 * L, basis.shape[1] + 1))
  for k in range(mean.shape[0]):
    cols = np.concatenate([mean[k][None], basis[k]], 0)  # (P, L, 3)
    for t in range(num_yaws):
      proj = (rot_e @ np.asarray(camera.yaw_rotation(2 * np.pi * t / num_yaws), np.float64))[:2]
      design = np.einsum("ra,pla->lrp", proj, cols)  # (L, 2, P)
      design -= (omega[:, None, None] * design).sum(0) / omega.sum()
      out[k, t] = design.reshape(2 * L, -1)
  return out


def linearised_reference(model, keypoints, visibility, num_yaws, rotation=None, obs_noise=0.05):
  """Brute force of the linearised problem (float64): every (k, θ) by numpy.linalg.lstsq.

  The stacked system of docs/method.md §4.2 with the translation t as two more
  unknowns: rows `D_l (A_θ c + t − w)_l` and Tikhonov rows `sqrt(Λ_j) c_j`,
  `Λ_j = σ²/(s̄² λ_j)`.

  Returns: costs (K, T), solutions (K, T, J+1).
  """
  w, omega, _ = normalised(keypoints, visibility)
  vis = np.sqrt(omega)
  variances = np.asarray(model.variances, np.float64)
  num_components, num_basis = variances.shape
  tikhonov = obs_noise**2 / (typical_scale(model) ** 2 * variances)
  mean = np.asarray(model.mean, np.float64)
  basis = np.asarray(model.basis, np.float64)
  rot_e = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
  costs = np.zeros((num_components, num_yaws))
  sols = np.zeros((num_components, num_yaws, num_basis + 1))
  for k in range(num_components):
    cols = np.concatenate([mean[k][None], basis[k]], 0)  # (P, L, 3)
    for t in range(num_yaws):
      proj = (rot_e @ np.asarray(camera.yaw_rotation(2 * np.pi * t / num_yaws), np.float64))[:2]
      design = np.einsum("ra,pla->lrp", proj, cols)  # (L, 2, P)
      rows = np.concatenate([design, np.broadcast_to(np.eye(2), (L, 2, 2))], -1)
      rows = (vis[:, None, None] * rows).reshape(2 * L, num_basis + 3)
      target = (vis[:, None] * w).reshape(2 * L)
      prior = np.zeros((num_basis, num_basis + 3))
      prior[:, 1 : num_basis + 1] = np.diag(np.sqrt(tikhonov[k]))
      system = np.concatenate([rows, prior])
      rhs = np.concatenate([target, np.zeros(num_basis)])
      sol = np.linalg.lstsq(system, rhs, rcond=None)[0]
      costs[k, t] = np.sum((system @ sol - rhs) ** 2)
      sols[k, t] = sol[: num_basis + 1]
  return costs, sols


def _ridge(design, w, omega, inv_var, inv_variances, s):
  """Exact objective at scales s (float64): (F, a, H) with a the ridge solution.

  `s` is a scalar or an (n,) array; F (...,), a (..., J), H (..., J, J).
  """
  s = np.asarray(s, np.float64)[..., None]
  d2 = np.repeat(omega, 2)
  mean_col, basis_cols = design[:, 0], design[:, 1:]
  residual0 = w.reshape(-1) - s * mean_col  # (..., 2L)
  gram = inv_var * basis_cols.T @ (d2[:, None] * basis_cols)
  hessian = (s * s)[..., None] * gram + np.diag(inv_variances)
  rhs = s * inv_var * ((d2 * residual0) @ basis_cols)
  a = np.linalg.solve(hessian, rhs[..., None])[..., 0]
  residual = residual0 - s * (a @ basis_cols.T)
  value = inv_var * np.sum(d2 * residual**2, -1) + np.sum(a**2 * inv_variances, -1)
  return value, a, hessian


def exact_reference(model, keypoints, visibility, num_yaws, rotation=None, obs_noise=0.05,
                    prior_weight=1.0):
  """Brute force of the exact objective (float64) at every grid (k, θ).

  `min_{s>0, a} ||D(w − s A_θ(μ_k + E_k a))||²/σ² + Σ a²/λ`: for each s the
  ridge solution for a; s by a log grid (241 points over 10⁻³…10³ of
  the projected mean's scale) and then golden-section search between the
  grid neighbours of the best point, to 10⁻¹² in log s.

  Returns a dict with F (K, T), s (K, T), a (K, T, J), score (K, T), the
  profile's second derivative in log s at the optimum, F_tt (K, T), the
  derivative of a in log s, da (K, T, J), the condition number of H,
  cond (K, T), interior (K, T), False where the grid's lowest point is its
  end (the profile falls towards s → 0 or ∞: no minimum over s > 0 to
  compare with), and data_norm ||Dw||²/σ² (a scalar).
  """
  w, omega, _ = normalised(keypoints, visibility)
  variances = np.asarray(model.variances, np.float64)
  weights = np.asarray(model.weights, np.float64)
  inv_var = 1.0 / obs_noise**2
  inv_variances = 1.0 / variances
  all_designs = designs(model, num_yaws, rotation, omega)
  num_components, _, _, num_unknowns = all_designs.shape
  out = {name: np.zeros((num_components, num_yaws)) for name in ("F", "s", "F_tt", "cond")}
  out["a"] = np.zeros((num_components, num_yaws, num_unknowns - 1))
  out["interior"] = np.zeros((num_components, num_yaws), bool)
  out["da"] = np.zeros_like(out["a"])
  d2 = np.repeat(omega, 2)
  for k in range(num_components):
    for t in range(num_yaws):
      design = all_designs[k, t]

      def f(log_s, design=design, k=k):
        return _ridge(design, w, omega, inv_var, inv_variances[k], np.exp(log_s))[0]

      start = 0.5 * np.log(np.sum(d2 * w.reshape(-1) ** 2) / np.sum(d2 * design[:, 0] ** 2))
      grid = start + np.linspace(-3, 3, 241) * np.log(10)
      values = _ridge(design, w, omega, inv_var, inv_variances[k], np.exp(grid))[0]
      i = int(np.argmin(values))
      out["interior"][k, t] = 0 < i < len(grid) - 1
      lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
      # Golden-section search, one new evaluation per step.
      ratio = (np.sqrt(5) - 1) / 2
      x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
      f1, f2 = f(x1), f(x2)
      while hi - lo > 1e-12:
        if f1 < f2:
          hi, x2, f2 = x2, x1, f1
          x1 = hi - ratio * (hi - lo)
          f1 = f(x1)
        else:
          lo, x1, f1 = x1, x2, f2
          x2 = lo + ratio * (hi - lo)
          f2 = f(x2)
      best = 0.5 * (lo + hi)
      value, a, hessian = _ridge(design, w, omega, inv_var, inv_variances[k], np.exp(best))
      h = 1e-4
      out["F"][k, t], out["s"][k, t], out["a"][k, t] = value, np.exp(best), a
      out["F_tt"][k, t] = (f(best + h) - 2 * value + f(best - h)) / h**2
      plus = _ridge(design, w, omega, inv_var, inv_variances[k], np.exp(best + h))[1]
      minus = _ridge(design, w, omega, inv_var, inv_variances[k], np.exp(best - h))[1]
      out["da"][k, t] = (plus - minus) / (2 * h)
      out["cond"][k, t] = np.linalg.cond(hessian)
  offset = 0.5 * np.log(variances).sum(1) - np.log(weights / weights.sum())
  out["score"] = 0.5 * out["F"] + prior_weight * offset[:, None]
  out["data_norm"] = inv_var * np.sum(d2 * w.reshape(-1) ** 2)
  return out
