"""Reading pictures and videos, writing videos (PyAV), for `lift3d predict`.

Pictures are read with Pillow, videos decoded and encoded with PyAV (FFmpeg).
Frames are (H, W, 3) uint8 RGB arrays, rows top to bottom.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class MediaError(ValueError):
  """A picture or video that cannot be used (the message says why, in one line)."""


def is_video(path: str) -> bool:
  """Whether `path` has a video file suffix."""
  return os.path.splitext(path)[1].lower() in VIDEO_SUFFIXES


def expand_inputs(paths: Sequence[str]) -> list[str]:
  """Files to process: each path as given, each folder's pictures and videos (sorted).

  Args:
    paths: files and folders (folders are not searched recursively).

  Returns:
    File paths, in the order given (a folder's files sorted by name).

  Raises:
    MediaError: a path does not exist, or a folder holds no picture or video.
  """
  files = []
  for path in paths:
    if os.path.isdir(path):
      inside = sorted(
          os.path.join(path, name) for name in os.listdir(path)
          if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES
          and os.path.isfile(os.path.join(path, name)))
      if not inside:
        raise MediaError(f"folder {path!r} holds no picture ({', '.join(IMAGE_SUFFIXES)}) "
                         f"or video ({', '.join(VIDEO_SUFFIXES)})")
      files.extend(inside)
    elif os.path.isfile(path):
      files.append(path)
    else:
      raise MediaError(f"input {path!r} does not exist")
  return files


def read_image(path: str) -> np.ndarray:
  """A picture file as (H, W, 3) uint8 RGB.

  Raises:
    MediaError: unreadable, or grey (single-channel) pictures.
  """
  from PIL import Image, UnidentifiedImageError

  try:
    with Image.open(path) as image:
      image.load()
      mode = image.mode
      if mode in ("L", "LA", "I", "I;16", "F", "1"):
        raise MediaError(f"{path}: grey picture (mode {mode}); convert it to RGB")
      array = np.asarray(image.convert("RGB"))
  except (OSError, UnidentifiedImageError, SyntaxError) as e:
    raise MediaError(f"{path}: unreadable picture ({type(e).__name__}: {e})") from None
  if min(array.shape[:2]) < 1:
    raise MediaError(f"{path}: empty picture {array.shape}")
  return array


def read_video(path: str) -> Iterator[np.ndarray]:
  """Yields a video's frames as (H, W, 3) uint8 RGB arrays, in order.

  Raises:
    MediaError: if the file cannot be opened or holds no video stream (a
      decoding error after some frames ends the iteration with that error).
  """
  import av

  try:
    container = av.open(path)
  except (av.FFmpegError, OSError) as e:
    raise MediaError(f"{path}: unreadable video ({type(e).__name__}: {e})") from None
  with container:
    if not container.streams.video:
      raise MediaError(f"{path}: no video stream")
    stream = container.streams.video[0]
    try:
      for frame in container.decode(stream):
        yield frame.to_ndarray(format="rgb24")
    except av.FFmpegError as e:
      raise MediaError(f"{path}: video decoding failed ({type(e).__name__}: {e})") from None


def video_rate(path: str) -> float:
  """The frame rate of a video file (frames/s; 25 when the file does not say)."""
  import av

  try:
    with av.open(path) as container:
      rate = container.streams.video[0].average_rate
  except (av.FFmpegError, OSError, IndexError):
    return 25.0
  return float(rate) if rate else 25.0


class VideoWriter:
  """Writes RGB frames to a video file (H.264 in MP4 where available) with PyAV.

  Frames must all have the size of the first; odd sizes are padded by one
  row/column (yuv420p needs even sizes). Use as a context manager.
  """

  def __init__(self, path: str, fps: float = 25.0):
    self.path, self.fps = path, fps
    self._container = self._stream = None
    self._size = None

  def __enter__(self) -> VideoWriter:
    return self

  def write(self, frame: np.ndarray) -> None:
    """Appends one (H, W, 3) uint8 frame."""
    import fractions

    import av

    frame = np.asarray(frame, np.uint8)[..., :3]
    if self._container is None:
      height, width = frame.shape[0] + frame.shape[0] % 2, frame.shape[1] + frame.shape[1] % 2
      self._size = (height, width)
      self._container = av.open(self.path, mode="w")
      codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
      rate = fractions.Fraction(self.fps).limit_denominator(1001)
      self._stream = self._container.add_stream(codec, rate=rate)
      self._stream.width, self._stream.height = width, height
      self._stream.pix_fmt = "yuv420p"
    height, width = self._size
    if frame.shape[0] > height or frame.shape[1] > width:
      raise ValueError(f"frame {frame.shape} is larger than the video's first frame {self._size}")
    padded = np.zeros((height, width, 3), np.uint8)
    padded[: frame.shape[0], : frame.shape[1]] = frame
    for packet in self._stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
      self._container.mux(packet)

  def close(self) -> None:
    """Flushes the encoder and closes the file (no file if nothing was written)."""
    if self._container is not None:
      for packet in self._stream.encode():
        self._container.mux(packet)
      self._container.close()
      self._container = None

  def __exit__(self, *exc) -> None:
    self.close()
