"""`lift3d._compile.cpu_tuned_jit`: the CPU options reach the compiled program, the answers do not change."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lift3d import _compile


def _norms(x):
  """(B, L, 2) -> (B,) root sum of squares: a short reduction per row."""
  return jnp.sqrt(jnp.sum(x * x, axis=(1, 2)))


def _ynn_fusions(text: str) -> int:
  return sum("ynn_fusion" in line and "kind=kCustom" in line for line in text.splitlines())


def test_the_cpu_runs_the_tuned_program_and_other_backends_the_plain_one():
  tuned = _compile.cpu_tuned_jit(_norms)
  x = np.ones((2048, 17, 2), np.float32)
  tuned(x)
  if jax.default_backend() != "cpu":  # the options are for XLA's CPU compiler only
    assert tuned.cache_sizes() == (1, 0)
    return
  assert _compile.cpu_options_accepted(), (
      "this jaxlib rejects CPU_COMPILER_OPTIONS: update them (lift3d/_compile.py)")
  assert tuned.cache_sizes() == (0, 1)
  # XLA's default hands the reduction to YNNPACK; the options keep it in XLA.
  assert _ynn_fusions(jax.jit(_norms).lower(x).compile().as_text()) >= 1
  assert _ynn_fusions(tuned.lower(x).compile().as_text()) == 0


def test_same_answers_traced_or_not_and_one_program_per_shape():
  tuned = _compile.cpu_tuned_jit(_norms)
  x = np.random.default_rng(0).normal(size=(64, 17, 2)).astype(np.float32)
  # Float64 reference; float32 rounding of a 34-term sum of squares.
  reference = np.sqrt(np.sum(x.astype(np.float64) ** 2, axis=(1, 2)))
  tolerance = 34 * np.finfo(np.float32).eps * reference
  direct = np.asarray(tuned(x))
  np.testing.assert_allclose(direct, reference, rtol=0, atol=tolerance.max())
  # Under an outer jit, vmap or grad JAX refuses options on a nested jit: the
  # plain program runs there.
  np.testing.assert_allclose(np.asarray(jax.jit(tuned)(x)), reference, rtol=0,
                             atol=tolerance.max())
  np.testing.assert_allclose(np.asarray(jax.vmap(tuned)(x[:, None])[:, 0]), reference, rtol=0,
                             atol=tolerance.max())
  # d|x|/dx = x/|x|: the sum's rounding (34 terms) and one more rounding, relative.
  gradient = jax.grad(lambda v: jnp.sum(tuned(v)))(x)
  np.testing.assert_allclose(np.asarray(gradient), x / reference[:, None, None],
                             rtol=36 * np.finfo(np.float32).eps, atol=0)
  size = tuned._cache_size()
  tuned(x + 1)  # same shape: no new program
  assert tuned._cache_size() == size
  tuned.clear_cache()
  assert tuned._cache_size() == 0


@pytest.fixture
def patched_options(monkeypatch):
  """Sets CPU_COMPILER_OPTIONS to the given dict and reruns the probes."""

  def patch(options):
    monkeypatch.setattr(_compile, "CPU_COMPILER_OPTIONS", options)
    _compile.accepted_cpu_options.cache_clear()

  yield patch
  _compile.accepted_cpu_options.cache_clear()


def test_options_this_jaxlib_rejects_fall_back_to_plain_jit(patched_options):
  patched_options({"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"})
  assert not _compile.cpu_options_accepted() and _compile.accepted_cpu_options() == {}
  tuned = _compile.cpu_tuned_jit(lambda v: _norms(v))  # jit caches are per function
  x = np.full((4, 17, 2), 0.5, np.float32)
  np.testing.assert_allclose(np.asarray(tuned(x)), np.full(4, np.sqrt(34 * 0.25)),
                             rtol=np.finfo(np.float32).eps)  # an exact sum, one rounding
  assert tuned.cache_sizes() == (1, 0)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA CPU compiler options")
def test_one_rejected_option_leaves_the_others_in_force(patched_options):
  good = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}
  patched_options({**good, "xla_cpu_not_an_option": True,
                   "xla_cpu_prefer_vector_width": "not a width"})
  assert not _compile.cpu_options_accepted()
  assert _compile.accepted_cpu_options() == good
  tuned = _compile.cpu_tuned_jit(lambda v: _norms(v))  # jit caches are per function
  x = np.ones((2048, 17, 2), np.float32)
  np.testing.assert_allclose(np.asarray(tuned(x)), np.full(2048, np.sqrt(34.0)),
                             rtol=np.finfo(np.float32).eps)
  assert tuned.cache_sizes() == (0, 1)
  assert _ynn_fusions(tuned.lower(x).compile().as_text()) == 0  # the accepted option applies
