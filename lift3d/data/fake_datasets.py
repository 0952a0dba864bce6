"""Tiny fake copies of MPII and COCO in their real on-disk formats (tests and smoke runs).

The real datasets cannot be redistributed, so tests and the `:smoke` configs
write these instead: JPEG images of people rendered by
`lift3d.data.synthetic` (so every label is exact up to JPEG noise), and the
annotation files exactly as the releases lay them out:

- MPII: `mpii_human_pose_v1_u12_1.mat` written with `scipy.io.savemat` in the
  `RELEASE` layout (1-based MATLAB pixels, a struct array per image, string
  and empty `is_visible` flags, an `annorect` without `annopoints`, a test
  image) and `images/*.jpg`;
- COCO: `annotations/person_keypoints_{train,val}2017.json` (crowd, empty
  and zero-box annotations beside the normal ones, integer keypoints) and
  `{train,val}2017/*.jpg`.

Each writer returns the planted truth: one `FakePerson` per record the
builder must write, with the labels in lift3d's pixels (0-based, centres at
integers), so tests compare the records with it field by field.

Some images hold two people: two renders side by side.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os

import numpy as np

from lift3d.skeleton import H36M17

_J = {name: i for i, name in enumerate(H36M17.names)}


@dataclasses.dataclass(frozen=True)
class FakePerson:
  """The planted truth of one record.

  Attributes:
    split: "train" or "validation".
    image_name: file name of its image.
    image_id: the image's id in the dataset's numbering.
    keypoints: (L, 2) float32 pixels (0-based), NaN where unlabelled.
    visibility: (L,) float32.
    box: (4,) float32 x, y, w, h as the builder must store it.
    keypoints17: (17, 2) float32, the renderer's H36M17 labels in the image.
  """

  split: str
  image_name: str
  image_id: int
  keypoints: np.ndarray
  visibility: np.ndarray
  box: np.ndarray
  keypoints17: np.ndarray


@functools.lru_cache(maxsize=1)
def _poses() -> np.ndarray:
  from lift3d.data import mocap

  return mocap.load_embedded(sources=("deepmimic",)).poses[::7]


def render_people(seed: int, index: int, num_people: int, height: int,
                  width: int) -> tuple[np.ndarray, list[dict]]:
  """An image of `num_people` rendered people side by side, and their labels.

  Args:
    seed, index: fix the renders (`lift3d.data.synthetic`).
    num_people: 1 or 2 (two renders of width `width // 2` side by side).
    height, width: image size, pixels.

  Returns:
    image: (height, width, 3) uint8.
    labels: per person "keypoints2d" (17, 2) px, "visibility" (17,),
      "in_frame" (17,) bool (of the whole image).
  """
  from lift3d.data import synthetic

  part = width // num_people
  source = synthetic.SyntheticPoseSource(
      _poses(), image_size=(height, part), seed=seed, length=1 << 30, occluder_prob=0.2,
      max_clutter=1, person_size=(0.6, 0.85))
  images, labels = [], []
  for p in range(num_people):
    example = source[index * 2 + p]
    images.append(example["image"])
    kp = example["keypoints2d"] + np.array([p * part, 0.0], np.float32)
    labels.append({"keypoints2d": kp, "visibility": example["visibility"],
                   "in_frame": example["in_frame"]})
  image = np.concatenate(images, axis=1)
  if image.shape[1] < width:
    image = np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)))
  return image, labels


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
  """(H, W, 3) uint8 -> JPEG bytes (PIL)."""
  from PIL import Image

  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def h36m17_to_mpii16(kp: np.ndarray) -> np.ndarray:
  """(17, 2) H36M17 -> (16, 2) MPII16, such that `skeleton.convert` gives back
  every H36M17 joint but Spine (upper neck = 2·Neck/Nose − Head)."""
  names = ("RFoot", "RKnee", "RHip", "LHip", "LKnee", "LFoot", "Hip", "Thorax", None, "Head",
           "RWrist", "RElbow", "RShoulder", "LShoulder", "LElbow", "LWrist")
  out = np.stack([kp[_J[n]] if n else 2 * kp[_J["Neck/Nose"]] - kp[_J["Head"]] for n in names])
  return out.astype(np.float32)


def h36m17_to_coco17(kp: np.ndarray) -> np.ndarray:
  """(17, 2) H36M17 -> (17, 2) COCO17 (ears placed so that the COCO recipe's Head is exact)."""
  j = {n: kp[i] for n, i in _J.items()}
  shoulders = j["LShoulder"] + j["RShoulder"]
  mid_ear = (j["Head"] + 0.25 * shoulders) / 1.5
  side = 0.15 * (j["LShoulder"] - j["RShoulder"])
  ears = (mid_ear + side, mid_ear - side)
  eyes = tuple(0.5 * (j["Neck/Nose"] + e) for e in ears)
  out = [j["Neck/Nose"], eyes[0], eyes[1], ears[0], ears[1], j["LShoulder"], j["RShoulder"],
         j["LElbow"], j["RElbow"], j["LWrist"], j["RWrist"], j["LHip"], j["RHip"], j["LKnee"],
         j["RKnee"], j["LFoot"], j["RFoot"]]
  return np.stack(out).astype(np.float32)


def _struct_array(items: list[dict], fields: tuple[str, ...]) -> np.ndarray:
  """A (1, n) MATLAB struct array (numpy record array of objects) for scipy.io.savemat."""
  out = np.empty((1, len(items)), dtype=[(f, object) for f in fields])
  for i, item in enumerate(items):
    for f in fields:
      out[0, i][f] = item.get(f, np.zeros((0, 0)))
  return out


def _mpii_image_names(num_train: int, seed: int) -> list[str]:
  """Names like the release's ("015601864.jpg"): `num_train` training images, a quarter
  (at least one) of them in the validation split, then one test image."""
  from lift3d.data import mpii

  rng = np.random.default_rng(seed)
  want = {"validation": max(1, num_train // 4)}
  want["train"] = num_train - want["validation"]
  names: list[str] = []
  while len(names) < num_train:
    name = f"{rng.integers(0, 10**9):09d}.jpg"
    split = mpii.split_of(name)
    if name not in names and sum(mpii.split_of(n) == split for n in names) < want[split]:
      names.append(name)
  return [*names, f"{rng.integers(0, 10**9):09d}.jpg"]


def write_mpii(root: str, *, num_images: int = 8, height: int = 96, width: int = 128,
               seed: int = 0) -> list[FakePerson]:
  """Writes a fake MPII release under `root` and returns the records it must give.

  Image k holds two people when k % 3 == 1 (the second with no `annopoints`
  when k % 6 == 4, as some release entries are), one otherwise; one more
  image is a test image (`img_train` 0, no joints).

  Args:
    root: the manual directory to write.
    num_images: training images (at least 4; about a quarter validation).
    height, width: image size, pixels.
    seed: fixes the renders and the names.

  Returns:
    The planted records, in the builder's order within each split.
  """
  import scipy.io

  from lift3d.data import mpii

  os.makedirs(os.path.join(root, mpii.IMAGE_DIR), exist_ok=True)
  if num_images < 4:
    raise ValueError(f"num_images must be >= 4 (both splits need people), got {num_images}")
  # The training images (a quarter of them in the validation split), then
  # the test image.
  names = _mpii_image_names(num_images, seed)
  annolist, img_train, single, truth = [], [], [], []
  for k, name in enumerate(names):
    test_image = k == num_images
    num_people = 2 if k % 3 == 1 else 1
    image, labels = render_people(seed, k, num_people, height, width)
    with open(os.path.join(root, mpii.IMAGE_DIR, name), "wb") as f:
      f.write(encode_jpeg(image))
    rects = []
    for p, label in enumerate(labels):
      kp17 = label["keypoints2d"]
      kp = h36m17_to_mpii16(kp17)
      vis17 = label["visibility"]
      lo, hi = kp.min(0), kp.max(0)
      centre = (lo + hi) / 2
      scale = float(hi[1] - lo[1]) / 200.0 * 1.1
      rect = {"scale": scale, "objpos": {"x": centre[0] + 1.0, "y": centre[1] + 1.0}}
      head = np.array([*kp[9] - 4.0, *kp[9] + 4.0]) + 1.0
      rect.update(x1=head[0], y1=head[1], x2=head[2], y2=head[3])
      no_points = test_image or (p == 1 and k % 6 == 4)
      if not no_points:
        vis16 = h36m17_to_mpii16(np.stack([vis17, vis17], -1))[:, 0]  # joint visibility
        vis16[8] = min(vis17[_J["Neck/Nose"]], vis17[_J["Head"]])
        unlabelled = (k + p) % 16  # one joint per person left out, as the release does
        points, stored_vis = [], np.zeros(16, np.float32)
        for joint in range(16):
          if joint == unlabelled:
            continue
          visible = bool(vis16[joint] > 0)
          # The release's flags: numbers, strings, or empty (counted visible).
          flag = (np.zeros((0, 0)) if joint == 9 and visible
                  else str(int(visible)) if joint % 2 else int(visible))
          points.append({"id": joint, "x": float(kp[joint, 0]) + 1.0,
                         "y": float(kp[joint, 1]) + 1.0, "is_visible": flag})
          stored_vis[joint] = float(visible)
        rect["annopoints"] = {"point": _struct_array(points, ("id", "x", "y", "is_visible"))}
        stored = kp.copy()
        stored[unlabelled] = np.nan
        side = 200.0 * scale
        truth.append(FakePerson(
            mpii.split_of(name), name, k, stored, stored_vis,
            np.array([centre[0] - side / 2, centre[1] - side / 2, side, side], np.float32),
            kp17))
      rects.append(rect)
    annolist.append({
        "image": {"name": name},
        "annorect": _struct_array(rects, ("x1", "y1", "x2", "y2", "annopoints", "scale",
                                          "objpos")),
    })
    img_train.append(0 if test_image else 1)
    single.append(np.array([[1.0]]) if num_people == 1 else np.zeros((0, 0)))
  single_cells = np.empty((len(names), 1), dtype=object)
  for i, s in enumerate(single):
    single_cells[i, 0] = s
  release = {
      "annolist": _struct_array(annolist, ("image", "annorect")),
      "img_train": np.asarray(img_train, np.uint8)[None],
      "single_person": single_cells,
      "version": "fake-12",
  }
  scipy.io.savemat(os.path.join(root, mpii.ANNOTATION_FILE), {"RELEASE": release})
  order = {"train": 0, "validation": 1}
  return sorted(truth, key=lambda t: order[t.split])  # stable: release order within a split


def write_coco(root: str, *, num_images: int = 6, height: int = 96, width: int = 128,
               seed: int = 0) -> list[FakePerson]:
  """Writes a fake COCO 2017 keypoints release under `root`; returns the records it must give.

  Per split: `num_images` images with one or two people (integer keypoints,
  v = 0 outside the image, 1 hidden, 2 visible), plus a crowd annotation, an
  annotation without keypoints, one with a zero-width box (all three dropped
  by the builder) and an image without people.

  Args:
    root: the manual directory to write.
    num_images: images per split.
    height, width: image size, pixels.
    seed: fixes the renders.

  Returns:
    The planted records, train first, in annotation order.
  """
  from lift3d.data import coco
  from lift3d.skeleton import COCO17_NAMES

  os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
  truth = []
  annotation_id = 1000
  for s, split in enumerate(coco.SPLITS):
    folder = coco.image_dir(root, split)
    os.makedirs(folder, exist_ok=True)
    images, annotations = [], []
    for k in range(num_images + 1):
      image_id = 100 * (s + 1) + k
      name = f"{image_id:012d}.jpg"
      num_people = 0 if k == num_images else (2 if k % 2 else 1)
      image, labels = render_people(seed + 7 * s, k, max(num_people, 1), height, width)
      with open(os.path.join(folder, name), "wb") as f:
        f.write(encode_jpeg(image))
      images.append({"id": image_id, "file_name": name, "width": width, "height": height})
      for label in labels[:num_people]:
        kp17 = label["keypoints2d"]
        kp = np.rint(h36m17_to_coco17(kp17))
        inside = ((kp[:, 0] >= 0) & (kp[:, 0] <= width - 1) & (kp[:, 1] >= 0)
                  & (kp[:, 1] <= height - 1))
        vis = h36m17_to_coco17(np.stack([label["visibility"]] * 2, -1))[:, 0] > 0.99
        v = np.where(inside, np.where(vis, 2, 1), 0)
        flat = np.stack([np.where(v > 0, kp[:, 0], 0), np.where(v > 0, kp[:, 1], 0), v], -1)
        lo, hi = kp[v > 0].min(0) - 3.0, kp[v > 0].max(0) + 3.0
        box = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
        annotation_id += 1
        annotations.append({
            "id": annotation_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "keypoints": [int(x) for x in flat.ravel()], "num_keypoints": int((v > 0).sum()),
            "bbox": box, "area": box[2] * box[3], "segmentation": [],
        })
        truth.append(FakePerson(
            split, name, image_id, np.where(v[:, None] > 0, kp, np.nan).astype(np.float32),
            (v == 2).astype(np.float32),
            np.array([box[0] - 0.5, box[1] - 0.5, box[2], box[3]], np.float32), kp17))
    first = images[0]["id"]
    dropped = [
        # A crowd region (RLE mask, no keypoints), a person without
        # keypoints, and one with keypoints but an empty box.
        {"iscrowd": 1, "num_keypoints": 0, "keypoints": [0] * 51, "bbox": [1.0, 2.0, 30.0, 20.0],
         "segmentation": {"counts": [5, 10, 5], "size": [height, width]}},
        {"iscrowd": 0, "num_keypoints": 0, "keypoints": [0] * 51, "bbox": [4.0, 4.0, 10.0, 10.0],
         "segmentation": []},
        {"iscrowd": 0, "num_keypoints": 1, "keypoints": [9, 9, 2] + [0] * 48,
         "bbox": [9.0, 9.0, 0.0, 12.0], "segmentation": []},
    ]
    for extra in dropped:
      annotation_id += 1
      annotations.insert(1, {"id": annotation_id, "image_id": first, "category_id": 1,
                             "area": 0.0, **extra})
    data = {
        "info": {"description": "lift3d fake COCO", "year": 2017},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person",
                        "keypoints": list(COCO17_NAMES), "skeleton": []}],
    }
    with open(coco.annotation_path(root, split), "w") as f:
      json.dump(data, f)
  return truth


# Human3.6M with images: the planted frames of S1 (training) and S9, S11 (test).
H36M_SUBJECTS = ("S1", "S9", "S11")
H36M_RAW_ACTIONS = ("Directions", "Directions 1")


@dataclasses.dataclass(frozen=True)
class FakeFrame:
  """The planted truth of one Human3.6M frame seen by one camera.

  Attributes:
    subject, raw_action, camera, frame: where it is (frame: 0-based, 50 fps).
    keypoints: (17, 2) float32 frame pixels (the render's labels).
    pose3d_camera: (17, 3) float32 mm, camera frame (x right, y down, z forward).
    image: (H, W, 3) uint8, the rendered frame.
  """

  subject: str
  raw_action: str
  camera: str
  frame: int
  keypoints: np.ndarray
  pose3d_camera: np.ndarray
  image: np.ndarray


def h36m_frames(*, subjects=H36M_SUBJECTS, raw_actions=H36M_RAW_ACTIONS, num_frames: int = 20,
                size: int = 160, seed: int = 0, frames=None) -> list[FakeFrame]:
  """Rendered Human3.6M-like frames: every (subject, action, camera, frame).

  Args:
    subjects, raw_actions: the sequences.
    num_frames: frames per sequence (50 fps).
    size: frame side, pixels (even, for video).
    seed: fixes the renders.
    frames: render only these frame indices (default all).

  Returns:
    `FakeFrame`s in (subject, action, camera, frame) order.
  """
  from lift3d.data import synthetic
  from lift3d.data.h36m.cameras import CAMERA_IDS

  source = synthetic.SyntheticPoseSource(
      _poses(), image_size=size, seed=seed, length=1 << 30, person_size=(0.45, 0.6),
      occluder_prob=0.1, max_clutter=1)
  wanted = range(num_frames) if frames is None else frames
  out = []
  for subject in subjects:
    for a, raw in enumerate(raw_actions):
      for c, camera in enumerate(CAMERA_IDS):
        for f in wanted:
          index = ((int(subject[1:]) * 8 + a) * 4 + c) * 1000 + f
          example = source[index]
          camera_frame = (example["pose3d"] + example["translation"]) * np.array([1, -1, -1])
          out.append(FakeFrame(subject, raw, camera, f, example["keypoints2d"],
                               (camera_frame * 1000.0).astype(np.float32), example["image"]))
  return out


def _h36m32(points: np.ndarray) -> np.ndarray:
  """(N, 17, D) -> (N, 32, D): the release's 32 joints (the unused ones at the hip)."""
  from lift3d.skeleton import H36M32_TO_17

  out = np.repeat(points[:, :1], 32, axis=1)
  out[:, list(H36M32_TO_17)] = points
  return out


def write_h36m_extracted(root: str, *, sample_rate: int = 5, **kwargs) -> list[FakeFrame]:
  """Writes the extracted layout (images/ + annotation_body3d/fps<50/rate>/) under `root`.

  Args:
    root: the manual directory.
    sample_rate: every n-th frame is extracted (5: the fps10 folder).
    **kwargs: see `h36m_frames` (`num_frames` counts 50 fps frames).

  Returns:
    The planted frames that were written.
  """
  from lift3d.data.h36m.splits import TRAIN_SUBJECTS

  num_frames = kwargs.pop("num_frames", 20)
  frames = h36m_frames(frames=range(0, num_frames, sample_rate), **kwargs)
  folder = os.path.join(root, "annotation_body3d", f"fps{50 // sample_rate}")
  os.makedirs(folder, exist_ok=True)
  rows = {"train": [], "test": []}
  for fr in frames:
    base = f"{fr.subject}_{fr.raw_action.replace(' ', '_')}.{fr.camera}"
    name = f"{fr.subject}/{base}/{base}_{fr.frame + 1:06d}.jpg"
    os.makedirs(os.path.join(root, "images", fr.subject, base), exist_ok=True)
    with open(os.path.join(root, "images", name), "wb") as f:
      f.write(encode_jpeg(fr.image))
    rows["train" if fr.subject in TRAIN_SUBJECTS else "test"].append((name, fr))
  for split, items in rows.items():
    kp = np.stack([fr.keypoints for _, fr in items]) if items else np.zeros((0, 17, 2))
    s3 = np.stack([fr.pose3d_camera for _, fr in items]) / 1000.0 if items else np.zeros((0, 17, 3))
    lo, hi = kp.min(1), kp.max(1)
    ones = np.ones((*kp.shape[:2], 1))
    np.savez(os.path.join(folder, f"h36m_{split}.npz"),
             imgname=np.array([n for n, _ in items]), center=(lo + hi) / 2,
             scale=1.2 * (hi - lo).max(-1) / 200, part=np.concatenate([kp, ones], -1),
             S=np.concatenate([s3, ones], -1))
  return frames


def write_h36m_videos(root: str, **kwargs) -> list[FakeFrame]:
  """Writes the original release's layout under `root`: PyAV-encoded `S*/Videos/*.mp4`
  (H.264) and the CDF poses (`MyPoseFeatures/D3_Positions_mono`, `D2_Positions`).

  Args:
    root: the manual directory.
    **kwargs: see `h36m_frames`.

  Returns:
    The planted frames (every frame of every video).
  """
  import av
  import cdflib

  frames = h36m_frames(**kwargs)
  sequences: dict[tuple, list[FakeFrame]] = {}
  for fr in frames:
    sequences.setdefault((fr.subject, fr.raw_action, fr.camera), []).append(fr)
  for (subject, raw, camera), seq in sequences.items():
    stem = f"{raw}.{camera}"
    for kind, values in (("D3_Positions_mono", [fr.pose3d_camera for fr in seq]),
                         ("D2_Positions", [fr.keypoints for fr in seq])):
      folder = os.path.join(root, subject, "MyPoseFeatures", kind)
      os.makedirs(folder, exist_ok=True)
      data = _h36m32(np.stack(values)).reshape(len(seq), -1)
      writer = cdflib.cdfwrite.CDF(os.path.join(folder, f"{stem}.cdf"),
                                   cdf_spec={"Compressed": False})
      writer.write_var({"Variable": "Pose", "Data_Type": 44, "Num_Elements": 1,
                        "Rec_Vary": True, "Dim_Sizes": list(data.shape)},
                       var_data=data[None].astype(np.float32))  # 44: CDF_FLOAT
      writer.close()
    os.makedirs(os.path.join(root, subject, "Videos"), exist_ok=True)
    with av.open(os.path.join(root, subject, "Videos", f"{stem}.mp4"), "w") as container:
      stream = container.add_stream("libx264", rate=50, options={"crf": "12"})
      stream.height, stream.width = seq[0].image.shape[:2]
      stream.pix_fmt = "yuv420p"
      for fr in seq:
        for packet in stream.encode(av.VideoFrame.from_ndarray(fr.image, format="rgb24")):
          container.mux(packet)
      for packet in stream.encode():
        container.mux(packet)
  return frames
