"""Saving and loading a PoseModel: round trip and clear errors on bad files."""

import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from lift3d.pose_model import PoseModel, load, save


def _model(num_components=2, num_basis=3, seed=0):
  rng = np.random.default_rng(seed)
  basis = np.stack([np.linalg.qr(rng.normal(size=(51, num_basis)))[0].T.reshape(num_basis, 17, 3)
                    for _ in range(num_components)])
  return PoseModel(
      mean=jnp.asarray(rng.normal(size=(num_components, 17, 3)), jnp.float32),
      basis=jnp.asarray(basis, jnp.float32),
      variances=jnp.asarray(rng.uniform(0.1, 1.0, (num_components, num_basis)), jnp.float32),
      noise=jnp.asarray(rng.uniform(0.01, 0.1, num_components), jnp.float32),
      weights=jnp.full((num_components,), 1.0 / num_components, jnp.float32),
      limb_scale=jnp.float32(1.1),
  )


def test_round_trip(tmp_path):
  model = _model()
  path = tmp_path / "model.npz"
  save(path, model)
  loaded = load(path)
  for name in ("mean", "basis", "variances", "noise", "weights", "limb_scale"):
    np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name), err_msg=name)
    assert getattr(loaded, name).dtype == jnp.float32
  assert loaded.num_components == 2 and loaded.num_basis == 3 and loaded.num_joints == 17
  # No stray temporary file, and the name is kept exactly (no ".npz" added).
  assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
  save(tmp_path / "model.bin", model)
  assert (tmp_path / "model.bin").exists()


def test_round_trip_of_the_calibrated_prior_and_version_1_files(tmp_path):
  model = _model().replace(obs_noise=jnp.float32(0.07), prior_weight=jnp.float32(0.5))
  save(tmp_path / "calibrated.npz", model)
  loaded = load(tmp_path / "calibrated.npz")
  assert float(loaded.obs_noise) == pytest.approx(0.07) and float(loaded.prior_weight) == 0.5
  # A version 1 file (no calibration) loads with none.
  with np.load(tmp_path / "calibrated.npz") as data:
    contents = {k: data[k] for k in data.files if k not in ("obs_noise", "prior_weight")}
  contents["format_version"] = np.array(1)
  np.savez(tmp_path / "v1.npz", **contents)
  old = load(tmp_path / "v1.npz")
  assert old.obs_noise is None and old.prior_weight is None
  np.testing.assert_array_equal(old.mean, model.mean)
  with pytest.raises(ValueError, match="obs_noise"):
    save(tmp_path / "bad.npz", model.replace(obs_noise=jnp.float32(-1.0)))


def test_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="no pose model file"):
    load(tmp_path / "absent.npz")


def test_truncated_file(tmp_path):
  path = tmp_path / "model.npz"
  save(path, _model())
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(ValueError, match="truncated or not a"):
    load(path)


def test_foreign_files(tmp_path):
  other = tmp_path / "other.npz"
  np.savez(other, weights=np.ones(3))
  with pytest.raises(ValueError, match="no 'kind' tag"):
    load(other)
  tagged = tmp_path / "tagged.npz"
  np.savez(tagged, kind=np.array("somebody.Else"), format_version=np.array(1))
  with pytest.raises(ValueError, match=r"somebody\.Else"):
    load(tagged)
  bare = tmp_path / "bare.npy"
  np.save(bare, np.ones(3))
  with pytest.raises(ValueError, match="bare array"):
    load(bare)
  text = tmp_path / "text.npz"
  text.write_text("hello")
  with pytest.raises(ValueError, match="not a readable pose model"):
    load(text)


def test_other_version_and_bad_shapes(tmp_path):
  path = tmp_path / "model.npz"
  save(path, _model())
  with np.load(path) as data:
    contents = dict(data)
  contents["format_version"] = np.array(99)
  np.savez(tmp_path / "v99.npz", **contents)
  with pytest.raises(ValueError, match="version 99"):
    load(tmp_path / "v99.npz")
  contents["format_version"] = np.array(1)
  contents["variances"] = np.ones((2, 4), np.float32)
  np.savez(tmp_path / "shapes.npz", **contents)
  with pytest.raises(ValueError, match="variances"):
    load(tmp_path / "shapes.npz")
  with zipfile.ZipFile(path) as z:
    assert "kind.npy" in z.namelist() and "format_version.npy" in z.namelist()


def test_save_rejects_inconsistent_model(tmp_path):
  model = _model().replace(noise=jnp.ones(3))
  with pytest.raises(ValueError, match="noise"):
    save(tmp_path / "bad.npz", model)
