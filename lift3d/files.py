"""Atomic file writes: a crash or Ctrl-C never leaves a truncated output behind."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import IO, Any


def write_atomically(path: str, write: Callable[[IO[bytes]], Any]) -> None:
  """Calls `write(file)` on a temporary binary file next to `path`, then renames it into place.

  Args:
    path: the final file path (its folder must exist).
    write: called once with the open temporary file.
  """
  path = os.fspath(path)
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, "wb") as f:
      write(f)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_json(path: str, obj: Any, **dump_kwargs) -> str:
  """Writes `obj` as indented JSON to `path`, atomically; returns `path`.

  Args:
    path: the output file.
    obj: a JSON-able object.
    **dump_kwargs: passed to `json.dumps` (e.g. `default=str`).
  """
  text = json.dumps(obj, indent=2, **dump_kwargs).encode()
  write_atomically(path, lambda f: f.write(text))
  return path
