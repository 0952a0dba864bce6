"""Normalisation and mirroring (docs/method.md §1) against closed forms."""

import numpy as np
import pytest

from lift3d.pose_model.normalization import limb_norm, mirror, normalize
from lift3d.skeleton import H36M17
from tests.float32_bounds import ULPS_PER_FUNCTION, as_float32, assert_within, bound
from tests.pose_model import synthetic


def _random_poses(n, seed=0):
  rng = np.random.default_rng(seed)
  return synthetic.REST_POSE + rng.normal(scale=0.05, size=(n, 17, 3))


# Roundings on the longest chain: the input's float32 rounding, the 17-joint mean,
# the 3·16-term sum of squared limbs, its square root and a division.
_DEPTH = 1 + 17 + 3 * len(synthetic.LIMBS) + ULPS_PER_FUNCTION + 2


def _scale_tolerance(poses):
  """float32 error bound of each pose's limb norm: the limb differences err by
  u·max|p| each, and Σ|d| ≤ √48 · ||d||, so the norm errs by ≤ γ·max|p|·√48 + γ·norm."""
  peak = np.abs(poses).max((-2, -1))
  return bound(peak * np.sqrt(3 * len(synthetic.LIMBS)) + limb_norm_64(poses), _DEPTH)


def _out_tolerance(poses):
  """Bound on each normalised coordinate: Δc/s + |c|/s · Δs/s, (..., 1, 1)."""
  scale = limb_norm_64(poses)
  centred = np.abs(poses - poses.mean(-2, keepdims=True)).max((-2, -1))
  peak = np.abs(poses).max((-2, -1))
  tol = bound(peak, _DEPTH) / scale + centred / scale * _scale_tolerance(poses) / scale
  return tol[..., None, None]


def limb_norm_64(poses):
  """float64 √(Σ limbs ||p_a − p_b||²), (...)."""
  return np.sqrt(sum(np.sum((poses[..., a, :] - poses[..., b, :]) ** 2, -1)
                     for a, b in synthetic.LIMBS))


def test_normalize_centres_and_scales():
  poses = as_float32(_random_poses(5))
  out, scale = normalize(poses)
  out = np.asarray(out, np.float64)
  tol = _out_tolerance(poses)
  assert_within(out.mean(1), 0.0, tol[:, 0])
  assert_within(scale, limb_norm_64(poses), _scale_tolerance(poses))
  for n in range(5):
    diffs = [out[n, a] - out[n, b] for a, b in synthetic.LIMBS]
    bones = sum(np.sum(d**2) for d in diffs)
    # Each difference errs by ≤ 2·tol, so Σ d² by ≤ Σ 2|d|·2·tol.
    assert_within(bones, 1.0, 4 * tol[n, 0, 0] * sum(np.sum(np.abs(d)) for d in diffs))
  assert_within(out[0], (poses[0] - poses[0].mean(0)) / limb_norm_64(poses[0]), tol[0])


def test_normalize_is_invariant_to_translation_and_scale():
  poses = as_float32(_random_poses(3))
  moved = as_float32(2.5 * poses + np.array([1.0, -3.0, 7.0]))
  out, scale = normalize(poses)
  out2, scale2 = normalize(moved)
  # Both are within their bounds of the same exact normalised pose (moved is
  # exactly 2.5·poses + shift up to its own float32 rounding, inside its bound).
  assert_within(out2, out, _out_tolerance(poses) + _out_tolerance(moved)
                + bound(np.abs(moved).max((-2, -1)), 1)[:, None, None] / limb_norm_64(moved)[
                    :, None, None])
  assert_within(scale2, 2.5 * np.asarray(scale, np.float64),
                _scale_tolerance(moved) + 2.5 * _scale_tolerance(poses))


def test_normalize_batched_matches_single():
  poses = as_float32(_random_poses(6).reshape(2, 3, 17, 3))
  out, scale = normalize(poses)
  single, single_scale = normalize(poses[1, 2])
  # Both within their bound of the exact value (XLA may vectorise the two differently).
  assert_within(out[1, 2], single, 2 * _out_tolerance(poses[1, 2]))
  assert_within(scale[1, 2], single_scale, 2 * _scale_tolerance(poses[1, 2]))
  assert_within(limb_norm(poses)[1, 2], single_scale, 2 * _scale_tolerance(poses[1, 2]))


def test_mirror_closed_form():
  poses = _random_poses(4)
  mirrored = np.asarray(mirror(poses))
  pairs = {4: 1, 5: 2, 6: 3, 11: 14, 12: 15, 13: 16}
  twin = {**pairs, **{v: k for k, v in pairs.items()}}
  for j in range(17):
    source = twin.get(j, j)
    # A permutation and a sign flip of the float32 input: exact.
    np.testing.assert_array_equal(mirrored[:, j, 0], -as_float32(poses[:, source, 0]))
    np.testing.assert_array_equal(mirrored[:, j, 1:], as_float32(poses[:, source, 1:]))
  # An involution; the (left/right symmetric) rest pose is its own mirror.
  np.testing.assert_array_equal(mirror(mirrored), as_float32(poses))
  np.testing.assert_array_equal(mirror(synthetic.REST_POSE), as_float32(synthetic.REST_POSE))
  # Mirroring keeps the limb lengths (summed in another order).
  assert_within(limb_norm(mirrored), limb_norm(poses), 2 * _scale_tolerance(as_float32(poses)))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 16, 3)), r"\(\.\.\., 17, 3\)"),
    (np.zeros((17,)), r"\(\.\.\., 17, 3\)"),
    (np.full((2, 17, 3), np.nan), "NaN"),
    (np.zeros((2, 17, 3)), "limb lengths zero"),
])
def test_normalize_rejects_bad_input(bad, match):
  with pytest.raises(ValueError, match=match):
    normalize(bad, H36M17)


def test_mirror_rejects_bad_shape():
  with pytest.raises(ValueError, match="17, 3"):
    mirror(np.zeros((3, 17, 2)))
