"""Progress bars that stay readable in log files.

On a terminal, `bar` is a plain `tqdm` bar. When stderr is not a terminal (a
log file, a pipe, a batch job) a redrawn bar would pile up as one enormous
line of carriage returns, so the bar instead logs its status as an ordinary
INFO line at most every `LOG_EVERY_S` seconds (and once at the end).
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time

import tqdm

LOG_EVERY_S = 30.0

_logger = logging.getLogger("lift3d.progress")


class _LogLines:
  """A file-like sink for tqdm: one log line per `every_s` seconds, and the last state."""

  def __init__(self, every_s: float):
    self._every_s = every_s
    self._logged_at = -math.inf
    self._pending = ""
    self._last_count = ""  # the "desc: pct|bar| n/total" part of the line logged last

  def write(self, text: str) -> int:
    line = text.replace("\r", "").strip()
    now = time.monotonic()
    if line:
      self._pending = line
      if now - self._logged_at >= self._every_s:
        self._log(now)
    elif "\n" in text and self._pending:  # tqdm closes the bar with a newline
      self._log(now)
    return len(text)

  def _log(self, now: float) -> None:
    count = re.sub(r"\|[^|]*\|", "|", self._pending).split(" [")[0]  # bar width varies
    if count != self._last_count:  # (closing redraws the last state once more)
      _logger.info("%s", self._pending)
      self._last_count, self._logged_at = count, now
    self._pending = ""

  def flush(self) -> None:
    pass


def bar(iterable=None, *, log_every_s: float | None = None, **kwargs) -> tqdm.tqdm:
  """A `tqdm.tqdm(iterable, **kwargs)` that logs lines instead of redrawing off a terminal.

  Args:
    iterable: what to iterate over, or None for a manually updated bar.
    log_every_s: seconds between progress lines when stderr is not a terminal
      (default `LOG_EVERY_S`); ignored on a terminal.
    **kwargs: tqdm's own arguments (total, desc, unit, initial, disable, ...).

  Returns:
    The tqdm bar.
  """
  stream = sys.stderr
  if stream is not None and hasattr(stream, "isatty") and stream.isatty():
    return tqdm.tqdm(iterable, **kwargs)
  every_s = LOG_EVERY_S if log_every_s is None else log_every_s
  kwargs.setdefault("mininterval", every_s)
  return tqdm.tqdm(iterable, file=_LogLines(every_s), ascii=True, dynamic_ncols=False, ncols=100,
                   **kwargs)
