"""Progress bars: a tqdm bar on a terminal, periodic log lines anywhere else."""

import io
import logging

import tqdm

from lift3d import progress


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def _lines(caplog):
  return [r.getMessage() for r in caplog.records if r.name == "lift3d.progress"]


def test_off_a_terminal_the_bar_logs_the_first_and_last_state_only(caplog, monkeypatch):
  stderr = io.StringIO()
  monkeypatch.setattr("sys.stderr", stderr)
  with caplog.at_level(logging.INFO, logger="lift3d.progress"):
    for _ in progress.bar(range(50), desc="steps", log_every_s=3600.0):
      pass
  lines = _lines(caplog)
  assert len(lines) == 2, lines  # the start and the end; nothing in between within an hour
  assert lines[0].startswith("steps:   0%") and lines[1].startswith("steps: 100%"), lines
  assert "50/50" in lines[1] and "\r" not in "".join(lines)
  assert stderr.getvalue() == ""  # nothing was drawn on stderr


def test_off_a_terminal_every_redraw_is_a_line_when_the_interval_is_zero(caplog, monkeypatch):
  monkeypatch.setattr("sys.stderr", io.StringIO())
  with caplog.at_level(logging.INFO, logger="lift3d.progress"):
    bar = progress.bar(total=3, desc="em", log_every_s=0.0, miniters=1)
    for _ in range(3):
      bar.update(1)
    bar.close()
  lines = _lines(caplog)
  assert [line.split("|")[0].split(":")[1].strip() for line in lines] == [
      "0%", "33%", "67%", "100%"], lines


def test_on_a_terminal_it_is_a_plain_tqdm_bar(caplog, monkeypatch):
  terminal = _Terminal()
  monkeypatch.setattr("sys.stderr", terminal)
  with caplog.at_level(logging.INFO, logger="lift3d.progress"):
    bar = progress.bar(range(3), desc="t")
    assert isinstance(bar, tqdm.tqdm)
    list(bar)
  assert not _lines(caplog)
  assert "\r" in terminal.getvalue() and "3/3" in terminal.getvalue()
