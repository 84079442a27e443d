"""Precision/recall of free-text PHI detection on the labelled set.

    .venv/bin/python bench/freetext_eval.py [--set tests/data/deid/freetext_labelled.jsonl]

Each line of the set is {"text": ..., "header": {...}} where PHI spans are
marked ``[[span|LABEL]]`` and ``header`` holds the instance's own identifying
values (as the engine would take them from the DICOM header). Reports, with
and without spaCy NER:

- span recall: gold spans at least half covered by detections;
- span precision: detected spans that overlap a gold span;
- character precision/recall over non-space characters;
- clean strings left untouched (strings with no PHI at all).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from trialpacs.deid.freetext import PhiDetector, ner_available, terms_from_values  # noqa: E402

HEADER_LABELS = {
    "PatientName": "NAME",
    "ReferringPhysicianName": "NAME",
    "PatientID": "ID",
    "AccessionNumber": "ID",
    "StudyID": "ID",
    "PatientBirthDate": "DATE",
    "StudyDate": "DATE",
    "InstitutionName": "INSTITUTION",
    "StationName": "INSTITUTION",
}
_MARK = re.compile(r"\[\[(.+?)\|([A-Z]+)\]\]")


@dataclass
class Example:
    text: str
    gold: list[tuple[int, int, str]]
    header: dict[str, str]


def parse_marked(marked: str) -> tuple[str, list[tuple[int, int, str]]]:
    """Strip ``[[span|LABEL]]`` marks, returning the text and gold spans."""
    out, gold, pos = [], [], 0
    length = 0
    for m in _MARK.finditer(marked):
        before = marked[pos : m.start()]
        out.append(before)
        length += len(before)
        gold.append((length, length + len(m.group(1)), m.group(2)))
        out.append(m.group(1))
        length += len(m.group(1))
        pos = m.end()
    out.append(marked[pos:])
    return "".join(out), gold


def load(path: Path) -> list[Example]:
    examples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        text, gold = parse_marked(row["text"])
        examples.append(Example(text, gold, row.get("header", {})))
    return examples


def evaluate(examples: list[Example], use_ner: bool) -> dict[str, float]:
    tp_spans = gold_total = found_gold = pred_total = 0
    tp_chars = pred_chars = gold_chars = 0
    clean_total = clean_ok = 0
    t = time.perf_counter()
    for ex in examples:
        terms = terms_from_values(
            (HEADER_LABELS[k], v) for k, v in ex.header.items() if k in HEADER_LABELS
        )
        spans = PhiDetector(terms, use_ner=use_ner).find(ex.text)
        gold_mask = [False] * len(ex.text)
        for s, e, _ in ex.gold:
            for i in range(s, e):
                gold_mask[i] = True
        pred_mask = [False] * len(ex.text)
        for sp in spans:
            for i in range(sp.start, sp.end):
                pred_mask[i] = True
        for i, ch in enumerate(ex.text):
            if ch.isspace():
                continue
            gold_chars += gold_mask[i]
            pred_chars += pred_mask[i]
            tp_chars += gold_mask[i] and pred_mask[i]
        for s, e, _ in ex.gold:
            gold_total += 1
            covered = sum(pred_mask[i] for i in range(s, e))
            found_gold += covered * 2 >= (e - s)
        for sp in spans:
            pred_total += 1
            tp_spans += any(gold_mask[i] for i in range(sp.start, sp.end))
        if not ex.gold:
            clean_total += 1
            clean_ok += not spans
    elapsed = time.perf_counter() - t
    return {
        "span_recall": found_gold / max(gold_total, 1),
        "span_precision": tp_spans / max(pred_total, 1),
        "char_recall": tp_chars / max(gold_chars, 1),
        "char_precision": tp_chars / max(pred_chars, 1),
        "clean_untouched": clean_ok / max(clean_total, 1),
        "gold_spans": gold_total,
        "strings": len(examples),
        "clean_strings": clean_total,
        "ms_per_string": 1000 * elapsed / max(len(examples), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--set", type=Path, default=REPO / "tests" / "data" / "deid" / "freetext_labelled.jsonl"
    )
    ap.add_argument("--show-errors", action="store_true", help="print misses and false hits")
    args = ap.parse_args()
    examples = load(args.set)
    modes = [("rules + header", False)]
    if ner_available():
        modes.append(("rules + header + spaCy NER", True))
    else:
        print("spaCy model not installed: NER mode skipped (pip install 'trialpacs[nlp]')")
    print(f"{len(examples)} strings, {sum(len(e.gold) for e in examples)} PHI spans\n")
    print(
        f"{'mode':<28} {'span P':>7} {'span R':>7} {'char P':>7} {'char R':>7}"
        f" {'clean':>6} {'ms':>6}"
    )
    for name, ner in modes:
        r = evaluate(examples, ner)
        print(
            f"{name:<28} {r['span_precision']:>7.3f} {r['span_recall']:>7.3f} "
            f"{r['char_precision']:>7.3f} {r['char_recall']:>7.3f} "
            f"{r['clean_untouched']:>6.3f} {r['ms_per_string']:>6.2f}"
        )
    if args.show_errors:
        ner = ner_available()
        for ex in examples:
            terms = terms_from_values(
                (HEADER_LABELS[k], v) for k, v in ex.header.items() if k in HEADER_LABELS
            )
            found = [(s.start, s.end) for s in PhiDetector(terms, use_ner=ner).find(ex.text)]
            gold = [(s, e) for s, e, _ in ex.gold]
            if found != gold:
                print(f"  {ex.text!r}\n    gold  {[ex.text[s:e] for s, e in gold]}")
                print(f"    found {[ex.text[s:e] for s, e in found]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
