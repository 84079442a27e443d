"""HEVC and MPEG-2 video, in an MP4/MOV container or in DICOM, come out as H.264 without the PHI."""

from __future__ import annotations

import io
import random
from dataclasses import replace
from fractions import Fraction

import av
import pytest
from evaluate import deidentifier, run
from labelled_records import person, video_clip
from pydicom import dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import UID

from trialpacs.dicom.parse import parse_part10, write_part10
from trialpacs.records import video
from trialpacs.records.dicomwrap import video_stream
from trialpacs.records.intake import Intake, wrap_record

H264 = "1.2.840.10008.1.2.4.102"
DICOM_TS = {"hevc": "1.2.840.10008.1.2.4.107", "mpeg2video": "1.2.840.10008.1.2.4.101"}


def _transcode(mp4: bytes, codec: str, container: str) -> bytes:
    """The clip re-encoded with ``codec`` (PyAV's bundled FFmpeg: libx265, mpeg2video)."""
    out = io.BytesIO()
    with av.open(io.BytesIO(mp4)) as src, av.open(out, "w", format=container) as dst:
        s = dst.add_stream(codec, rate=Fraction(25))
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        if codec == "mpeg2video":
            s.bit_rate = 4_000_000
        for i, decoded in enumerate(src.decode(video=0)):
            frame = av.VideoFrame.from_ndarray(decoded.to_ndarray(format="rgb24"), format="rgb24")
            frame.pts = i
            for pkt in s.encode(frame):
                dst.mux(pkt)
        for pkt in s.encode():
            dst.mux(pkt)
    return out.getvalue()


def _codec_of(container_bytes: bytes) -> str:
    with av.open(io.BytesIO(container_bytes)) as c:
        return str(c.streams.video[0].codec_context.name)


@pytest.mark.parametrize(("codec", "container"), [("hevc", "mp4"), ("mpeg2video", "mov")])
def test_container_video_in_another_codec_is_published_as_h264(codec: str, container: str) -> None:
    rng = random.Random(61)
    clip = video_clip(person(rng), rng, frames=20)
    item = replace(clip, data=_transcode(clip.data, codec, container))
    assert _codec_of(item.data) == codec
    _, wrapped = wrap_record(item.data, f"clip.{container}", Intake(item.patient))
    ds = parse_part10(wrapped).dataset
    assert str(ds.file_meta.TransferSyntaxUID) == H264
    out = run(item, deidentifier(), ocr_every=1)
    assert out.frames == 20
    assert str(dcmread(io.BytesIO(out.dicom)).file_meta.TransferSyntaxUID) == H264
    assert _codec_of(out.data) == "h264"
    assert set(out.left()) <= set(item.hard), out.text


@pytest.mark.parametrize("codec", ["hevc", "mpeg2video"])
def test_dicom_video_in_hevc_or_mpeg2_is_re_encoded_to_h264(codec: str) -> None:
    rng = random.Random(67)
    clip = video_clip(person(rng), rng, frames=20)
    _, wrapped = wrap_record(clip.data, "clip.mp4", Intake(clip.patient))
    ds = parse_part10(wrapped).dataset
    raw = io.BytesIO()
    fmt = "hevc" if codec == "hevc" else "mpeg2video"
    with (
        av.open(io.BytesIO(_transcode(clip.data, codec, "mp4"))) as src,
        av.open(raw, "w", format=fmt) as dst,
    ):
        s_out = dst.add_stream_from_template(src.streams.video[0])
        for pkt in src.demux(video=0):
            if pkt.size:
                pkt.stream = s_out
                dst.mux(pkt)
    ds.PixelData = encapsulate([raw.getvalue()])
    ds.file_meta.TransferSyntaxUID = UID(DICOM_TS[codec])
    data = write_part10(ds, DICOM_TS[codec])
    item = replace(clip, data=data, name="clip.dcm")
    out = run(item, deidentifier(), ocr_every=1)
    published = dcmread(io.BytesIO(out.dicom))
    assert str(published.file_meta.TransferSyntaxUID) == H264
    assert video.probe(video_stream(published), "h264")[:2] == (320, 240)
    assert _codec_of(out.data) == "h264" and out.frames == 20
    assert set(out.left()) <= set(item.hard), out.text
