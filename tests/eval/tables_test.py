"""Tests of lift3d.eval.tables."""

import csv
import io
import os
import tempfile

import numpy as np
import pytest

from lift3d.eval import tables


def test_group_means_average_and_order():
  values = [1.0, 3.0, 10.0, 20.0, 30.0]
  groups = ["Walking", "Walking", "Eating", "Eating", "Eating"]
  t = tables.group_table(values, groups, order=tables.H36M_ACTIONS,
                         reference={"Walking": 71.36, "Average": 88.39})
  assert t.groups[:15] == tables.H36M_ACTIONS
  d = t.as_dict()
  assert d["Walking"] == 2.0
  assert d["Eating"] == 20.0
  assert np.isnan(d["Directions"])
  # Mean of group means (each action weighs the same), not of frames.
  assert t.average == 11.0
  assert t.frame_average == 12.8
  assert int(t.counts.sum()) == 5


def test_unlisted_groups_are_appended_sorted():
  t = tables.group_table([1, 2, 3], ["S11", "S9", "S11"], group_name="subject", order=["S9"])
  assert t.groups == ("S9", "S11")
  np.testing.assert_allclose(t.values, [2.0, 2.0])


def test_markdown_and_csv():
  t = tables.group_table([1.0, 2.0, 4.0], ["A", "B", "B"], title="Protocol #1",
                         reference={"A": 5.0, "Average": 6.0})
  md = tables.to_markdown(t)
  assert "**Protocol #1**" in md
  assert "| A | 1.00 | 5.00 | 1 |" in md
  assert "| B | 3.00 |  | 2 |" in md
  assert "| Average | 2.00 | 6.00 | 3 |" in md
  rows = list(csv.reader(io.StringIO(tables.to_csv(t))))
  assert rows[0] == ["action", "ours (mm)", "paper (mm)", "frames"]
  assert rows[-1] == ["Average", "2.00", "6.00", "3"]
  with tempfile.TemporaryDirectory() as d:
    md_path, csv_path = tables.write_table(t, os.path.join(d, "p1"))
    with open(md_path) as f:
      assert f.read() == md
    with open(csv_path) as f:
      assert f.read() == tables.to_csv(t)
    assert sorted(os.listdir(d)) == ["p1.csv", "p1.md"]  # no temporary file left


def test_length_mismatch():
  with pytest.raises(ValueError, match="same length"):
    tables.group_table([1.0, 2.0], ["A"])


