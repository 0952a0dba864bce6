"""The one-line messages of the errors a user can fix (missing data, bad paths, bad config).

Kept apart from `experiments.main`, which defines absl flags on import.
"""

from __future__ import annotations


def user_error_line(error: Exception) -> str | None:
  """One line for the errors a user can fix (missing data, bad paths); None for bugs.

  Args:
    error: the exception a job raised.

  Returns:
    The message on one line, or None for errors that are bugs (a traceback then).
  """
  from lift3d.data.h36m.sources import ManualDirError

  if isinstance(error, ManualDirError) and str(error).startswith("Human3.6M was not found"):
    # The pose data of the Human3.6M jobs: say what to put where. Other
    # datasets' (and the image layout's) errors name their files themselves.
    first = str(error).splitlines()[0].rstrip(".")
    return (f"{first}: put data_3d_h36m.npz (and optionally the 2D .npz files) or the "
            "original release's <S>/MyPoseFeatures/D3_Positions_mono/*.cdf there and pass "
            "its folder as --config.data_dir (README: Human3.6M)")
  if isinstance(error, (FileNotFoundError, NotADirectoryError, IsADirectoryError,
                        PermissionError, ValueError)):  # jobs check their config with ValueError
    return " ".join(str(error).split())
  return None
