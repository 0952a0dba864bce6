"""Tests of lift3d.models.belief_maps against closed forms and brute force."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lift3d.models import belief_maps
from tests.float32_bounds import ULPS_PER_FUNCTION, assert_within, bound

# Jitted once per shape: much faster here than op-by-op dispatch.
gaussian_maps = jax.jit(belief_maps.gaussian_maps, static_argnums=(1, 2, 3))
maps_to_points = jax.jit(belief_maps.maps_to_points, static_argnums=1)


def test_gaussian_maps_match_brute_force():
  rng = np.random.default_rng(0)
  points = rng.uniform(-1, 9, (2, 3, 2)).astype(np.float32)  # (B, L, 2)
  sigma = 1.3
  maps = np.asarray(gaussian_maps(jnp.asarray(points), 6, 7, sigma))
  assert maps.shape == (2, 6, 7, 3)
  for b in range(2):
    for j in range(3):
      for v in range(6):
        for u in range(7):
          exponent = ((u - points[b, j, 0].astype(np.float64)) ** 2
                      + (v - points[b, j, 1].astype(np.float64)) ** 2) / (2 * sigma**2)
          expected = np.exp(-exponent)
          # The exponent errs relatively (difference, division, square); two exps, a product.
          assert_within(maps[b, v, u, j], expected,
                        bound(expected * (1 + exponent), 6 + 2 * ULPS_PER_FUNCTION))


def test_argmax_recovers_integer_centres_and_unit_confidence():
  points = jnp.array([[[2.0, 5.0], [7.0, 0.0], [0.0, 3.0]]])
  maps = gaussian_maps(points, 6, 8, 1.0)
  found, confidence = maps_to_points(maps, "argmax")
  np.testing.assert_array_equal(np.asarray(found), np.asarray(points))
  np.testing.assert_allclose(np.asarray(confidence), 1.0, atol=1e-6)


def test_quadratic_subpixel_beats_argmax_on_off_grid_centres():
  rng = np.random.default_rng(1)
  points = rng.uniform(1.5, 10.5, (64, 1, 2)).astype(np.float32)
  maps = gaussian_maps(jnp.asarray(points), 12, 12, 1.5)
  coarse, _ = maps_to_points(maps, "argmax")
  fine, _ = maps_to_points(maps, "quadratic")
  coarse_err = np.abs(np.asarray(coarse) - points).max()
  fine_err = np.abs(np.asarray(fine) - points).max()
  assert coarse_err <= 0.5 + 1e-6
  assert fine_err < 0.15
  assert np.abs(np.asarray(fine) - points).mean() < 0.3 * np.abs(np.asarray(coarse) - points).mean()


def test_pixels_grid_round_trip_and_cell_centres():
  px = jnp.array([[0.0, 0.0], [3.0, 3.0], [1.5, 5.5], [13.7, 2.2]])
  for stride in (1, 4, 8):
    grid = belief_maps.pixels_to_grid(px, stride)
    # Two affine maps (a shift, a division, a product, a shift) on values of size |px| + stride.
    assert_within(belief_maps.grid_to_pixels(grid, stride), px,
                  bound(np.abs(np.asarray(px)) + stride, 8))
  # Cell 0 of stride 4 covers pixels 0..3; its centre is pixel 1.5.
  np.testing.assert_allclose(np.asarray(belief_maps.pixels_to_grid(jnp.array([1.5, 5.5]), 4)),
                             [0.0, 1.0])


def test_bad_subpixel_method():
  with pytest.raises(ValueError, match="subpixel"):
    belief_maps.maps_to_points(jnp.zeros((4, 4, 2)), "bicubic")


def test_sample_cells_matches_indexing():
  rng = np.random.default_rng(3)
  maps = rng.normal(size=(2, 5, 7, 4)).astype(np.float32)
  cells = np.stack([rng.integers(0, 7, (2, 4)), rng.integers(0, 5, (2, 4))], -1).astype(np.float32)
  got = np.asarray(belief_maps.sample_cells(jnp.asarray(maps), jnp.asarray(cells)))
  for b in range(2):
    for j in range(4):
      col, row = cells[b, j].astype(int)
      assert got[b, j] == maps[b, row, col, j]
  # The arg-max cells give back the peaks.
  points, peaks = belief_maps.maps_to_points(jnp.asarray(maps), "argmax")
  np.testing.assert_array_equal(belief_maps.sample_cells(jnp.asarray(maps), points), peaks)
