"""The rolled dense solves of lift3d.lifting.solves against float64 NumPy."""

import jax
import numpy as np
import pytest

from lift3d.lifting import solves

EPS32 = float(np.finfo(np.float32).eps)


def _spd(rng, batch, size, condition):
  """(batch, size, size) SPD matrices with eigenvalues spread over `condition`."""
  q, _ = np.linalg.qr(rng.normal(size=(batch, size, size)))
  eigenvalues = np.geomspace(1.0, condition, size)
  return np.einsum("bij,j,bkj->bik", q, eigenvalues, q)


@pytest.mark.parametrize("size", [1, 4, 15])
def test_whiten_gives_the_cholesky_whitened_design(size):
  rng = np.random.default_rng(size)
  gram = _spd(rng, 6, size, 1e3)
  design = rng.normal(size=(6, 9, size))
  got = np.asarray(jax.jit(solves.whiten)(gram.astype(np.float32), design.astype(np.float32)))
  lower = np.linalg.cholesky(gram)
  want = np.linalg.solve(lower, np.swapaxes(design, -1, -2))  # L⁻¹ Xᵀ
  # Forward substitution's error is bounded by the condition number of L
  # (√1e3 here) times float32 rounding of the size of what cancels.
  scale = np.abs(want).max()
  np.testing.assert_allclose(got, want, rtol=0, atol=8 * size * EPS32 * np.sqrt(1e3) * scale)
  # And the identity it is used for: X gram⁻¹ Xᵀ = (L⁻¹Xᵀ)ᵀ(L⁻¹Xᵀ).
  m = np.einsum("bpi,bpj->bij", got, got)
  m_want = design @ np.linalg.solve(gram, np.swapaxes(design, -1, -2))
  np.testing.assert_allclose(m, m_want, rtol=0,
                             atol=16 * size * EPS32 * 1e3 * np.abs(m_want).max())


@pytest.mark.parametrize("size", [1, 3, 14])
def test_solve_dense_matches_float64(size):
  rng = np.random.default_rng(10 + size)
  condition = 1e3
  matrix = _spd(rng, 8, size, condition)
  rhs = rng.normal(size=(8, size))
  # Batch axes trailing: (n, n, 8) and (n, 8).
  got = np.asarray(jax.jit(solves.solve_dense)(np.moveaxis(matrix, 0, -1).astype(np.float32),
                                               rhs.T.astype(np.float32))).T
  want = np.linalg.solve(matrix, rhs[..., None])[..., 0]
  # Backward error of elimination without pivoting on SPD matrices is
  # O(n ε ||A||); the forward error is that times the condition number.
  tolerance = 16 * size * EPS32 * condition * np.abs(want).max()
  np.testing.assert_allclose(got, want, rtol=0, atol=tolerance)
  # Any batch shape.
  batched = np.asarray(solves.solve_dense(
      np.moveaxis(matrix, 0, -1).reshape(size, size, 2, 4).astype(np.float32),
      rhs.T.reshape(size, 2, 4).astype(np.float32)))
  np.testing.assert_allclose(batched.reshape(size, 8).T, got, rtol=0, atol=tolerance)
