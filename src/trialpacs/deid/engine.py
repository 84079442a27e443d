"""The de-identification engine: one dataset in, one de-identified dataset out.

Speed comes from walking pydicom's raw element dict and deciding per tag with
one dict lookup in a map precomputed from the profile; values that are kept or
removed are never decoded. Only elements that change are converted.

Thread safety: a Deidentifier may be shared by threads. Its state is the
profile (immutable), the UID cache (lock-protected), the subject registry
(lock-protected; the vault serialises its own writes) and the pixel cleaner,
which must be thread-safe itself if the Deidentifier is shared.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from pydicom import config
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

import trialpacs
from trialpacs.deid import dates
from trialpacs.deid.freetext import PhiDetector, Term, terms_from_values
from trialpacs.deid.iod import iod_kind
from trialpacs.deid.keys import derive, keyed_hash
from trialpacs.deid.part10 import read_part10
from trialpacs.deid.pixel_hook import (
    NoPixelCleaner,
    PixelCleaner,
    PixelCleanError,
    PixelCleanReport,
)
from trialpacs.deid.profile import Profile
from trialpacs.deid.pseudonyms import (
    MemoryRegistry,
    SubjectRegistry,
    format_subject_id,
    subject_hash,
    subject_identity,
)
from trialpacs.deid.table import BASIC_CODE, TABLE_OPTIONS, Option
from trialpacs.deid.uids import CLASS_UID_TAGS, UidMapper
from trialpacs.deid.writer import encode_part10
from trialpacs.errors import InvalidInput

_DICT_VR: dict[int, str] = {tag: entry[0] for tag, entry in DicomDictionary.items()}
TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
_MISLABELLED_TEXT = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN", "CS"})
# PS3.5 TM (HHMMSS.FFFFFF, each part after HH optional; ACR-NEMA colons), or empty.
_TM = re.compile(r"(?:\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d{1,6})?)?)?)?")
_MAX_LEN = {"SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "CS": 16, "AE": 16, "PN": 64}
_DUMMY: dict[str, Any] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "PN": "ANONYMIZED",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
    "CS": "ANONYMIZED",
    "AE": "ANONYMIZED",
    "UR": "ANONYMIZED",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
    "OB": b"\x00\x00",
    "OW": b"\x00\x00",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "UN": b"\x00\x00",
}
_UNDEFINED_LENGTH = 0xFFFFFFFF
_BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})

# Header values that identify the patient, collected before anything changes
# (for free-text matching, the pixel cleaner and verification).
PHI_SOURCES: tuple[tuple[int, str], ...] = (
    (0x00100010, "NAME"),  # Patient's Name
    (0x00101001, "NAME"),  # Other Patient Names
    (0x00101005, "NAME"),  # Patient's Birth Name
    (0x00101060, "NAME"),  # Patient's Mother's Birth Name
    (0x00080090, "NAME"),  # Referring Physician's Name
    (0x00081050, "NAME"),  # Performing Physician's Name
    (0x00081060, "NAME"),  # Name of Physician(s) Reading Study
    (0x00081070, "NAME"),  # Operators' Name
    (0x00081048, "NAME"),  # Physician(s) of Record
    (0x00321032, "NAME"),  # Requesting Physician
    (0x00102297, "NAME"),  # Responsible Person
    (0x00100020, "ID"),  # Patient ID
    (0x00101000, "ID"),  # Other Patient IDs
    (0x00080050, "ID"),  # Accession Number
    (0x00200010, "ID"),  # Study ID
    (0x00401001, "ID"),  # Requested Procedure ID
    (0x00380010, "ID"),  # Admission ID
    (0x00400253, "ID"),  # Performed Procedure Step ID
    (0x00100030, "DATE"),  # Patient's Birth Date
    (0x00080020, "DATE"),  # Study Date
    (0x00080021, "DATE"),  # Series Date
    (0x00080022, "DATE"),  # Acquisition Date
    (0x00080023, "DATE"),  # Content Date
    (0x00080080, "INSTITUTION"),  # Institution Name
    (0x00080081, "ADDRESS"),  # Institution Address
    (0x00101040, "ADDRESS"),  # Patient's Address
    (0x00081040, "INSTITUTION"),  # Institutional Department Name
    (0x00081010, "INSTITUTION"),  # Station Name
    (0x00102154, "PHONE"),  # Patient's Telephone Numbers
)


@dataclass(frozen=True)
class TrialContext:
    """The trial, site and visit the outputs belong to (Clinical Trial module)."""

    trial_id: str = ""
    site_id: str = ""
    sponsor: str = ""
    protocol_name: str = ""
    site_name: str = ""
    time_point_id: str = ""
    time_point_description: str = ""
    coordinating_center: str = ""

    @property
    def scope(self) -> str:
        return f"{self.trial_id}|{self.site_id}"


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile file from eating the machine."""

    max_elements: int = 2_000_000
    max_items_per_sequence: int = 200_000
    max_depth: int = 16


@dataclass
class DeidResult:
    """The new dataset and what was done to get it."""

    dataset: Dataset
    subject_id: str
    date_shift_days: int | None
    actions: Counter[str] = field(default_factory=Counter)
    changes: list[tuple[str, str]] = field(default_factory=list)
    uids: dict[str, str] = field(default_factory=dict)
    pixel: PixelCleanReport | None = None
    notes: list[str] = field(default_factory=list)


class DeidError(InvalidInput):
    """This instance could not be de-identified; nothing of it may be released."""


@dataclass
class _Run:
    amap: dict[int, str]
    shift: int | None
    term_values: tuple[tuple[str, str], ...]
    result: DeidResult
    codec: str | None = None  # the top level's character set, when a plain codec
    detector: PhiDetector | None = None
    elements: int = 0
    # Kept text elements (dataset, tag, VR, path), checked for identity values
    # once the whole data set has been read; see _residual.
    kept: list[tuple[Dataset, int, str, str]] = field(default_factory=list)
    # Text elements cleaned with the top-level identity only.
    cleaned: list[tuple[Dataset, int, str, str]] = field(default_factory=list)
    # Identity values found inside sequence items (label, text).
    nested: list[tuple[str, str]] = field(default_factory=list)

    @property
    def terms(self) -> list[Term]:
        return _terms(self.term_values)


class Deidentifier:
    """Applies a profile with a site secret; see the module docstring on threads."""

    def __init__(
        self,
        profile: Profile,
        secret: bytes,
        trial: TrialContext | None = None,
        vault: Any | None = None,
        *,
        pixel_cleaner: PixelCleaner | None = None,
        registry: SubjectRegistry | None = None,
        limits: Limits | None = None,
        use_ner: bool | None = None,
    ) -> None:
        if not secret:
            raise ValueError("a non-empty secret is required")
        self.profile = profile
        self.trial = trial or TrialContext()
        self.vault = vault
        self.limits = limits or Limits()
        self._secret = secret
        self._ae_key = derive(secret, "ae")
        self.uids = UidMapper(secret, on_new=vault.record_uid if vault is not None else None)
        self.registry: SubjectRegistry = registry or vault or MemoryRegistry()
        if profile.has(Option.CLEAN_PIXEL_DATA):
            self.pixel_cleaner: PixelCleaner | None = pixel_cleaner or NoPixelCleaner()
        else:
            self.pixel_cleaner = None
        if use_ner is None:
            use_ner = profile.ner != "off"
        if profile.ner == "on":
            from trialpacs.deid.freetext import NER, ner_available

            if not ner_available():
                raise InvalidInput(f"profile {profile.name!r} requires NER: {NER.error}")
        self.use_ner = use_ner
        if use_ner:
            from trialpacs.deid.freetext import NER

            NER.load()  # once, up front: not in the middle of the first file
        self._modified = profile.has(Option.RETAIN_LONG_MODIFIED_DATES)
        self._full = profile.has(Option.RETAIN_LONG_FULL_DATES)
        self._unknown_cache: dict[int, str] = {}
        # Pseudonyms never change once given, so repeat patients skip the registry.
        self._subjects: dict[bytes, str] = {}
        self._safe = profile.has(Option.RETAIN_SAFE_PRIVATE)
        self._codes = self._method_codes()
        self._raw_code_cache: dict[tuple[bool, bool], RawDataElement] = {}

    # ------------------------------------------------------------ entry points

    def deidentify_bytes(self, data: bytes) -> bytes:
        """Part 10 in, Part 10 out (zero preamble, meta rebuilt for the new UIDs)."""
        return self.deidentify_part10(data)[0]

    def deidentify_part10(self, data: bytes) -> tuple[bytes, DeidResult]:
        dataset, arrived_in = read_part10(data)
        result = self.deidentify(dataset, in_place=True, _meta=False, _ts=arrived_in)
        ts = output_transfer_syntax(result.dataset, arrived_in)
        try:
            out = encode_part10(result.dataset, ts)
        except Exception as exc:
            raise DeidError(f"cannot write the de-identified instance: {exc}") from exc
        return out, result

    def deidentify(
        self, ds: Dataset, *, in_place: bool = False, _meta: bool = True, _ts: str = ""
    ) -> DeidResult:
        """De-identify ``ds``; a copy unless ``in_place`` (the fast path for bytes)."""
        if not in_place:
            ds = copy.deepcopy(ds)
        try:
            return self._deidentify(ds, _meta, _ts)
        except (DeidError, PixelCleanError):
            raise
        except InvalidInput as exc:
            raise DeidError(str(exc)) from exc
        except RecursionError as exc:
            raise DeidError("data set is nested too deeply") from exc
        except Exception as exc:
            raise DeidError(f"cannot de-identify: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ core

    def _deidentify(self, ds: Dataset, rebuild_meta: bool, ts: str = "") -> DeidResult:
        p = self.profile
        originals = _phi_values(ds)
        identity = subject_identity(ds)
        digest = subject_hash(self._secret, identity)
        shift = None
        if self._modified:
            shift = dates.subject_shift(self._secret, identity, *p.date_shift_days)
        details = {_SUBJECT_TAGS[tag]: value for tag, _, value in originals if tag in _SUBJECT_TAGS}
        details["shift"] = str(shift) if shift is not None else ""
        trial = self.trial
        subject_id = self._subjects.get(digest)
        if subject_id is None:
            subject_id = self.registry.subject_id(
                trial.scope,
                digest,
                details,
                lambda n: format_subject_id(
                    p.subject_id_format,
                    site=trial.site_id,
                    trial=trial.trial_id,
                    n=n,
                    digest=digest,
                ),
            )
            if len(self._subjects) > 100_000:
                self._subjects.clear()
            self._subjects[digest] = subject_id
        age_over_89 = _over_89(ds)
        result = DeidResult(dataset=ds, subject_id=subject_id, date_shift_days=shift)
        run = _Run(
            amap=p.action_map(iod_kind(ds._dict)),
            shift=shift,
            term_values=tuple((label, value) for _, label, value in originals),
            result=result,
            codec=_codec(ds),
        )
        self._walk(ds, run, 0, "")
        self._residual(run)
        self._finish(ds, run, subject_id, age_over_89, rebuild_meta)
        if self.pixel_cleaner is not None and _has_pixels(ds):
            needs_meta = not isinstance(self.pixel_cleaner, NoPixelCleaner)
            if needs_meta and ts and getattr(ds, "file_meta", None) is None:
                ds.file_meta = FileMetaDataset()  # cleaners read (and may change) the syntax
                ds.file_meta.TransferSyntaxUID = UID(ts)
            phi_terms = [t.text for t in run.terms]
            try:
                report = self.pixel_cleaner.clean(ds, phi_terms)
            except PixelCleanError:
                raise
            except Exception as exc:  # the cleaner's contract is fail-closed: so are we
                raise PixelCleanError(f"{type(exc).__name__}: {exc}") from exc
            result.pixel = report
            if report.modified:
                ds.BurnedInAnnotation = "NO"
            if report.scanned or report.modified:
                self._add_code(ds, Option.CLEAN_PIXEL_DATA)
            result.notes.extend(pixel_notes(report))
        return result

    def _walk(self, ds: Dataset, run: _Run, depth: int, path: str) -> None:
        if depth > self.limits.max_depth:
            raise DeidError(f"sequences nested deeper than {self.limits.max_depth} levels")
        d = _raw(ds)
        amap = run.amap
        actions = run.result.actions
        has_private = False
        tags = list(d)
        run.elements += len(tags)
        if run.elements > self.limits.max_elements:
            raise DeidError(f"more than {self.limits.max_elements} elements: refusing")
        for tag in tags:  # pydicom's BaseTag: exact lookups in d, plain ints elsewhere
            if tag & 0x10000:
                has_private = True
                continue
            t = int(tag)  # BaseTag.__eq__ is Python code: int keys hash and compare in C
            action = amap.get(t)
            if action is None:
                action = self._unknown_action(t)
            elem = d[tag]
            if elem.VR == "UN" and isinstance(elem, RawDataElement):
                elem = _known_vr(d, tag, elem)
            if depth and t in _IDENTITY_TAGS:
                run.nested.extend((_IDENTITY_TAGS[t], v) for v in _loose_text(elem.value))
            vr = _DICT_VR.get(t) or elem.VR or "UN"
            if elem.VR == "SQ" or (vr == "SQ" and elem.VR in (None, "UN")):
                vr = "SQ"
                if action in ("X", "Z"):
                    # Removed unread (OtherPatientIDsSequence, unknown tags):
                    # the identity its items declare is still the patient's.
                    self._item_identity(ds, tag, run, depth)
            elif action == "K" and elem.VR in _MISLABELLED_TEXT and elem.VR not in vr:
                # Text where the dictionary expects something else is not that
                # attribute: clean it as text (found by atheris: StudyDescription
                # re-tagged as the retired UL (0008,0001) kept the patient's name).
                action, vr = "C", str(elem.VR)
            actions[action] += 1
            if action == "K":
                if vr == "SQ":
                    self._recurse(ds, tag, run, depth, path)
                elif t in _BULK_TAGS or t & 0xFF01FFFF == 0x60003000:
                    pass  # image content (pixels, overlays, waveforms): not typed values
                elif vr in _RESIDUAL_VRS:
                    run.kept.append((ds, t, vr, path))
                elif elem.VR in _RESIDUAL_VRS or elem.VR in _STRING_VRS:
                    # Characters under a tag of another VR (found by atheris:
                    # an AE, then a TM, under the retired UL (0008,0001) held
                    # the name).
                    run.kept.append((ds, t, str(elem.VR), path))
                continue
            try:
                self._apply(ds, tag, action, vr, run, depth, path)
            except DeidError:
                raise
            except Exception as exc:
                raise DeidError(
                    f"element {path}{_label(tag)}: {type(exc).__name__}: {exc}"
                ) from exc
        if has_private:
            self._privates(ds, run, depth, path)

    def _item_identity(self, ds: Dataset, tag: int, run: _Run, depth: int) -> None:
        """Identity values declared inside a sequence's items, at any depth."""
        if depth > self.limits.max_depth:
            raise DeidError(f"sequences nested deeper than {self.limits.max_depth} levels")
        try:
            items = ds[tag].value
        except Exception as exc:
            raise DeidError(f"sequence {_label(tag)} cannot be read: {exc}") from exc
        for item in items or ():
            if not isinstance(item, Dataset):
                continue
            for t in list(_raw(item)):
                label = _IDENTITY_TAGS.get(int(t))
                if label is not None:
                    run.nested.extend((label, v) for v in _loose_text(_raw(item)[t].value))
                elif _raw(item)[t].VR == "SQ" or _DICT_VR.get(int(t)) == "SQ":
                    self._item_identity(item, t, run, depth + 1)

    def _residual(self, run: _Run) -> None:
        """Clean kept values that hold the patient's identity.

        Table E.1-1 leaves attributes it does not list as they are (PS3.15
        treats them as not identifying), and its options keep others (device
        descriptions, institution details, patient characteristics), so an ID
        or name copied into one of them would be released. Found by atheris:
        the top-level PatientID gone, the ID left only in sequence items and
        copied into an unlisted attribute, then into DeviceDescription (kept by
        Retain Device Identity). The identity is what the top level declares
        plus what any item declares; the patient's words are taken out and the
        rest of the value stays. Short IDs are not searched (they would blank
        unrelated codes and numbers).
        """
        candidates = run.kept
        values = run.term_values
        if run.nested:
            known = set(values)
            extra = tuple(v for v in dict.fromkeys(run.nested) if v not in known)
            if extra:
                # The items declare an identity the top level does not: text
                # cleaned with the top-level terms alone is looked at again.
                values = values + extra
                run.term_values = values
                run.detector = None
                candidates = candidates + run.cleaned
        if not candidates:
            return
        found = _identity_pattern(values)
        if found is None:
            return
        pattern, labels = found
        replacement = self.profile.replacement

        def replace(match: re.Match[str]) -> str:
            return replacement.format(label=labels.get(match.group(0).lower(), "ID"))

        for ds, tag, vr, path in candidates:
            elem = _raw(ds).get(tag)
            if elem is None:
                continue
            value = elem.value
            if isinstance(value, bytes) and len(value) > _RESIDUAL_MAX_BYTES:
                continue
            if not any(pattern.search(v) for v in _loose_text(value)):
                continue
            if vr in ("OB", "UN"):
                del _raw(ds)[tag]  # nothing can clean bytes of unknown meaning
                run.result.changes.append((path + _label(tag), "X"))
                continue
            run.result.changes.append((path + _label(tag), "C"))
            if vr in TEXT_VRS:
                # The patient's words out, the rest of the value as it was.
                limit = _MAX_LEN.get(vr)
                texts = _text_values(ds, tag, vr, None if path else run.codec)
                cleaned = [
                    pattern.sub(replace, v)[:limit] if limit else pattern.sub(replace, v)
                    for v in texts
                ]
                if not any(pattern.search(v) for v in cleaned):
                    _set(ds, tag, vr, cleaned if len(cleaned) > 1 else cleaned[0])
                    continue
            _set(ds, tag, vr, "")

    def _unknown_action(self, tag: int) -> str:
        """Attributes Table E.1-1 does not list: decided once per tag and cached."""
        cached = self._unknown_cache.get(tag)
        if cached is not None:
            return cached
        group, elem = tag >> 16, tag & 0xFFFF
        p = self.profile
        if elem == 0:
            action = "X"  # group lengths are recomputed on write
        elif 0x5000 <= group <= 0x501E and group % 2 == 0:
            action = p.repeating_actions.get(0x50000000, "X")
        elif 0x6000 <= group <= 0x601E and group % 2 == 0:
            key = 0x60004000 if elem == 0x4000 else 0x60003000
            action = p.repeating_actions.get(key, "X")
        else:
            vr = _DICT_VR.get(tag)
            if vr is None:
                action = p.unknown_nonstandard
            elif vr == "SQ":
                action = "K"
            elif vr == "NONE":
                action = "X"  # item/delimitation tags carry no attribute (found by atheris)
            elif vr in ("DA", "DT"):
                action = "C" if self._modified else ("K" if self._full else "X")
            elif vr == "UI":
                action = "K" if tag in CLASS_UID_TAGS else "U"
            elif vr == "PN":
                action = "X"
            else:
                action = p.unknown_standard
        self._unknown_cache[tag] = action
        return action

    def _apply(
        self, ds: Dataset, tag: int, action: str, vr: str, run: _Run, depth: int, path: str
    ) -> None:
        d = _raw(ds)
        if action == "X":
            del d[tag]
            run.result.changes.append((path + _label(tag), "X"))
            return
        if vr == "SQ":
            if action == "Z":
                ds[tag] = DataElement(tag, "SQ", Sequence())
                run.result.changes.append((path + _label(tag), "Z"))
            else:
                self._recurse(ds, tag, run, depth, path)
            return
        if action == "Z":
            _set(ds, tag, vr, b"" if vr in _BINARY_VRS else None)
        elif action == "U" or (action == "D" and vr == "UI"):
            if vr == "UI":
                self._map_uid(ds, tag, run)
            else:
                self._dummy(ds, tag, vr)
        elif action == "D":
            self._dummy(ds, tag, vr)
        elif action == "C":
            self._clean(ds, tag, vr, run, path)
            if vr in TEXT_VRS:
                run.cleaned.append((ds, int(tag), vr, path))
        else:
            raise DeidError(f"element {path}{_label(tag)}: unknown action {action!r}")
        run.result.changes.append((path + _label(tag), action))

    def _dummy(self, ds: Dataset, tag: int, vr: str) -> None:
        value = _DUMMY.get(vr.split(" ")[0], "ANONYMIZED")
        _set(ds, tag, vr.split(" ")[0], value)

    def _map_uid(self, ds: Dataset, tag: int, run: _Run) -> None:
        elem = _raw(ds)[tag]
        raw = elem.value
        if raw is None:
            return
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else _str(raw)
        text = text.strip("\x00 ")
        if not text:
            return
        new = self.uids.map_value(text)
        if new != text:
            for old_one, new_one in zip(text.split("\\"), new.split("\\"), strict=False):
                run.result.uids[old_one] = new_one
        _set(ds, tag, "UI", new)

    def _clean(self, ds: Dataset, tag: int, vr: str, run: _Run, path: str) -> None:
        if vr in ("DA", "DT"):
            raw = _raw(ds)[tag].value
            text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else _str(raw)
            text = text.strip("\x00 ")
            if not text:
                return
            shifted = None
            if run.shift is not None:
                fn = dates.shift_da if vr == "DA" else dates.shift_dt
                shifted = fn(text, run.shift)
            _set(ds, tag, vr, shifted if shifted is not None else "")
            return
        if vr == "TM":
            # Whole-day shifts leave the time of day as it was, if it is one.
            # Found by atheris: a StudyTime whose length swallowed the elements
            # after it (PatientName, PatientID) was kept verbatim.
            raw = _raw(ds)[tag].value
            if raw is None:
                return
            text = raw.decode("latin-1") if isinstance(raw, bytes) else _str(raw)
            if not all(_TM.fullmatch(v.strip("\x00 ")) for v in text.split("\\")):
                _set(ds, tag, "TM", "")
            return
        if vr == "AE":
            raw = _raw(ds)[tag].value
            text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else _str(raw)
            token = keyed_hash(self._ae_key, text.strip("\x00 ")).hex()[:10].upper()
            _set(ds, tag, "AE", f"AE{token}")
            return
        if vr in TEXT_VRS or vr == "CS" or vr == "PN":
            # Items inherit their parent's character set: decoded by pydicom there.
            values = _text_values(ds, tag, vr, None if path else run.codec)
            if not values:
                return
            cleaned = [self._scrub(v, vr, run) for v in values]
            if cleaned != values:
                _set(ds, tag, vr, cleaned if len(cleaned) > 1 else cleaned[0])
            return
        # Nothing can clean a binary or numeric value of unknown meaning: remove it.
        del _raw(ds)[tag]

    def _scrub(self, text: str, vr: str, run: _Run) -> str:
        if run.detector is None:
            run.detector = _detector(run.term_values, self.use_ner)
        if vr in ("CS", "PN"):
            return "" if run.detector.find(text, ner=vr == "PN") else text
        out = run.detector.scrub(text, self.profile.replacement)
        limit = _MAX_LEN.get(vr)
        return out[:limit] if limit else out

    def _recurse(self, ds: Dataset, tag: int, run: _Run, depth: int, path: str) -> None:
        try:
            seq = ds[tag].value
        except Exception as exc:
            raise DeidError(f"sequence {path}{_label(tag)} cannot be read: {exc}") from exc
        if seq is None:
            return
        if len(seq) > self.limits.max_items_per_sequence:
            raise DeidError(
                f"sequence {path}{_label(tag)} has {len(seq)} items; the limit is "
                f"{self.limits.max_items_per_sequence}"
            )
        for i, item in enumerate(seq):
            self._walk(item, run, depth + 1, f"{path}{_label(tag)}[{i}].")

    def _privates(self, ds: Dataset, run: _Run, depth: int, path: str) -> None:
        d = _raw(ds)
        private = [t for t in d if t & 0x10000]
        index = self.profile.safe_private_index if self._safe else {}
        creators: dict[tuple[int, int], str] = {}
        if index:
            for t in private:
                el = t & 0xFFFF
                if 0x10 <= el <= 0xFF:
                    raw = d[t].value
                    text = raw.decode("latin-1") if isinstance(raw, bytes) else _str(raw)
                    creators[(t >> 16, el)] = text.strip("\x00 ").upper()
        kept_blocks: set[tuple[int, int]] = set()
        actions = run.result.actions
        for t in private:
            el = t & 0xFFFF
            if 0x10 <= el <= 0xFF:
                continue
            group = t >> 16
            block = el >> 8
            creator = creators.get((group, block)) if el > 0xFF else None
            if creator is not None and (creator, group, el & 0xFF) in index:
                kept_blocks.add((group, block))
                actions["K"] += 1
                elem = d[t]
                if elem.VR in TEXT_VRS:
                    self._clean(ds, t, str(elem.VR), run, path)
                elif elem.VR == "SQ":
                    self._recurse(ds, t, run, depth, path)
                continue
            elem = d[t]
            if elem.VR == "SQ" or getattr(elem, "length", 0) == _UNDEFINED_LENGTH:
                # Removed unread, like the table's sequences: their items'
                # identity still counts. One that cannot be read declares none.
                with contextlib.suppress(DeidError):
                    self._item_identity(ds, t, run, depth)
            del d[t]
            actions["X"] += 1
            run.result.changes.append((path + _label(t), "X"))
        for t in private:
            el = t & 0xFFFF
            if 0x10 <= el <= 0xFF and ((t >> 16), el) not in kept_blocks:
                del d[t]
                actions["X"] += 1

    # ------------------------------------------------------------- finishing

    def _finish(
        self, ds: Dataset, run: _Run, subject_id: str, over_89: bool, rebuild_meta: bool
    ) -> None:
        p = self.profile
        d = _raw(ds)
        for tag, vr, value, prebuilt in self._fixed_elements:
            if prebuilt is not None:
                d[prebuilt.tag] = prebuilt  # immutable: shared by every output
            else:
                _put(d, tag, vr, value)
        _put(d, 0x00100010, "PN", subject_id)
        _put(d, 0x00100020, "LO", subject_id)
        _put(d, 0x00120040, "LO", subject_id)  # Clinical Trial Subject ID
        if over_89:
            if 0x00101010 in d:
                _put(d, 0x00101010, "AS", "090Y")
            if 0x00100030 in d:
                _put(d, 0x00100030, "DA", "")
        elif p.cap_age and 0x00101010 in d:
            age = _plain(ds, 0x00101010)
            capped = dates.cap_age(age)
            if capped != age:
                _put(d, 0x00101010, "AS", capped)
        encoding = getattr(ds, "original_encoding", (None, None))
        raw_codes = self._raw_codes(encoding) if None not in encoding else None
        if raw_codes is not None:
            d[raw_codes.tag] = raw_codes
        else:
            ds.DeidentificationMethodCodeSequence = Sequence([_code(c) for c in self._codes])
        ds.preamble = b"\x00" * 128
        if rebuild_meta and getattr(ds, "file_meta", None) is not None:
            sop = ds.get("SOPInstanceUID")
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = UID(str(ds.get("SOPClassUID", "")))
            meta.MediaStorageSOPInstanceUID = UID(str(sop or ""))
            ts = ds.file_meta.get("TransferSyntaxUID")
            if ts:
                meta.TransferSyntaxUID = UID(str(ts))
            ds.file_meta = meta

    @cached_property
    def _fixed(self) -> list[tuple[int, str, Any]]:
        """Elements every output carries, the same for all instances of this engine."""
        p, t = self.profile, self.trial
        out: list[tuple[int, str, Any]] = [
            (0x00120010, "LO", t.sponsor or t.trial_id or "UNSPECIFIED"),
            (0x00120020, "LO", t.trial_id or "UNSPECIFIED"),
            (0x00120021, "LO", t.protocol_name),
            (0x00120030, "LO", t.site_id),
            (0x00120031, "LO", t.site_name),
            (0x00120062, "CS", "YES"),  # Patient Identity Removed
            (
                0x00120063,
                "LO",
                [
                    f"trialpacs {trialpacs.__version__} profile {p.name}"[:64],
                    "PS3.15 E.1-1 2024b Basic Application Confidentiality",
                ],
            ),
        ]
        if t.time_point_id:
            out.append((0x00120050, "LO", t.time_point_id))
        if t.time_point_description:
            out.append((0x00120051, "ST", t.time_point_description))
        if t.coordinating_center:
            out.append((0x00120060, "LO", t.coordinating_center))
        if self._modified:
            marker = "MODIFIED"
        elif self._full:
            marker = "UNMODIFIED"
        else:
            marker = "REMOVED"
        out.append((0x00280303, "CS", marker))  # Longitudinal Temporal Information Modified
        return out

    @cached_property
    def _fixed_elements(self) -> list[tuple[int, str, Any, RawDataElement | None]]:
        out: list[tuple[int, str, Any, RawDataElement | None]] = []
        for tag, vr, value in self._fixed:
            data = _raw_bytes(vr, value)
            elem = None
            if data is not None:
                t = BaseTag(tag)
                elem = RawDataElement(t, vr, len(data), data, 0, False, True)
            out.append((tag, vr, value, elem))
        return out

    def _raw_codes(self, encoding: tuple[bool | None, bool | None]) -> RawDataElement | None:
        """The code sequence, encoded once per transfer syntax and reused as raw bytes.

        Building six coded items as Datasets for every file cost more than the
        rest of the header work on small instances.
        """
        key = (bool(encoding[0]), bool(encoding[1]))
        cached = self._raw_code_cache.get(key)
        if cached is None:
            holder = Dataset()
            holder.DeidentificationMethodCodeSequence = Sequence([_code(c) for c in self._codes])
            buf = DicomBytesIO()
            buf.is_implicit_VR, buf.is_little_endian = key
            write_dataset(buf, holder)
            buf.seek(0)
            parsed = read_dataset(buf, key[0], key[1])  # type: ignore[arg-type]
            cached = parsed._dict[Tag(0x00120064)]  # type: ignore[assignment]
            if not isinstance(cached, RawDataElement):
                return None
            self._raw_code_cache[key] = cached
        return cached

    def _method_codes(self) -> list[tuple[str, str]]:
        codes = [BASIC_CODE]
        codes += [o.code for o in TABLE_OPTIONS if self.profile.has(o)]
        return codes

    def _add_code(self, ds: Dataset, option: Option) -> None:
        seq = ds.DeidentificationMethodCodeSequence
        if not any(item.CodeValue == option.code[0] for item in seq):
            seq.append(_code(option.code))


_SUBJECT_TAGS = {
    0x00100010: "PatientName",
    0x00100020: "PatientID",
    0x00100030: "PatientBirthDate",
    0x00101000: "OtherPatientIDs",
}


def _code(code: tuple[str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue = code[0]
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = code[1]
    return item


@lru_cache(maxsize=256)
def _detector(values: tuple[tuple[str, str], ...], use_ner: bool) -> PhiDetector:
    """Cached with its answers: the instances of a series share values and descriptions."""
    return PhiDetector(_terms(values), use_ner=use_ner)


@lru_cache(maxsize=1024)
def _terms(values: tuple[tuple[str, str], ...]) -> list[Term]:
    """Cached: the instances of a series share their identifying values."""
    return terms_from_values(values)


# Patient identity inside sequence items (e.g. OtherPatientIDsSequence).
_IDENTITY_TAGS: dict[int, str] = {
    0x00100010: "NAME",  # Patient's Name
    0x00101001: "NAME",  # Other Patient Names
    0x00101005: "NAME",  # Patient's Birth Name
    0x00100020: "ID",  # Patient ID
    0x00101000: "ID",  # Other Patient IDs
}
# Kept values checked for identity: the text VRs people or devices type into,
# and bytes of unknown meaning (an ID written as OB or UN is still the ID).
_RESIDUAL_VRS = TEXT_VRS | {"CS", "AE", "UR", "PN", "OB", "UN"}
# Other character VRs: searched when they stand under a tag of another VR.
_STRING_VRS = frozenset({"AS", "DA", "DS", "DT", "IS", "TM", "UI"})
_RESIDUAL_MAX_BYTES = 1 << 16
# Image and signal content: a run of sample bytes that spells the ID is the
# pixel cleaner's business (found by atheris: header bytes copied into an RLE
# fragment made the engine drop the pixel data).
_BULK_TAGS = frozenset(
    {0x7FE00008, 0x7FE00009, 0x7FE00010, 0x54001010, 0x00420011, 0x00282000}
)  # larger binary values are data (curves, tables), not typed
_WORD = "0-9A-Za-z"
_ANYWHERE_LEN = 6  # identity values this long are matched inside words too


@lru_cache(maxsize=1024)
def _identity_pattern(
    values: tuple[tuple[str, str], ...],
) -> tuple[re.Pattern[str], dict[str, str]] | None:
    """Case-blind alternation of the patient's IDs and name parts.

    With each word's label (lower case) for the replacement. IDs shorter than
    four characters (three with a digit) are left out: a patient ID "12"
    would otherwise blank every kept "12".
    """
    labels: dict[str, str] = {}
    for term in terms_from_values(v for v in values if v[0] in ("ID", "NAME")):
        text = term.text
        if (
            term.label == "ID"
            and len(text) < 4
            and not (len(text) == 3 and any(c.isdigit() for c in text))
        ):
            continue
        labels.setdefault(text.lower(), term.label)
    if not labels:
        return None
    # Long values anywhere (found by atheris: "knee forAFUZZ^PATIENT^Q" kept
    # the name glued to a word); short ones only as whole words.
    ordered = sorted(labels, key=len, reverse=True)
    long = "|".join(re.escape(w) for w in ordered if len(w) >= _ANYWHERE_LEN)
    short = "|".join(re.escape(w) for w in ordered if len(w) < _ANYWHERE_LEN)
    parts = [long] if long else []
    if short:
        parts.append(rf"(?<![{_WORD}])(?:{short})(?![{_WORD}])")
    return re.compile("|".join(parts), re.IGNORECASE), labels


def _loose_text(value: object) -> list[str]:
    """A value's text for a search, whatever its type (bytes read as latin-1)."""
    if value is None:
        return []
    if isinstance(value, bytes):
        text = value.decode("latin-1")
        return [v.strip("\x00 ") for v in text.split("\\") if v.strip("\x00 ")]
    if isinstance(value, MultiValue | list | tuple):
        return [str(v).strip("\x00 ") for v in value if str(v).strip("\x00 ")]
    text = str(value).strip("\x00 ")
    return [text] if text else []


# VRs whose generated values are stored as raw bytes when they are plain ASCII
# (valid in every character set; the writer then copies them like input bytes).
_RAW_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR", "LO", "LT", "SH", "ST", "UC",
     "UT", "PN"}
)  # fmt: skip


def _raw_bytes(vr: str, value: Any) -> bytes | None:
    """The encoded value of a generated element, or None when pydicom must encode it."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value if vr in _BINARY_VRS and not len(value) % 2 else None
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = "\\".join(value)
    else:
        return None
    if vr not in _RAW_TEXT_VRS or not text.isascii():
        return None
    data = text.encode("ascii")
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def _put(d: dict[int, Any], tag: int, vr: str, value: Any) -> None:
    """Set a standard element we generated ourselves: no validation, no keyword lookup.

    Plain values become raw elements (decoded by pydicom only if someone reads
    them, copied as bytes by the writer); anything else a DataElement.
    """
    data = _raw_bytes(vr, value)
    if data is not None:
        t = BaseTag(tag)
        d[t] = RawDataElement(t, vr, len(data), data, 0, False, True)
        return
    elem = DataElement(tag, vr, value, validation_mode=config.IGNORE)
    d[elem.tag] = elem


def _set(ds: Dataset, tag: int, vr: str, value: Any) -> None:
    """Replace an element with a value the engine made (private ones via pydicom)."""
    if tag & 0x10000:
        ds[tag] = DataElement(tag, vr, value, validation_mode=config.IGNORE)
    else:
        _put(_raw(ds), tag, vr, value)


def _raw(ds: Dataset) -> dict[int, Any]:
    """pydicom's element dict, keyed by plain ints for speed (BaseTag is an int)."""
    return ds._dict  # type: ignore[return-value]


_LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UC", "UR", "UT"})


def _known_vr(d: dict[int, Any], tag: int, elem: RawDataElement) -> RawDataElement:
    """A standard attribute stored as UN gets its dictionary VR back (as pydicom does
    when it reads one), so a kept raw copy is written with the right VR. Same bytes:
    UN values are little endian, and so is every output the raw path writes."""
    known = _DICT_VR.get(int(tag))
    if (
        known is None
        or len(known) != 2
        or known in ("UN", "SQ")
        or elem.length == 0xFFFFFFFF
        or (elem.length > 0xFFFF and known not in _LONG_LENGTH_VRS)
    ):
        return elem
    elem = elem._replace(VR=known)
    d[tag] = elem
    return elem


def _label(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


_FAST_CHARSETS = {
    "": "latin-1",
    "ISO_IR 100": "latin-1",
    "ISO_IR 6": "latin-1",
    "ISO_IR 192": "utf-8",
}


def _codec(ds: Dataset) -> str | None:
    """The Python codec of the data set's character set when it is a plain one."""
    elem = _raw(ds).get(0x00080005)
    if elem is None:
        return "latin-1"
    raw = elem.value
    cs = (raw.decode("ascii", "replace") if isinstance(raw, bytes) else _str(raw)).strip("\x00 ")
    return _FAST_CHARSETS.get(cs)


_SINGLE_VALUED = frozenset({"ST", "LT", "UT"})  # backslash is text here, not a separator


def _text_values(ds: Dataset, tag: int, vr: str, codec: str | None) -> list[str]:
    """The element's string values, decoded from raw bytes when the character set allows."""
    d = _raw(ds)
    elem = d[tag]
    if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
        if 0x00080005 in d:
            codec = _codec(ds)  # an item with its own character set
        if codec is not None:
            text = elem.value.decode(codec, "replace")
            if not text.strip("\x00 "):
                return []
            parts = [text] if vr in _SINGLE_VALUED else text.split("\\")
            return [p.rstrip("\x00 ") for p in parts]
    value = ds[tag].value
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, MultiValue | list) else [str(value)]


def _phi_values(ds: Dataset) -> list[tuple[int, str, str]]:
    """(tag, label, text) for each identifying top-level value present.

    Raw values are decoded directly when the character set is a simple one;
    anything else goes through pydicom's decoding.
    """
    out = []
    d = _raw(ds)
    cs_elem = d.get(0x00080005)
    cs_raw = cs_elem.value if cs_elem is not None else b""
    cs = (cs_raw.decode("ascii", "replace") if isinstance(cs_raw, bytes) else _str(cs_raw)).strip()
    codec = _FAST_CHARSETS.get(cs)
    for tag, label in PHI_SOURCES:
        elem = d.get(tag)
        if elem is None:
            continue
        value: Any = elem.value
        if isinstance(value, bytes) and codec is not None:
            value = value.decode(codec, "replace").split("\\")
        else:
            try:
                value = ds[tag].value
            except Exception:
                continue
        if value is None or value == "":
            continue
        for v in value if isinstance(value, MultiValue | list) else [value]:
            text = str(v).strip("\x00 ")
            if text:
                out.append((tag, label, text))
    return out


def phi_values(ds: Dataset) -> list[tuple[int, str, str]]:
    """Public view of the identifying header values (used by verify)."""
    return _phi_values(ds)


def _plain(ds: Dataset, tag: int) -> str:
    """A short ASCII value straight from the raw bytes; pydicom's reading otherwise."""
    elem = _raw(ds).get(tag)
    if elem is None:
        return ""
    value = elem.value
    if isinstance(elem, RawDataElement) and isinstance(value, bytes) and value.isascii():
        return value.decode("ascii").strip("\x00 ")
    return _str(ds[tag].value).strip("\x00 ")


def _over_89(ds: Dataset) -> bool:
    try:
        age = _plain(ds, 0x00101010)
        if len(age) == 4 and age[3] == "Y" and age[:3].isdigit() and int(age[:3]) > 89:
            return True
        birth = _plain(ds, 0x00100030)
        on = _plain(ds, 0x00080020) or _plain(ds, 0x00080021)
        years = dates.age_years(birth, on) if birth and on else None
        return years is not None and years > 89
    except Exception:
        return False


_ENCAPSULATION_ONLY = (0x7FE00001, 0x7FE00002)  # Extended Offset Table (+ Lengths)


def output_transfer_syntax(ds: Dataset, arrived_in: str) -> str:
    """The syntax the de-identified instance must be written in.

    The pixel cleaner may change the encoding (a lossy input is decoded,
    masked and stored uncompressed) and records that in ``ds.file_meta``;
    labelling such pixels with the syntax the input arrived in would make
    the output unreadable. If the syntax changed, the pixel data must have
    been rewritten: a raw copy of the old bytes under a new label is refused.
    Elements that only describe encapsulated pixels go when the output is
    native.
    """
    meta = getattr(ds, "file_meta", None)
    now = meta.get("TransferSyntaxUID") if meta is not None else None
    ts = str(now).strip("\x00 ") if now else arrived_in
    if ts == arrived_in:
        return ts
    d = _raw(ds)
    for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
        if isinstance(d.get(tag), RawDataElement):
            raise DeidError(
                f"the pixel cleaner changed the transfer syntax from {arrived_in} to {ts} "
                "but left the pixel data as it was"
            )
    if not UID(ts).is_encapsulated:
        for tag in _ENCAPSULATION_ONLY:
            d.pop(tag, None)
    return ts


def pixel_notes(report: PixelCleanReport) -> list[str]:
    """Short, countable notes for a run summary (no per-file timings or texts)."""
    head = report.reason.split("; ")[0]
    for prefix in ("not OCR-scanned: ", "not scanned: ", "scanned: "):
        if head.startswith(prefix):
            head = head[len(prefix) :]
            break
    notes = [f"pixels OCR-scanned ({head})" if report.scanned else f"pixels not scanned: {head}"]
    if report.boxes:
        notes.append("burned-in text masked")
    return notes


def _has_pixels(ds: Dataset) -> bool:
    d = _raw(ds)
    return 0x7FE00010 in d or 0x7FE00008 in d or 0x7FE00009 in d
