"""The jitted entry points never run two batched LAPACK calls at once.

On a 2-core machine two concurrent LAPACK custom calls wedge XLA's CPU pool
and the program hangs (the cause of a CI timeout). `tests/lapack_order.py`
checks the compiled program's dependency graph for that.
"""

import re

import jax
import numpy as np
import pytest

from lift3d import camera, lift, lift_sequence
from lift3d.lifting import api
from tests.lapack_order import unordered_lapack_calls
from tests.lifting.planted import MODEL, random_frames

_PARALLEL_HLO = """
HloModule m

ENTRY %main (a: f32[2,3,3], b: f32[2,3,3]) -> (f32[2,3,3], f32[2,3,3]) {
  %a = f32[2,3,3]{2,1,0} parameter(0)
  %b = f32[2,3,3]{2,1,0} parameter(1)
  %eigh.0 = (f32[2,3,3]{2,1,0}, f32[2,3]{1,0}) custom-call(%a), custom_call_target="lapack_ssyevd_ffi"
  %chol.0 = (f32[2,3,3]{2,1,0}, s32[2]{0}) custom-call(%b), custom_call_target="lapack_spotrf_ffi"
  %x = f32[2,3,3]{2,1,0} get-tuple-element(%eigh.0), index=0
  %y = f32[2,3,3]{2,1,0} get-tuple-element(%chol.0), index=0
  %solve.0 = f32[2,3,3]{2,1,0} custom-call(%y, %x), custom_call_target="lapack_strsm_ffi"
  ROOT %t = (f32[2,3,3]{2,1,0}, f32[2,3,3]{2,1,0}) tuple(%x, %solve.0)
}
"""


def test_the_checker_finds_independent_calls_and_accepts_dependent_ones():
  # eigh and the Cholesky are independent; the solve depends on both.
  assert unordered_lapack_calls(_PARALLEL_HLO) == [("eigh.0", "chol.0")]
  ordered = _PARALLEL_HLO.replace("custom-call(%b)", "custom-call(%x)")
  assert unordered_lapack_calls(ordered) == []


def _compiled(fn, *args):
  return jax.jit(fn).lower(*args).compile().as_text()


@pytest.mark.parametrize("weighted, rotated", [(False, False), (True, True)])
def test_lift_runs_its_lapack_calls_one_at_a_time(weighted, rotated):
  kp, vis = random_frames(0)
  rotation = np.asarray(camera.elevation_rotation(0.3)) if rotated else None
  text = _compiled(lambda k, v: lift(MODEL, k, v if weighted else None,
                                     camera_rotation=rotation, obs_noise=0.05), kp, vis)
  assert unordered_lapack_calls(text) == []


@pytest.mark.parametrize("weighted, rotated", [(False, False), (True, True)])
def test_lift_sequence_has_no_lapack_call(weighted, rotated):
  # Its program holds the grid scores (`grid_scores`) and the smoothing solves,
  # and `lift_sequence` runs groups of sequences in threads at once
  # (`api._in_threads`): two programs blocking XLA's CPU workers in LAPACK
  # calls could wedge the pool, as two unweighted `lift` programs did. So it
  # holds none at all (stronger than `unordered_lapack_calls(text) == []`).
  kp, vis = random_frames(0)
  rotation = np.asarray(camera.elevation_rotation(0.3)) if rotated else None
  text = _compiled(lambda k, v: lift_sequence(MODEL, k, v if weighted else None,
                                              camera_rotation=rotation, obs_noise=0.05),
                   kp, vis)
  targets = re.findall(r'custom_call_target="([^"]+)"', text)
  assert not [t for t in targets if "lapack" in t], targets


@pytest.mark.parametrize("weighted, rotated", [(False, False), (True, True)])
def test_lift_in_groups_runs_no_lapack_call_in_its_threads(weighted, rotated):
  # `lift` runs big batches in groups, one thread each (`api._lift_in_groups`):
  # `prepare` (with LAPACK's eigh, unweighted) runs first, alone, and the
  # groups' program must hold no LAPACK call.
  kp, vis = random_frames(0)
  rotation = np.asarray(camera.elevation_rotation(0.3)) if rotated else None
  captured = {}
  real = api._lift_prepared_jit

  def spy(prep, model, keypoints, visibility, limits, *, options):
    captured["text"] = real.lower(prep, model, keypoints, visibility, limits,
                                  options=options).compile().as_text()
    return real(prep, model, keypoints, visibility, limits, options=options)

  api._lift_prepared_jit = spy
  try:
    lift(MODEL, kp, vis if weighted else None, camera_rotation=rotation, obs_noise=0.05,
         chunk_size=4, threads=2)
  finally:
    api._lift_prepared_jit = real
  targets = re.findall(r'custom_call_target="([^"]+)"', captured["text"])
  assert not [t for t in targets if "lapack" in t], targets
