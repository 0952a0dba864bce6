"""`jax.jit` with XLA CPU options measured to speed up the lifting programs.

The lifting's programs are many small matrix products and long unrolled
elementwise kernels over frames (the searches, factorisations and Newton
loops of `lift3d.lifting` and `lift3d.sequence`). On the CPU two XLA options
made them faster (RESULTS.md, issue 11, session 18; K = 3, J = 10, T = 100,
16,384 frames, interleaved in one process on a 2-core Intel Xeon with
AVX-512): weighted `lift` 1.16–1.27×, unweighted 1.06–1.11×.
- `xla_cpu_experimental_ynn_fusion_type`: only matrix products go to
  YNNPACK. By default XLA also hands it the reductions, and its kernels for
  the lifting's short reductions (17 joints, 48 limb coordinates) were slower
  than XLA's own loops (the 2D cleaning 1.5× faster without them, one run
  of `experiments/benchmarks/lift_stages.py`).
- `xla_cpu_prefer_vector_width = 512`: XLA's own loops in 512-bit vectors
  where the CPU has them (the weighted factorisations run frames-minor).

`cpu_tuned_jit` compiles with these options where the default backend is the
CPU and this jaxlib accepts them (checked once, by compiling a one-line
program); elsewhere, and when called with traced arguments (under an outer
`jax.jit`, `jax.vmap` or `jax.grad`, where the outer program's options
apply), it is plain `jax.jit`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import numpy as np

CPU_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT",
    "xla_cpu_prefer_vector_width": 512,
}


@functools.cache
def cpu_options_accepted() -> bool:
  """Whether this jaxlib compiles with `CPU_COMPILER_OPTIONS` (one probe, cached)."""
  try:
    probe = jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS)
    jax.block_until_ready(probe(np.float32(0.0)))
  except Exception:  # an unknown option or value: plain jit
    return False
  return True


def cpu_tuned_jit(fn: Callable | None = None, *, static_argnames: Sequence[str] = ()):
  """Decorator: `jax.jit(fn, static_argnames=...)`, with `CPU_COMPILER_OPTIONS` on the CPU.

  The returned function has `lower`, `clear_cache()` and `_cache_size()` as
  jitted functions do (the last two over both of its compiled variants), and
  the two variants as `plain` and `tuned`.
  """
  if fn is None:
    return functools.partial(cpu_tuned_jit, static_argnames=static_argnames)
  plain = jax.jit(fn, static_argnames=static_argnames)
  tuned = jax.jit(fn, static_argnames=static_argnames, compiler_options=CPU_COMPILER_OPTIONS)

  def chosen(args, kwargs):
    # Traced (under an outer jit, vmap or grad): JAX accepts compiler options
    # on top-level programs only, and the outer program's apply.
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs)))
    if traced or jax.default_backend() != "cpu" or not cpu_options_accepted():
      return plain
    return tuned

  @functools.wraps(fn)
  def call(*args, **kwargs):
    return chosen(args, kwargs)(*args, **kwargs)

  def clear_cache():
    plain.clear_cache()
    tuned.clear_cache()

  call.plain, call.tuned = plain, tuned
  call.clear_cache = clear_cache
  call.lower = lambda *args, **kwargs: chosen(args, kwargs).lower(*args, **kwargs)
  call._cache_size = lambda: plain._cache_size() + tuned._cache_size()
  return call
