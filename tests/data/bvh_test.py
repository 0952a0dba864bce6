"""Tests of lift3d.data.bvh on small BVH files written here, with hand-computed answers."""

import numpy as np
import pytest

from lift3d.data import bvh as bvh_lib
from lift3d.skeleton import H36M17

# A root with a chest (and its end site) and an arm whose Euler order differs.
SMALL = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
  JOINT Arm
  {
    OFFSET 2 0 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    End Site { OFFSET 3 0 0 }
  }
}
MOTION
Frames: 4
Frame Time: 0.04
1 2 3  0 0 0   0 0 0   0 0 0
0 0 0  90 0 0  0 0 0   0 0 0
0 0 0  0 0 0   0 90 0  0 90 0
0 0 0  90 90 0 0 0 0   0 0 0
"""

# World positions (Hips, Chest, Chest_end, Arm, Arm_end) per frame, by hand.
# Rz(90): x -> y, y -> -x.  Rx(90): y -> z.  Ry(90): x -> -z.
SMALL_TRUTH = np.array([
    # frame 0: translated by (1, 2, 3).
    [(1, 2, 3), (1, 12, 3), (1, 17, 3), (3, 2, 3), (6, 2, 3)],
    # frame 1: root turned 90° about z.
    [(0, 0, 0), (-10, 0, 0), (-15, 0, 0), (0, 2, 0), (0, 5, 0)],
    # frame 2: chest turned 90° about x, arm 90° about y.
    [(0, 0, 0), (0, 10, 0), (0, 10, 5), (2, 0, 0), (2, 0, -3)],
    # frame 3: root Z then X (R = Rz @ Rx): y -> z (Rx), z stays (Rz); x -> y.
    [(0, 0, 0), (0, 0, 10), (0, 0, 15), (0, 2, 0), (0, 5, 0)],
], np.float64)


def test_parse_small():
  parsed = bvh_lib.parse_bvh(SMALL)
  assert parsed.names == ("Hips", "Chest", "Chest_end", "Arm", "Arm_end")
  assert parsed.parents == (-1, 0, 1, 0, 3)
  np.testing.assert_array_equal(parsed.offsets[2], (0, 5, 0))
  np.testing.assert_array_equal(parsed.offsets[4], (3, 0, 0))
  assert parsed.channels[0][:3] == ("Xposition", "Yposition", "Zposition")
  assert parsed.channels[3] == ("Zrotation", "Yrotation", "Xrotation")
  assert parsed.channels[2] == ()
  assert parsed.frame_time == 0.04
  assert parsed.motion.shape == (4, 12)


def test_forward_kinematics_by_hand():
  positions = bvh_lib.forward_kinematics(bvh_lib.parse_bvh(SMALL))
  np.testing.assert_allclose(positions, SMALL_TRUTH, atol=1e-9)


def test_euler_matrix_order():
  # R = Rz(a) @ Rx(b) for order "ZX"; compare with explicit matrices.
  a, b = 30.0, -50.0
  ca, sa, cb, sb = np.cos(np.radians(a)), np.sin(np.radians(a)), np.cos(np.radians(b)), np.sin(np.radians(b))
  rz = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
  rx = np.array([[1, 0, 0], [0, cb, -sb], [0, sb, cb]])
  np.testing.assert_allclose(bvh_lib.euler_matrix([a, b], "ZX"), rz @ rx, atol=1e-12)
  np.testing.assert_allclose(bvh_lib.euler_matrix([b, a], "XZ"), rx @ rz, atol=1e-12)
  batch = bvh_lib.euler_matrix(np.array([[a, b], [0.0, 0.0]]), "ZX")
  np.testing.assert_allclose(batch[1], np.eye(3), atol=1e-12)


# A CMU-named skeleton: (name, parent, offset) in units of 1 cm, T-pose, y up,
# facing +z (so the body's right is -x).
CMU = [
    ("Hips", None, (0, 0, 0)),
    ("LHipJoint", "Hips", (0, 0, 0)),
    ("LeftUpLeg", "LHipJoint", (10, -5, 0)),
    ("LeftLeg", "LeftUpLeg", (0, -40, 0)),
    ("LeftFoot", "LeftLeg", (0, -40, 0)),
    ("RHipJoint", "Hips", (0, 0, 0)),
    ("RightUpLeg", "RHipJoint", (-10, -5, 0)),
    ("RightLeg", "RightUpLeg", (0, -40, 0)),
    ("RightFoot", "RightLeg", (0, -40, 0)),
    ("LowerBack", "Hips", (0, 0, 0)),
    ("Spine", "LowerBack", (0, 20, 0)),
    ("Spine1", "Spine", (0, 20, 0)),
    ("Neck", "Spine1", (0, 10, 0)),
    ("Neck1", "Neck", (0, 5, 0)),
    ("Head", "Neck1", (0, 5, 0)),
    ("LeftShoulder", "Spine1", (5, 8, 0)),
    ("LeftArm", "LeftShoulder", (12, 0, 0)),
    ("LeftForeArm", "LeftArm", (28, 0, 0)),
    ("LeftHand", "LeftForeArm", (25, 0, 0)),
    ("RightShoulder", "Spine1", (-5, 8, 0)),
    ("RightArm", "RightShoulder", (-12, 0, 0)),
    ("RightForeArm", "RightArm", (-28, 0, 0)),
    ("RightHand", "RightForeArm", (-25, 0, 0)),
]
HEAD_TOP = (0, 20, 0)  # End Site of Head


def _write_cmu(path, root_motion, prefix="", up="y"):
  """Writes the CMU-named skeleton; root_motion (F, 6): position then Z X Y rotation.

  Non-root joints get zero rotations. up="z" swaps the offsets to a z-up file
  via (x, y, z) -> (x, -z, y), the inverse of the loader's z-up rotation.
  """
  def off(o):
    x, y, z = o
    return (x, -z, y) if up == "z" else (x, y, z)

  children = {}
  for name, parent, _ in CMU:
    children.setdefault(parent, []).append(name)
  offsets = {name: o for name, _, o in CMU}
  lines = ["HIERARCHY"]

  def write(name, depth):
    pad = "  " * depth
    kind = "ROOT" if depth == 0 else "JOINT"
    lines.append(f"{pad}{kind} {prefix}{name}")
    lines.append(pad + "{")
    lines.append(f"{pad}  OFFSET {' '.join(map(str, off(offsets[name])))}")
    if depth == 0:
      lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
    else:
      lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
    for child in children.get(name, []):
      write(child, depth + 1)
    if name == "Head":
      lines.extend([f"{pad}  End Site", pad + "  {",
                    f"{pad}    OFFSET {' '.join(map(str, off(HEAD_TOP)))}", pad + "  }"])
    lines.append(pad + "}")

  write("Hips", 0)
  root_motion = np.asarray(root_motion, np.float64)
  lines += ["MOTION", f"Frames: {len(root_motion)}", "Frame Time: 0.0083333"]
  for frame in root_motion:
    lines.append(" ".join(map(str, list(frame) + [0.0] * 3 * (len(CMU) - 1))))
  path.write_text("\n".join(lines) + "\n")
  return path


def _tpose_truth():
  """(17, 3) H36M17 T-pose of the CMU skeleton in cm, from the offsets by hand."""
  world = {}
  for name, parent, o in CMU:
    world[name] = np.asarray(o, np.float64) + (world[parent] if parent else 0.0)
  head_top = world["Head"] + HEAD_TOP
  points = {
      "Hip": world["Hips"], "RHip": world["RightUpLeg"], "RKnee": world["RightLeg"],
      "RFoot": world["RightFoot"], "LHip": world["LeftUpLeg"], "LKnee": world["LeftLeg"],
      "LFoot": world["LeftFoot"], "Spine": (world["Hips"] + world["Neck"]) / 2,
      "Thorax": world["Neck"], "Neck/Nose": (world["Head"] + head_top) / 2, "Head": head_top,
      "LShoulder": world["LeftArm"], "LElbow": world["LeftForeArm"], "LWrist": world["LeftHand"],
      "RShoulder": world["RightArm"], "RElbow": world["RightForeArm"], "RWrist": world["RightHand"],
  }
  return np.stack([points[n] for n in H36M17.names])


def test_load_cmu_bvh(tmp_path):
  motion = [(0, 90, 0, 0, 0, 0), (5, 90, -3, 0, 0, 90)]  # second frame: turned 90° about y
  path = _write_cmu(tmp_path / "walk.bvh", motion)
  corpus = bvh_lib.load_bvh(path, units=0.01)
  assert corpus.clip_names == ("walk",)
  assert corpus.poses.shape == (2, 17, 3) and corpus.poses.dtype == np.float32
  assert corpus.frame_rate == pytest.approx(120.0, rel=1e-4)
  truth = _tpose_truth()
  np.testing.assert_allclose(corpus.poses[0], (truth + np.array([0, 90, 0])) / 100, atol=1e-6)
  # Ry(90): (x, y, z) -> (z, y, -x).
  turned = np.stack([truth[:, 2], truth[:, 1], -truth[:, 0]], -1) + np.array([5, 90, -3])
  np.testing.assert_allclose(corpus.poses[1], turned / 100, atol=1e-6)
  # Metres: pelvis 0.9 m up, feet on the floor (0.05 m), head top above.
  assert corpus.poses[0, H36M17.index("RFoot"), 1] == pytest.approx(0.05)
  assert corpus.poses[0, H36M17.index("Head"), 1] == pytest.approx(0.9 + 0.80)


def test_load_z_up_and_prefixed_names(tmp_path):
  # A z-up file with Mixamo-style prefixes gives the same y-up poses.
  y_up = _write_cmu(tmp_path / "a.bvh", [(1, 90, 2, 0, 0, 0)])
  # In the z-up file the root moves to (1, -2, 90) (same rule as the offsets).
  z_up = _write_cmu(tmp_path / "b.bvh", [(1, -2, 90, 0, 0, 0)], prefix="mixamorig:", up="z")
  corpus = bvh_lib.load_bvh([y_up, z_up], units=0.01, up_axis="z", clip_names=["ignored", "z"])
  reference = bvh_lib.load_bvh(y_up, units=0.01)
  np.testing.assert_allclose(corpus.clip_poses("z"), reference.poses, atol=1e-6)
  assert corpus.clip_names == ("ignored", "z")


def test_custom_joint_map(tmp_path):
  path = _write_cmu(tmp_path / "a.bvh", [(0, 0, 0, 0, 0, 0)])
  parsed = bvh_lib.read_bvh(path)
  positions = bvh_lib.forward_kinematics(parsed)
  joint_map = dict(bvh_lib.CMU_TO_H36M17, Spine=("Spine1",), Thorax=(("LeftArm", "RightArm"),))
  poses = bvh_lib.to_h36m17(parsed.names, positions, joint_map)
  spine1 = positions[0, parsed.names.index("Spine1")]
  np.testing.assert_allclose(poses[0, H36M17.index("Spine")], spine1)
  np.testing.assert_allclose(poses[0, H36M17.index("Thorax")], (0, 48, 0))
  with pytest.raises(ValueError, match="lacks H36M17 joint 'RHip'"):
    bvh_lib.to_h36m17(parsed.names, positions, {"Hip": ("Hips",)})


def test_missing_joints_named(tmp_path):
  parsed = bvh_lib.parse_bvh(SMALL)
  with pytest.raises(ValueError, match=r"BVH joints missing for.*RHip"):
    bvh_lib.to_h36m17(parsed.names, bvh_lib.forward_kinematics(parsed))


@pytest.mark.parametrize("broken, message", [
    (SMALL.replace("HIERARCHY", "HIER"), "HIERARCHY"),
    (SMALL.replace("CHANNELS 3 Zrotation Xrotation", "CHANNELS 4 Zrotation Xrotation"),
     "CHANNELS count"),
    (SMALL.replace("Zrotation Yrotation Xrotation", "Zrotation Yrotation Wrotation"),
     "unknown channel"),
    (SMALL.replace("0 0 0  0 0 0   0 90 0  0 90 0\n", "0 0 0  0 0 0   0 90 0\n"),
     "expected 4 frames x 12 channels"),
    (SMALL.replace("Frame Time: 0.04", "Frame Time: 0"), "Frame Time must be positive"),
    (SMALL.split("MOTION")[0], "no MOTION"),
    (SMALL.replace("OFFSET 2 0 0", "OFFSET 2 0"), "OFFSET needs 3 numbers"),
    (SMALL.replace("  }\n  JOINT Arm", "  JOINT Arm", 1), "unbalanced braces"),
])
def test_malformed_files(broken, message):
  with pytest.raises(ValueError, match=message):
    bvh_lib.parse_bvh(broken)


def test_load_errors(tmp_path):
  with pytest.raises(ValueError, match="no BVH file"):
    bvh_lib.load_bvh(tmp_path / "missing.bvh")
  path = _write_cmu(tmp_path / "a.bvh", [(0, 0, 0, 0, 0, 0)])
  with pytest.raises(ValueError, match="units"):
    bvh_lib.load_bvh(path, units=0.0)
  with pytest.raises(ValueError, match="up_axis"):
    bvh_lib.load_bvh(path, up_axis="x")
  with pytest.raises(ValueError, match="clip names"):
    bvh_lib.load_bvh(path, clip_names=["a", "b"])
