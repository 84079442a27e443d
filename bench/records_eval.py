"""PHI recall/precision per record format, and video throughput, on the generated labelled set.

    .venv/bin/python bench/records_eval.py [--n 10] [--videos 2] [--sample-every 5] [--ner]

The set comes from ``tests/records/labelled_records.py`` (seeded): per
document, the patient's name, MRN, birth date, address, phone and the
reporting doctor (``phi``) and two clinical sentences (``keep``). Each item
is wrapped as DICOM, de-identified by the trial's engine (``trial`` profile,
NER only with ``--ner``) and read back the way a reviewer gets it: the PDF's text layer plus
OCR of its images, the HL7/FHIR message (and FHIR attachments), OCR of every
frame of the video.

- recall: PHI strings no longer legible / PHI strings;
- precision: PHI strings removed / (PHI strings removed + clinical sentences
  damaged), i.e. how much of what was taken away was PHI, at phrase level;
- w.recall / w.prec: the same at word level over the whole report text
  (multiset of words in vs out; removed words count as PHI first): w.prec
  shows over-redaction of ordinary words ("Hospital", "Address", "seen");
- video: frames per second of de-identification (decode, OCR sampling,
  masking, H.264 encoding), and OCR'd frames.

OCR can misread text that was left in place, which would count as removed:
recall on scanned pages and video is an upper bound of what the OCR reads.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "records"))

import random  # noqa: E402

from evaluate import deidentifier, run  # noqa: E402
from labelled_records import (  # noqa: E402
    fhir_bundle,
    hl7,
    inline_image_pdf,
    person,
    scanned_pdf,
    text_pdf,
    type3_pdf,
    type3_undecodable_pdf,
    video_clip,
)

MAKERS = {
    "text PDF": text_pdf,
    "scanned PDF": scanned_pdf,
    "HL7 v2 ORU": hl7,
    "FHIR R4": fhir_bundle,
    # appended last so the rows above keep their seeded documents
    "inline PDF": inline_image_pdf,
    "Type3 PDF": type3_pdf,
    "Type3 raster": type3_undecodable_pdf,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10, help="documents per format")
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--frames", type=int, default=75, help="frames per video")
    ap.add_argument("--size", default="640x480", help="video frame size")
    ap.add_argument("--sample-every", type=int, default=5, help="video OCR sampling interval")
    ap.add_argument("--ner", action="store_true", help="use spaCy NER (the nlp extra)")
    args = ap.parse_args()
    rng = random.Random(12)
    deid = deidentifier(ner=args.ner)
    deid.record_options = type(deid.record_options)(video_sample_every=args.sample_every)
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])  # phi, left, keep, lost, n
    words: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # phi, removed, other, removed
    seconds: dict[str, float] = defaultdict(float)
    for label, make in MAKERS.items():
        for _ in range(args.n):
            out = run(make(person(rng), rng), deid)
            s = stats[label]
            s[0] += len(out.item.phi)
            s[1] += len(out.left())
            s[2] += len(out.item.keep)
            s[3] += len(out.item.keep) - len(out.kept())
            s[4] += 1
            seconds[label] += out.seconds
            for i, v in enumerate(out.word_counts()):
                words[label][i] += v
    w, h = (int(x) for x in args.size.split("x"))
    frames = 0
    video_seconds = 0.0
    for _ in range(args.videos):
        item = video_clip(person(rng), rng, frames=args.frames, size=(w, h))
        started = time.perf_counter()
        out = run(item, deid, ocr_every=1)
        s = stats["video"]
        s[0] += len(item.phi)
        s[1] += len(out.left())
        s[4] += 1
        frames += out.frames
        video_seconds += out.seconds
        seconds["video"] += out.seconds
        del started
    print(f"NER {'on' if deid.use_ner else 'off'}")
    print(f"{'format':<12} {'docs':>5} {'PHI':>5} {'left':>5} {'recall':>7} {'precision':>9} "
          f"{'w.recall':>8} {'w.prec':>7} {'s/doc':>6}")  # fmt: skip
    for label, (phi, left, _keep, lost, n) in stats.items():
        removed = phi - left
        recall = removed / phi if phi else 1.0
        precision = removed / (removed + lost) if removed + lost else 1.0
        pw, pw_removed, _ow, ow_removed = words[label]
        w_recall = f"{pw_removed / pw:.3f}" if pw else "-"
        w_prec = f"{pw_removed / (pw_removed + ow_removed):.3f}" if pw_removed + ow_removed else "-"
        print(
            f"{label:<12} {n:>5} {phi:>5} {left:>5} {recall:>7.3f} {precision:>9.3f} "
            f"{w_recall:>8} {w_prec:>7} {seconds[label] / max(n, 1):>6.2f}"
        )
    if frames:
        print(
            f"\nvideo {w}x{h}: {frames} frames in {video_seconds:.1f} s = "
            f"{frames / video_seconds:.1f} frames/s de-identified (OCR every "
            f"{args.sample_every} frames + cuts); output checked by OCR of every frame"
        )


if __name__ == "__main__":
    main()
