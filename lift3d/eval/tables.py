"""Per-action and per-subject error tables (Markdown and CSV), paper-style.

A table is a list of rows, one per group (action or subject) in a fixed order,
plus an "Average" row. Following the Human3.6M papers, the average of a
per-action table is the mean of the per-action means (each action weighs the
same), not the mean over frames; the frame-weighted mean is kept beside it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Mapping, Sequence

import numpy as np

from lift3d import files

# The 15 actions of Human3.6M in the order of the papers' tables.
H36M_ACTIONS: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing",
    "Purchases", "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking",
    "WalkTogether",
)

AVERAGE = "Average"


@dataclasses.dataclass(frozen=True)
class ErrorTable:
  """Mean errors per group.

  Attributes:
    title: caption, e.g. "Protocol #1: MPJPE (mm)".
    group_name: header of the first column, e.g. "action".
    groups: (G,) group labels in table order (without the average).
    values: (G,) mean error per group; NaN where a group has no frames.
    counts: (G,) frames per group.
    average: mean of the finite group means (the papers' "Avg").
    frame_average: mean over all frames.
    reference: optional {group or "Average": value} of published numbers,
      shown in a column beside ours.
    reference_name: header of that column.
    units: units of the values, for the headers.
  """

  title: str
  group_name: str
  groups: tuple[str, ...]
  values: np.ndarray
  counts: np.ndarray
  average: float
  frame_average: float
  reference: Mapping[str, float] | None = None
  reference_name: str = "paper"
  units: str = "mm"

  def as_dict(self) -> dict[str, float]:
    """{group: value} plus {"Average": average}."""
    out = {g: float(v) for g, v in zip(self.groups, self.values, strict=True)}
    out[AVERAGE] = float(self.average)
    return out


def group_table(values, groups: Sequence[str], *, title: str = "", group_name: str = "action",
                order: Sequence[str] | None = None,
                reference: Mapping[str, float] | None = None,
                reference_name: str = "paper", units: str = "mm") -> ErrorTable:
  """Averages per-frame errors by group.

  Args:
    values: (N,) per-frame errors.
    groups: (N,) group label of each frame (e.g. its action or subject).
    title, group_name, reference, reference_name, units: see `ErrorTable`.
    order: group labels in table order; groups listed but absent get NaN and
      count 0; groups present but unlisted are appended in sorted order.
      None: sorted labels.

  Returns:
    An `ErrorTable`.
  """
  values = np.asarray(values, np.float64).reshape(-1)
  groups = np.asarray([str(g) for g in groups])
  if groups.shape != values.shape:
    raise ValueError(f"groups {groups.shape} and values {values.shape} must have the same length")
  present = sorted(set(groups.tolist()))
  labels = list(order) if order is not None else []
  labels += [g for g in present if g not in labels]
  means, counts = [], []
  for g in labels:
    sel = values[groups == g]
    counts.append(sel.size)
    means.append(float(np.mean(sel)) if sel.size else float("nan"))
  means = np.asarray(means)
  finite = np.isfinite(means)
  average = float(np.mean(means[finite])) if finite.any() else float("nan")
  frame_average = float(np.mean(values)) if values.size else float("nan")
  return ErrorTable(title, group_name, tuple(labels), means, np.asarray(counts, np.int64),
                    average, frame_average, reference, reference_name, units)


def _fmt(x) -> str:
  return "" if x is None or not np.isfinite(x) else f"{x:.2f}"


def _rows(table: ErrorTable) -> tuple[list[str], list[list[str]]]:
  header = [table.group_name, f"ours ({table.units})"]
  if table.reference is not None:
    header.append(f"{table.reference_name} ({table.units})")
  header.append("frames")
  rows = []
  for g, v, c in zip(table.groups, table.values, table.counts, strict=True):
    row = [g, _fmt(v)]
    if table.reference is not None:
      row.append(_fmt(table.reference.get(g)))
    rows.append([*row, str(int(c))])
  avg = [AVERAGE, _fmt(table.average)]
  if table.reference is not None:
    avg.append(_fmt(table.reference.get(AVERAGE)))
  rows.append([*avg, str(int(np.sum(table.counts)))])
  return header, rows


def to_markdown(table: ErrorTable) -> str:
  """The table as GitHub Markdown (title, header, one row per group, the average)."""
  header, rows = _rows(table)
  lines = []
  if table.title:
    lines += [f"**{table.title}**", ""]
  lines.append("| " + " | ".join(header) + " |")
  lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  lines += ["", f"Frame-weighted mean: {_fmt(table.frame_average)} {table.units}."]
  return "\n".join(lines) + "\n"


def to_csv(table: ErrorTable) -> str:
  """The table as CSV text (same columns as the Markdown, empty cells for missing values)."""
  header, rows = _rows(table)
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(header)
  writer.writerows(rows)
  return buf.getvalue()


def write_table(table: ErrorTable, path_stem: str) -> tuple[str, str]:
  """Writes a table as Markdown (`to_markdown`) and CSV (`to_csv`) files.

  Args:
    table: the table; its values are in `table.units` (mm for the protocols).
    path_stem: the output path without extension; its folder must exist.
      Existing files are overwritten, each atomically (a crash leaves the
      old file or the new one, never a truncated one).

  Returns:
    (markdown path, csv path): `<path_stem>.md` and `<path_stem>.csv`.
  """
  md, cs = f"{path_stem}.md", f"{path_stem}.csv"
  for path, text in ((md, to_markdown(table)), (cs, to_csv(table))):
    data = text.encode()
    files.write_atomically(path, lambda f, data=data: f.write(data))
  return md, cs
