"""Normalisation and mirroring (docs/method.md §1) against closed forms."""

import numpy as np
import pytest

from lift3d.pose_model.normalization import limb_norm, mirror, normalize
from lift3d.skeleton import H36M17
from tests.pose_model import synthetic


def _random_poses(n, seed=0):
  rng = np.random.default_rng(seed)
  return synthetic.REST_POSE + rng.normal(scale=0.05, size=(n, 17, 3))


def test_normalize_centres_and_scales():
  poses = _random_poses(5)
  out, scale = normalize(poses)
  out = np.asarray(out, np.float64)
  np.testing.assert_allclose(out.mean(1), 0.0, atol=1e-6)
  for n in range(5):
    manual = np.sqrt(sum(np.sum((poses[n, a] - poses[n, b]) ** 2) for a, b in synthetic.LIMBS))
    np.testing.assert_allclose(scale[n], manual, rtol=1e-5)
    bones = sum(np.sum((out[n, a] - out[n, b]) ** 2) for a, b in synthetic.LIMBS)
    np.testing.assert_allclose(bones, 1.0, rtol=1e-5)
  np.testing.assert_allclose(out[0], (poses[0] - poses[0].mean(0)) / scale[0], atol=1e-6)


def test_normalize_is_invariant_to_translation_and_scale():
  poses = _random_poses(3)
  out, scale = normalize(poses)
  out2, scale2 = normalize(2.5 * poses + np.array([1.0, -3.0, 7.0]))
  np.testing.assert_allclose(out2, out, atol=2e-6)
  np.testing.assert_allclose(scale2, 2.5 * np.asarray(scale), rtol=1e-5)


def test_normalize_batched_matches_single():
  poses = _random_poses(6).reshape(2, 3, 17, 3)
  out, scale = normalize(poses)
  single, single_scale = normalize(poses[1, 2])
  np.testing.assert_allclose(out[1, 2], single, atol=1e-7)
  np.testing.assert_allclose(scale[1, 2], single_scale, rtol=1e-6)
  np.testing.assert_allclose(limb_norm(poses)[1, 2], single_scale, rtol=1e-5)


def test_mirror_closed_form():
  poses = _random_poses(4)
  mirrored = np.asarray(mirror(poses))
  pairs = {4: 1, 5: 2, 6: 3, 11: 14, 12: 15, 13: 16}
  twin = {**pairs, **{v: k for k, v in pairs.items()}}
  for j in range(17):
    source = twin.get(j, j)
    np.testing.assert_allclose(mirrored[:, j, 0], -poses[:, source, 0], atol=1e-6)
    np.testing.assert_allclose(mirrored[:, j, 1:], poses[:, source, 1:], atol=1e-6)
  # An involution; the (left/right symmetric) rest pose is its own mirror.
  np.testing.assert_allclose(mirror(mirrored), poses, atol=1e-6)
  np.testing.assert_allclose(mirror(synthetic.REST_POSE), synthetic.REST_POSE, atol=1e-7)
  # Mirroring keeps the limb lengths.
  np.testing.assert_allclose(limb_norm(mirrored), limb_norm(poses), rtol=1e-5)


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
