"""Checks that the LAPACK calls of a compiled XLA CPU program run one at a time.

jaxlib's batched LAPACK kernels block an XLA CPU worker thread while their
tasks run on the same thread pool; two of them running at once can take every
worker of a small pool (2 threads on a 2-core machine) and hang forever. A
program is safe when its LAPACK calls are totally ordered by data dependencies.
This parses the optimised HLO text (`jax.jit(f).lower(...).compile().as_text()`).
"""

from __future__ import annotations

import re

_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_CALLED = re.compile(
    r"(?:to_apply|body|condition|calls|true_computation|false_computation)=%?([\w.\-]+)"
    r"|branch_computations=\{([^}]*)\}")
_LAPACK = re.compile(r'custom_call_target="lapack_')


def _parse(hlo: str) -> dict:
  """{computation: {instruction: (operand names, called computations, is_lapack)}}."""
  computations, current = {}, None
  for line in hlo.splitlines():
    if current is None:
      # Computation headers start at column 0 and open a block.
      if line[:1] not in ("", " ") and line.rstrip().endswith("{"):
        words = line.split()
        name = words[1] if words[0] == "ENTRY" else words[0]
        current = computations.setdefault(name.lstrip("%"), {})
      continue
    if line.strip() == "}":
      current = None
      continue
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name, rest = match.groups()
    called = []
    for single, several in _CALLED.findall(rest):
      called += [single] if single else [c.strip().lstrip("%") for c in several.split(",")]
    operands = set(re.findall(r"%([\w.\-]+)", rest)) - set(called)
    current[name] = (operands, called, bool(_LAPACK.search(rest)))
  return computations


def unordered_lapack_calls(hlo: str) -> list[tuple[str, str]]:
  """Pairs of instructions holding LAPACK calls that may run at the same time.

  Args:
    hlo: optimised HLO module text.

  Returns:
    [(a, b)]: instruction names in one computation, neither of which depends
    on the other, that both are (or call computations holding) LAPACK calls.
  """
  computations = _parse(hlo)
  holds = {}

  def has_lapack(comp: str) -> bool:
    if comp not in holds:
      holds[comp] = False
      holds[comp] = any(lapack or any(has_lapack(c) for c in called if c in computations)
                        for _, called, lapack in computations[comp].values())
    return holds[comp]

  pairs = []
  for instructions in computations.values():
    heavy = [n for n, (_, called, lapack) in instructions.items()
             if lapack or any(has_lapack(c) for c in called if c in computations)]
    if len(heavy) < 2:
      continue
    ancestors = {}

    def upstream(name, instructions=instructions, ancestors=ancestors):
      if name not in ancestors:
        ancestors[name] = set()
        found = set()
        for op in instructions.get(name, ((), (), False))[0]:
          if op in instructions:
            found |= {op} | upstream(op)
        ancestors[name] = found
      return ancestors[name]

    for i, a in enumerate(heavy):
      for b in heavy[i + 1:]:
        if a not in upstream(b) and b not in upstream(a):
          pairs.append((a, b))
  return pairs
