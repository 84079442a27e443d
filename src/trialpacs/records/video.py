"""Videos: every frame decoded, burned-in text masked, re-encoded without audio or metadata.

PyAV (BSD; its wheels bundle FFmpeg with libx264) decodes and encodes. Text
is found with the OCR of the pixel de-identification:

* **Sampling**: a frame is OCR'd every ``sample_every`` frames, and also
  whenever the picture changed a lot since the last OCR'd frame (a scene
  cut: mean absolute difference of a 1/8 thumbnail above ``cut_threshold``).
* **Tracking of static overlays**: frames are held back until the next OCR'd
  frame; every frame between two OCR'd frames gets the union of both frames'
  boxes, so an overlay (name, date, hospital, running clock) is masked on
  every frame from before it is first seen to after it is last seen,
  including text that changes inside a fixed box. Text that appears and
  disappears between two samples without a scene change is not seen; a
  smaller ``sample_every`` narrows that window (1 = OCR every frame).
* Policy: every detected text box is masked (the trial profile's
  mask-all-text; overlays on endoscopy and ultrasound clips are PHI or
  device labels), padded by ``pad`` pixels, painted black.

The output holds one H.264 video stream (yuv420p, High profile, level 4.1
when the size allows): no audio, no subtitles or data streams, no container
or stream metadata of the input.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from trialpacs.errors import InvalidInput

Box = tuple[int, int, int, int]
DetectFn = Callable[[NDArray[np.uint8]], list[Box]]
MAX_FRAMES = 100_000
MAX_PIXELS = 4096 * 2160
# Elementary stream formats of the DICOM video transfer syntaxes.
DICOM_STREAM_FORMATS = {
    "1.2.840.10008.1.2.4.100": "mpegvideo",
    "1.2.840.10008.1.2.4.100.1": "mpegvideo",
    "1.2.840.10008.1.2.4.101": "mpegvideo",
    "1.2.840.10008.1.2.4.101.1": "mpegvideo",
    "1.2.840.10008.1.2.4.102": "h264",
    "1.2.840.10008.1.2.4.102.1": "h264",
    "1.2.840.10008.1.2.4.103": "h264",
    "1.2.840.10008.1.2.4.103.1": "h264",
    "1.2.840.10008.1.2.4.104": "h264",
    "1.2.840.10008.1.2.4.104.1": "h264",
    "1.2.840.10008.1.2.4.105": "h264",
    "1.2.840.10008.1.2.4.105.1": "h264",
    "1.2.840.10008.1.2.4.106": "h264",
    "1.2.840.10008.1.2.4.106.1": "h264",
    "1.2.840.10008.1.2.4.107": "hevc",
    "1.2.840.10008.1.2.4.108": "hevc",
}
H264_HIGH_41 = "1.2.840.10008.1.2.4.102"


@dataclass
class VideoResult:
    stream: bytes  # H.264 Annex B elementary stream (what DICOM encapsulates)
    width: int
    height: int
    frames: int
    fps: Fraction
    ocr_frames: int
    masked_frames: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _open(data: bytes, fmt: str | None) -> Any:
    try:
        return av.open(io.BytesIO(data), mode="r", format=fmt)
    except Exception as exc:
        raise InvalidInput(f"video: cannot be opened: {exc}") from exc


def probe(data: bytes, fmt: str | None = None) -> tuple[int, int, Fraction]:
    """Width, height and frame rate of the first video stream."""
    with _open(data, fmt) as c:
        if not c.streams.video:
            raise InvalidInput("video: the file has no video stream")
        s = c.streams.video[0]
        rate = s.average_rate or s.guessed_rate or Fraction(25)
        return int(s.codec_context.width), int(s.codec_context.height), Fraction(rate)


def frames(data: bytes, fmt: str | None = None) -> Iterator[NDArray[np.uint8]]:
    """Every frame as RGB, in display order."""
    with _open(data, fmt) as c:
        if not c.streams.video:
            raise InvalidInput("video: the file has no video stream")
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        n = 0
        try:
            for frame in c.decode(stream):
                n += 1
                if n > MAX_FRAMES:
                    raise InvalidInput(f"video: more than {MAX_FRAMES} frames")
                if frame.width * frame.height > MAX_PIXELS:
                    raise InvalidInput(f"video: frames larger than {MAX_PIXELS} pixels")
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise InvalidInput(f"video: cannot be decoded: {exc}") from exc


def _thumb(img: NDArray[np.uint8]) -> NDArray[np.float32]:
    return img[::8, ::8].mean(axis=2).astype(np.float32)


def _mask(img: NDArray[np.uint8], boxes: list[Box], pad: int) -> bool:
    h, w = img.shape[:2]
    hit = False
    for x0, y0, x1, y1 in boxes:
        xa, ya = max(0, x0 - pad), max(0, y0 - pad)
        xb, yb = min(w, x1 + pad), min(h, y1 + pad)
        if xb > xa and yb > ya:
            img[ya:yb, xa:xb] = 0
            hit = True
    return hit


class _Encoder:
    def __init__(self, width: int, height: int, fps: Fraction) -> None:
        self.buf = io.BytesIO()
        self.out = av.open(self.buf, mode="w", format="h264")
        self.width, self.height = width - width % 2, height - height % 2
        rate = fps if fps > 0 else Fraction(25)
        self.stream = self.out.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = self.width, self.height
        self.stream.pix_fmt = "yuv420p"
        level = "4.1" if self.width * self.height <= 1920 * 1088 else "5.1"
        self.stream.options = {"crf": "18", "preset": "veryfast", "profile": "high", "level": level}
        self.n = 0

    def write(self, img: NDArray[np.uint8]) -> None:
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(img[: self.height, : self.width]), format="rgb24"
        )
        frame.pts = self.n
        self.n += 1
        for packet in self.stream.encode(frame):
            self.out.mux(packet)

    def close(self) -> bytes:
        for packet in self.stream.encode():
            self.out.mux(packet)
        self.out.close()
        return self.buf.getvalue()


def clean(
    data: bytes,
    detect: DetectFn,
    *,
    fmt: str | None = None,
    fps: Fraction | None = None,
    sample_every: int = 5,
    cut_threshold: float = 25.0,
    pad: int = 4,
) -> VideoResult:
    """De-identified H.264 stream of the video in ``data`` (container or elementary stream)."""
    if sample_every < 1:
        raise ValueError("sample_every must be at least 1")
    started = time.perf_counter()
    width, height, rate = probe(data, fmt)
    rate = fps or rate
    enc = _Encoder(width, height, rate)
    held: list[NDArray[np.uint8]] = []
    boxes_before: list[Box] = []
    last_thumb: NDArray[np.float32] | None = None
    ocr_frames = masked = total = 0

    def flush(extra: list[Box]) -> None:
        nonlocal masked
        union = boxes_before + extra
        for img in held:
            masked += int(_mask(img, union, pad))
            enc.write(img)
        held.clear()

    for i, img in enumerate(frames(data, fmt)):
        total += 1
        thumb = _thumb(img)
        cut = last_thumb is not None and float(np.abs(thumb - last_thumb).mean()) > cut_threshold
        if i % sample_every == 0 or cut:
            found = detect(img)
            ocr_frames += 1
            last_thumb = thumb
            flush(found)  # frames since the previous OCR: both neighbours' boxes
            boxes_before = found
        held.append(img)
    flush([])
    if total == 0:
        raise InvalidInput("video: no frames could be decoded")
    stream = enc.close()
    return VideoResult(
        stream=stream,
        width=enc.width,
        height=enc.height,
        frames=total,
        fps=rate,
        ocr_frames=ocr_frames,
        masked_frames=masked,
        seconds=time.perf_counter() - started,
    )


def to_mp4(stream: bytes, fps: Fraction, fmt: str = "h264") -> bytes:
    """An MP4 holding the elementary stream as is (no re-encoding), for download."""
    src = _open(stream, fmt)
    buf = io.BytesIO()
    try:
        with av.open(buf, mode="w", format="mp4") as out:
            s_in = src.streams.video[0]
            s_out = out.add_stream_from_template(s_in)
            tb = Fraction(1, 90000)
            s_out.time_base = tb
            step = round(90000 / fps) if fps > 0 else 3600
            n = 0
            for packet in src.demux(s_in):
                if packet.size == 0:
                    continue
                packet.stream = s_out
                packet.time_base = tb
                packet.pts = packet.dts = n * step
                packet.duration = step
                n += 1
                out.mux(packet)
    finally:
        src.close()
    return buf.getvalue()
