"""The network (paper §5): a multi-stage CPM with projected belief maps and fusion."""

from lift3d.models.belief_maps import (
    gaussian_maps,
    grid_to_pixels,
    maps_to_points,
    pixels_to_grid,
)
from lift3d.models.cpm import CPM, CPMOutput, Prediction, init, predict

__all__ = [
    "CPM",
    "CPMOutput",
    "Prediction",
    "gaussian_maps",
    "grid_to_pixels",
    "init",
    "maps_to_points",
    "pixels_to_grid",
    "predict",
]
