r"""Writes `keypoints_coco17.json`: COCO keypoint results made from the embedded mocap corpus.

  python docs/examples/make_keypoints_coco17.py   # from the repository root

Eight frames of the held-out walk clip (`humanoid3d_walk`), turned to eight yaws
and projected by weak perspective (1.8 m ≈ 400 px) into a 640×480 image, mapped
to the 17 COCO joints (nose at Neck/Nose; eyes and ears placed so that
`lift3d.skeleton.convert` gives back the corpus's Head). As in real detector
output, two frames have an unlabelled joint (`v = 0` stored at (0, 0)): the
left wrist of frame 3 and the left hip of frame 6 (so the derived Hip and
Spine are hidden too). The file is what the README's `lift3d lift` line lifts.
"""

import json
import os

import numpy as np

from lift3d import camera
from lift3d.data import mocap
from lift3d.skeleton import COCO17_NAMES, H36M17

_HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(_HERE, "keypoints_coco17.json")
_HIDDEN = {3: "left_wrist", 6: "left_hip"}  # frame -> an unlabelled COCO joint


def make_records() -> list[dict]:
  """The COCO keypoint results, a list of {"image_id", "category_id", "keypoints", "score"}."""
  walk = mocap.load_embedded().clip_poses("humanoid3d_walk")  # (F, 17, 3) metres, y up
  frames = walk[np.linspace(0, len(walk) - 1, 8).astype(int)]
  frames = frames - frames[:, :1]  # root at the origin
  yaws = np.linspace(0.0, 2 * np.pi, 8, endpoint=False)
  turned = np.einsum("nab,nlb->nla", np.asarray(camera.yaw_rotation(yaws)), frames)
  pixels = np.asarray(camera.weak_perspective(turned, np.full(8, 220.0),
                                              translation=np.tile([320.0, 250.0], (8, 1))))
  joint = {name: pixels[:, H36M17.index(name)] for name in H36M17.names}
  shoulders = 0.5 * (joint["LShoulder"] + joint["RShoulder"])
  ears = (joint["Head"] + 0.5 * shoulders) / 1.5  # Head = 1.5·ears − 0.5·shoulders
  across = 0.25 * (joint["LShoulder"] - joint["RShoulder"])  # head width, left of centre
  coco = {
      "nose": joint["Neck/Nose"], "left_eye": joint["Neck/Nose"] + 0.3 * across,
      "right_eye": joint["Neck/Nose"] - 0.3 * across, "left_ear": ears + 0.5 * across,
      "right_ear": ears - 0.5 * across,
  }
  for side, prefix in (("left", "L"), ("right", "R")):
    for coco_name, h36m_name in (("shoulder", "Shoulder"), ("elbow", "Elbow"),
                                 ("wrist", "Wrist"), ("hip", "Hip"), ("knee", "Knee"),
                                 ("ankle", "Foot")):
      coco[f"{side}_{coco_name}"] = joint[prefix + h36m_name]
  records = []
  for n in range(len(frames)):
    values = []
    for name in COCO17_NAMES:
      x, y = coco[name][n]
      hidden = _HIDDEN.get(n) == name
      values += [0.0, 0.0, 0] if hidden else [round(float(x), 1), round(float(y), 1), 2]
    records.append({"image_id": n, "category_id": 1, "keypoints": values, "score": 0.95})
  return records


def main() -> None:
  with open(PATH, "w") as f:
    json.dump(make_records(), f, separators=(",", ":"))
    f.write("\n")
  print(f"wrote {PATH}")


if __name__ == "__main__":
  main()
