"""A fit shared by several test files (compiling the fit passes once per session)."""

import jax
import pytest

from lift3d.pose_model import fit_detailed
from tests.pose_model import synthetic

# The standard small fit: every test that fits poses uses these sizes, so the
# jitted passes compile once (400 poses + mirrors = 800 = 4 chunks of 200).
STANDARD = dict(num_components=2, num_basis=3, chunk_size=200)


@pytest.fixture(scope="session")
def planted():
  """(poses (400, 17, 3) metres, true yaws (400,))."""
  return synthetic.planted_poses(400)


@pytest.fixture(scope="session")
def planted_fit(planted):
  """`fit_detailed` of the planted poses with the STANDARD sizes, on one device."""
  return fit_detailed(planted[0], key=jax.random.key(0), devices=jax.devices()[:1], **STANDARD)
