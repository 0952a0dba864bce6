"""The evaluation protocols of Human3.6M (docs/method.md §7) as data.

A `Protocol` says which frames are tested and how they are scored:

* #1: test S9, S11; 50 fps subsampled to 10 fps (every 5th frame); all four
  cameras, all trials; MPJPE over the 17 joints after root (Hip) alignment.
* #2: test S11; every 64th frame; all cameras, all trials; PA-MPJPE (per-frame
  similarity Procrustes, no reflection) over 14 joints (17 minus Hip, Spine,
  Neck/Nose).
* #3: test S9, S11; the frontal camera only (`cameras.FRONTAL_CAMERA`,
  60457274: "cam 3" counting from 0, the camera of Bogo et al.'s protocol);
  trial 1 only; every frame; PA-MPJPE over the same 14 joints.

All three fit the pose model on the 3D poses of S1, S5, S6, S7, S8 (the paper
uses Protocol #1's training set everywhere, even for #2).
"""

from __future__ import annotations

import dataclasses

from lift3d.data.h36m.cameras import CAMERA_IDS, FRONTAL_CAMERA
from lift3d.skeleton import EVAL14_INDICES

TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")


@dataclasses.dataclass(frozen=True)
class Protocol:
  """One evaluation protocol.

  Attributes:
    name: "protocol1", ...
    test_subjects: subjects evaluated.
    cameras: camera ids evaluated.
    subactions: trials evaluated (1, 2).
    frame_step: keep frames whose index is a multiple of this.
    metric: "mpjpe" (root-aligned) or "pa_mpjpe".
    joints: indices of H36M17 scored.
    paper_mm: the paper's average error (mixture model), mm.
    train_subjects: subjects whose 3D poses fit the pose model.
  """

  name: str
  test_subjects: tuple[str, ...]
  cameras: tuple[str, ...]
  subactions: tuple[int, ...]
  frame_step: int
  metric: str
  joints: tuple[int, ...]
  paper_mm: float
  train_subjects: tuple[str, ...] = TRAIN_SUBJECTS

  def keeps(self, subject: str, camera: str, subaction: int, frame: int) -> bool:
    """Whether a test frame belongs to the protocol."""
    return (subject in self.test_subjects and camera in self.cameras
            and subaction in self.subactions and frame % self.frame_step == 0)


_ALL17 = tuple(range(17))

PROTOCOLS: dict[str, Protocol] = {
    "protocol1": Protocol("protocol1", ("S9", "S11"), CAMERA_IDS, (1, 2), 5, "mpjpe", _ALL17, 88.39),
    "protocol2": Protocol("protocol2", ("S11",), CAMERA_IDS, (1, 2), 64, "pa_mpjpe", EVAL14_INDICES, 70.7),
    "protocol3": Protocol("protocol3", ("S9", "S11"), (FRONTAL_CAMERA,), (1,), 1, "pa_mpjpe", EVAL14_INDICES, 79.6),
}

# The paper's other published Human3.6M figures (docs/method.md §7).
PAPER_PROTOCOL1_SINGLE_PPCA_MM = 92.96
PAPER_2D_ERROR_PX = 9.47
PAPER_CPM_2D_ERROR_PX = 10.04


def get_protocol(name: str) -> Protocol:
  """The protocol called `name` (ValueError listing the known ones)."""
  if name not in PROTOCOLS:
    raise ValueError(f"unknown protocol {name!r}; expected one of {sorted(PROTOCOLS)}")
  return PROTOCOLS[name]
