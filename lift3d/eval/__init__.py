"""Evaluation: pose-error metrics and per-action/per-subject tables (docs/method.md §7)."""

from lift3d.eval.metrics import (
    joint_errors,
    mpjpe,
    n_mpjpe,
    pa_mpjpe,
    pck3d,
    pck3d_auc,
    pixel_error,
    procrustes_align,
)
from lift3d.eval.tables import (
    H36M_ACTIONS,
    ErrorTable,
    group_table,
    to_csv,
    to_markdown,
    write_table,
)

__all__ = [
    "H36M_ACTIONS",
    "ErrorTable",
    "group_table",
    "joint_errors",
    "mpjpe",
    "n_mpjpe",
    "pa_mpjpe",
    "pck3d",
    "pck3d_auc",
    "pixel_error",
    "procrustes_align",
    "to_csv",
    "to_markdown",
    "write_table",
]
