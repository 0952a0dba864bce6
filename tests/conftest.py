"""Test session set-up: figures render off-screen; a full-float32 fixture."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax
import pytest


@pytest.fixture
def full_precision():
  """Full float32 matrix products for tests that call internal helpers.

  The public entry points set this themselves (lift3d._precision); helpers
  called directly would otherwise run in TF32/bfloat16 on GPUs and TPUs.
  """
  with jax.default_matmul_precision("highest"):
    yield
