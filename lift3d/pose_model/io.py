"""Saving and loading a `PoseModel` as one portable .npz file.

The file holds the six model arrays, the lifting's calibrated prior
(`obs_noise`, `prior_weight`) where the model has one, `kind` (a tag naming
the content) and `format_version`; it is read without pickle, so it is safe
and portable across machines and NumPy versions. Version 1 files (before the
calibrated prior) still load, with no calibration.
"""

from __future__ import annotations

import os
import zipfile

import jax.numpy as jnp
import numpy as np

from lift3d.pose_model.model import PoseModel

KIND = "lift3d.PoseModel"
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_FIELDS = ("mean", "basis", "variances", "noise", "weights", "limb_scale")
# Optional scalars (None when the model is not calibrated), from version 2.
_OPTIONAL = ("obs_noise", "prior_weight")


def _check_model(model: PoseModel) -> None:
  mean = np.shape(model.mean)
  if len(mean) != 3 or mean[2] != 3:
    raise ValueError(f"PoseModel.mean must be (K, L, 3), got {mean}")
  num_components, num_joints, _ = mean
  num_basis = np.shape(model.basis)[1] if np.ndim(model.basis) == 4 else -1
  expected = {
      "basis": (num_components, num_basis, num_joints, 3),
      "variances": (num_components, num_basis),
      "noise": (num_components,),
      "weights": (num_components,),
      "limb_scale": (),
  }
  for name, shape in expected.items():
    got = np.shape(getattr(model, name))
    if got != shape:
      raise ValueError(f"PoseModel.{name} must be {shape} for mean {mean}, got {got}")
  for name, lowest in (("obs_noise", "positive"), ("prior_weight", "non-negative")):
    value = getattr(model, name)
    if value is None:
      continue
    if (np.shape(value) != () or not np.isfinite(value) or value < 0
        or (lowest == "positive" and value == 0)):
      raise ValueError(f"PoseModel.{name} must be None or a {lowest} scalar, got {value!r}")


def save(path: str | os.PathLike, model: PoseModel) -> None:
  """Writes `model` to `path` (a .npz file; the directory must exist).

  Args:
    path: file path; ".npz" is not appended.
    model: the `PoseModel`.

  Raises:
    ValueError: if the model's arrays have inconsistent shapes.
  """
  _check_model(model)
  arrays = {name: np.asarray(getattr(model, name), np.float32) for name in _FIELDS}
  arrays.update({name: np.asarray(getattr(model, name), np.float32) for name in _OPTIONAL
                 if getattr(model, name) is not None})
  # Write through a file object so NumPy does not append ".npz" to the name,
  # and via a temporary file so a crash never leaves a truncated model behind
  # (one per process: the processes of a multi-host run may all save it).
  tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    np.savez(f, kind=np.array(KIND), format_version=np.array(FORMAT_VERSION), **arrays)
  os.replace(tmp, path)


def load(path: str | os.PathLike) -> PoseModel:
  """Reads a `PoseModel` written by `save`.

  Args:
    path: the .npz file.

  Returns:
    The `PoseModel` (float32 JAX arrays).

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if the file is truncated, not a .npz, not a pose model, of an
      unknown format version, or has inconsistent shapes.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no pose model file at {path!r}; fit one with "
                            "lift3d.pose_model.fit and lift3d.pose_model.save")
  try:
    data = np.load(path, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
      raise ValueError(f"{path!r} holds a bare array, not a pose model .npz")
    with data:
      contents = {name: data[name] for name in data.files}
  except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
    raise ValueError(f"{path!r} is not a readable pose model file (truncated or not a "
                     f".npz): {e}") from None
  if "kind" not in contents:
    raise ValueError(f"{path!r} is not a pose model file (no 'kind' tag)")
  kind = str(contents["kind"])
  if kind != KIND:
    raise ValueError(f"{path!r} holds {kind!r}, not a {KIND!r}")
  version = int(contents.get("format_version", -1))
  if version not in _READABLE_VERSIONS:
    raise ValueError(f"{path!r} has pose model format version {version}; this code reads "
                     f"versions {list(_READABLE_VERSIONS)}")
  missing = [name for name in _FIELDS if name not in contents]
  if missing:
    raise ValueError(f"{path!r} lacks the arrays {missing}")
  model = PoseModel(
      **{name: jnp.asarray(contents[name], jnp.float32) for name in _FIELDS},
      **{name: jnp.asarray(contents[name], jnp.float32) for name in _OPTIONAL
         if name in contents})
  _check_model(model)
  return model
