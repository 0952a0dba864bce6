"""`jax.jit` with XLA CPU options measured to speed up the lifting programs.

The lifting's programs are many small matrix products and long unrolled
elementwise kernels over frames (the searches, factorisations and Newton
loops of `lift3d.lifting` and `lift3d.sequence`). On the CPU three XLA
options made them faster to run or to compile (RESULTS.md, issue 11):
- `xla_cpu_experimental_ynn_fusion_type`: only matrix products go to
  YNNPACK. By default XLA also hands it the reductions, and its kernels for
  the lifting's short reductions (17 joints, 48 limb coordinates) were slower
  than XLA's own loops (the 2D cleaning 1.5× faster without them, one run
  of `experiments/benchmarks/lift_stages.py`).
- `xla_cpu_prefer_vector_width = 512`: XLA's own loops in 512-bit vectors
  where the CPU has them (the weighted factorisations run frames-minor).
  With the first option (session 18; K = 3, J = 10, T = 100, 16,384 frames,
  interleaved in one process on a 2-core Intel Xeon with AVX-512): weighted
  `lift` 1.16–1.27×, unweighted 1.06–1.11×.
- `xla_cpu_use_fusion_emitters = False`: XLA's elemental emitters, not its
  newer fusion emitters, generate the loops (session 22, 2-core AMD EPYC,
  `experiments/benchmarks/compile_time.py`): the programs compile 1.2–1.9×
  faster (K = 9, J = 14: weighted `lift` 10.3–11.0 → 6.0 s, `refine=True`
  27–29 → 17 s, unweighted 4.6 → 3.7–4.0 s), and run as fast or faster
  (weighted `lift` 1.08–1.10×, `refine` 1.09–1.11×, `lift_sequence`
  1.05–1.13×, unweighted `lift` 1.00×).

`cpu_tuned_jit` compiles with the options this jaxlib accepts (each probed
once, by compiling a one-line program) where the default backend is the
CPU; elsewhere, and when called with traced arguments (under an outer
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
    "xla_cpu_use_fusion_emitters": False,
}


@functools.cache
def accepted_cpu_options() -> dict:
  """The entries of `CPU_COMPILER_OPTIONS` this jaxlib compiles with (probed once each, cached).

  An option a newer jaxlib renames or drops is left out alone; the others
  still apply.
  """
  accepted = {}
  for name, value in CPU_COMPILER_OPTIONS.items():
    try:
      probe = jax.jit(lambda x: x + 1, compiler_options={name: value})
      jax.block_until_ready(probe(np.float32(0.0)))
    except Exception:  # an unknown option or value
      continue
    accepted[name] = value
  return accepted


def cpu_options_accepted() -> bool:
  """Whether this jaxlib accepts every entry of `CPU_COMPILER_OPTIONS`."""
  return accepted_cpu_options() == CPU_COMPILER_OPTIONS


def cpu_tuned_jit(fn: Callable | None = None, *, static_argnames: Sequence[str] = ()):
  """Decorator: `jax.jit(fn, static_argnames=...)`, with the accepted CPU options on the CPU.

  The returned function has `lower`, `clear_cache()` and `_cache_size()` as
  jitted functions do (the last two over both of its compiled variants),
  `cache_sizes()` -> (plain, tuned) programs, and the plain variant as
  `plain`. The tuned variant is made on its first use, with
  `accepted_cpu_options()`.
  """
  if fn is None:
    return functools.partial(cpu_tuned_jit, static_argnames=static_argnames)
  plain = jax.jit(fn, static_argnames=static_argnames)
  made = {}  # "tuned": the jit with the accepted options, once one is needed

  def tuned():
    if "tuned" not in made:
      made["tuned"] = jax.jit(fn, static_argnames=static_argnames,
                              compiler_options=accepted_cpu_options())
    return made["tuned"]

  def chosen(args, kwargs):
    # Traced (under an outer jit, vmap or grad): JAX accepts compiler options
    # on top-level programs only, and the outer program's apply.
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((args, kwargs)))
    if traced or jax.default_backend() != "cpu" or not accepted_cpu_options():
      return plain
    return tuned()

  @functools.wraps(fn)
  def call(*args, **kwargs):
    return chosen(args, kwargs)(*args, **kwargs)

  def cache_sizes():
    return plain._cache_size(), made["tuned"]._cache_size() if "tuned" in made else 0

  def clear_cache():
    plain.clear_cache()
    if "tuned" in made:
      made["tuned"].clear_cache()

  call.plain = plain
  call.cache_sizes = cache_sizes
  call.clear_cache = clear_cache
  call.lower = lambda *args, **kwargs: chosen(args, kwargs).lower(*args, **kwargs)
  call._cache_size = lambda: sum(cache_sizes())
  return call
