"""Full float32 matrix products for the geometric code.

On GPUs and TPUs XLA runs float32 matrix products in reduced precision by
default (TF32 or bfloat16 passes). The lifting costs `||Dw||² − ||z||²` and
the pose-model statistics subtract nearly equal quantities, so there that
default changes which yaw and component win. Every public numerical entry
point of lift3d is wrapped in `float32_matmuls`, which traces it with
`jax.default_matmul_precision("highest")` (a no-op on CPU). The network's
convolutions are not wrapped and keep the backend's default.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import jax

F = TypeVar("F", bound=Callable)


def float32_matmuls(fn: F) -> F:
  """Decorator: run (and trace) `fn` with full float32 matrix products."""

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    with jax.default_matmul_precision("highest"):
      return fn(*args, **kwargs)

  return wrapper  # type: ignore[return-value]
