"""QIDO-RS / C-FIND matching over the index (PS3.18 8.3.4, PS3.4 C.2.2.2).

One query model serves DICOMweb and DIMSE: :class:`Query` is built (and
validated) from request parameters, :func:`search` turns it into SQL and
returns DICOM JSON objects. Matching types: single value, universal (empty
value or ``*``), wildcards ``*``/``?``, UID lists, date/time ranges and, for
person names, fuzzy matching (case-insensitive word prefixes).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from pydicom.datadict import dictionary_VR, tag_for_keyword
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from trialpacs.dicom.uids import is_valid_uid
from trialpacs.errors import InvalidInput
from trialpacs.index.models import Instance, Series, Study

Level = Literal["study", "series", "instance"]


@dataclass(frozen=True)
class Attr:
    """An attribute the index can match on or return, and where it lives."""

    tag: str
    vr: str
    level: Level
    column: Any  # an ORM column, or None for computed values
    kind: str = "text"  # text | pn | date | time | uid | int | modalities


_A = Attr
ATTRS: dict[str, Attr] = {
    a.tag: a
    for a in [
        _A("00080020", "DA", "study", Study.study_date, "date"),
        _A("00080030", "TM", "study", Study.study_time, "time"),
        _A("00080050", "SH", "study", Study.accession_number),
        _A("00080061", "CS", "study", Study.modalities, "modalities"),
        _A("00080090", "PN", "study", Study.referring_physician_name, "pn"),
        _A("00081030", "LO", "study", Study.study_description),
        _A("00100010", "PN", "study", Study.patient_name, "pn"),
        _A("00100020", "LO", "study", Study.patient_id),
        _A("00100030", "DA", "study", Study.patient_birth_date, "date"),
        _A("00100040", "CS", "study", Study.patient_sex),
        _A("0020000D", "UI", "study", Study.study_uid, "uid"),
        _A("00200010", "SH", "study", Study.study_id),
        _A("00201206", "IS", "study", Study.num_series, "int"),
        _A("00201208", "IS", "study", Study.num_instances, "int"),
        _A("00120050", "LO", "study", Study.timepoint_id),  # ClinicalTrialTimePointID
        _A("00080060", "CS", "series", Series.modality),
        _A("0008103E", "LO", "series", Series.series_description),
        _A("00080021", "DA", "series", Series.series_date, "date"),
        _A("00080031", "TM", "series", Series.series_time, "time"),
        _A("00180015", "CS", "series", Series.body_part),
        _A("0020000E", "UI", "series", Series.series_uid, "uid"),
        _A("00200011", "IS", "series", Series.series_number, "int"),
        _A("00400244", "DA", "series", Series.pps_start_date, "date"),
        _A("00400245", "TM", "series", Series.pps_start_time, "time"),
        _A("00201209", "IS", "series", Series.num_instances, "int"),
        _A("00080016", "UI", "instance", Instance.sop_class_uid, "uid"),
        _A("00080018", "UI", "instance", Instance.sop_uid, "uid"),
        _A("00200013", "IS", "instance", Instance.instance_number, "int"),
        _A("00280010", "US", "instance", Instance.rows, "int"),
        _A("00280011", "US", "instance", Instance.columns, "int"),
        _A("00280100", "US", "instance", Instance.bits_allocated, "int"),
        _A("00280008", "IS", "instance", Instance.number_of_frames, "int"),
    ]
}

LEVEL_ORDER: dict[Level, int] = {"study": 0, "series": 1, "instance": 2}

# What each level returns by default (PS3.18 Table 10.6.3-3..5).
DEFAULT_RETURN: dict[Level, tuple[str, ...]] = {
    "study": (
        "00080020",
        "00080030",
        "00080050",
        "00080061",
        "00080090",
        "00081030",
        "00100010",
        "00100020",
        "00100030",
        "00100040",
        "0020000D",
        "00200010",
        "00201206",
        "00201208",
    ),
    "series": (
        "00080060",
        "0008103E",
        "00080021",
        "00080031",
        "00180015",
        "0020000E",
        "00200011",
        "00400244",
        "00400245",
        "00201209",
    ),
    "instance": (
        "00080016",
        "00080018",
        "00200013",
        "00280010",
        "00280011",
        "00280100",
        "00280008",
    ),
}
CONTROL_PARAMS = frozenset({"limit", "offset", "fuzzymatching", "includefield"})
_DATE_RE = re.compile(r"^\d{8}$")
_TIME_RE = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


def normalize_tag(key: str) -> str:
    """Accept a keyword or an 8-hex-digit tag; return the upper-case tag."""
    key = key.strip()
    if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
        return key.upper()
    tag = tag_for_keyword(key)
    if tag is None:
        raise InvalidInput(f"unknown attribute {key!r} (use a DICOM keyword or 8 hex digits)")
    return f"{tag:08X}"


@dataclass(frozen=True)
class Query:
    """A validated QIDO query: what to match, at which level, what to return."""

    level: Level
    matches: Mapping[str, str] = field(default_factory=dict)
    fuzzy: bool = False
    limit: int | None = None
    offset: int = 0
    include: frozenset[str] = frozenset()
    include_all: bool = False
    study_uid: str | None = None
    series_uid: str | None = None
    # Which collection to search: only the published archive unless a caller
    # that has checked PHI access asks for identified data of one trial/site.
    collection: str = "published"
    trial_id: str | None = None
    site_id: str | None = None
    # Extra condition on studies from trialpacs.access (what the caller may see);
    # applied in SQL so limit/offset count only visible rows.
    visible: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for tag, value in self.matches.items():
            attr = ATTRS.get(tag)
            if attr is None:
                raise InvalidInput(
                    f"matching on {_describe(tag)} is not supported; supported: "
                    + ", ".join(sorted(_describe(t) for t in ATTRS))
                )
            if LEVEL_ORDER[attr.level] > LEVEL_ORDER[self.level]:
                raise InvalidInput(
                    f"{_describe(tag)} is a {attr.level}-level attribute and cannot be "
                    f"matched in a {self.level}-level query"
                )
            _validate_value(attr, value)
        if self.limit is not None and self.limit < 0:
            raise InvalidInput("limit must not be negative")
        if self.offset < 0:
            raise InvalidInput("offset must not be negative")

    @classmethod
    def from_params(
        cls,
        level: Level,
        params: Iterable[tuple[str, str]],
        *,
        study_uid: str | None = None,
        series_uid: str | None = None,
        max_limit: int | None = None,
    ) -> Query:
        matches: dict[str, str] = {}
        include: set[str] = set()
        include_all = False
        fuzzy = False
        limit: int | None = None
        offset = 0
        for key, raw in params:
            if key == "limit":
                limit = _int_param("limit", raw)
            elif key == "offset":
                offset = _int_param("offset", raw)
            elif key == "fuzzymatching":
                if raw.lower() not in {"true", "false"}:
                    raise InvalidInput("fuzzymatching must be true or false")
                fuzzy = raw.lower() == "true"
            elif key == "includefield":
                for part in raw.split(","):
                    part = part.strip()
                    if not part:
                        continue
                    if part == "all":
                        include_all = True
                    else:
                        include.add(normalize_tag(part))
            else:
                tag = normalize_tag(key)
                if tag in matches:
                    matches[tag] = matches[tag] + "\\" + raw
                else:
                    matches[tag] = raw
        if max_limit is not None:
            limit = max_limit if limit is None else min(limit, max_limit)
        return cls(
            level=level,
            matches=matches,
            fuzzy=fuzzy,
            limit=limit,
            offset=offset,
            include=frozenset(include),
            include_all=include_all,
            study_uid=study_uid,
            series_uid=series_uid,
        )


def _describe(tag: str) -> str:
    from pydicom.datadict import keyword_for_tag

    kw = keyword_for_tag(int(tag, 16)) if re.fullmatch(r"[0-9A-F]{8}", tag) else ""
    return f"{kw} ({tag})" if kw else tag


# IS (Integer String) range; larger numbers overflowed SQLite's INTEGER (a 500,
# found by tests/hardening/test_fuzz.py).
IS_MIN, IS_MAX = -(2**31), 2**31 - 1


def _int_param(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, got {raw!r}") from None
    if not IS_MIN <= value <= IS_MAX:
        raise InvalidInput(f"{name} {raw!r} is out of range (at most {IS_MAX})")
    return value


def _validate_value(attr: Attr, value: str) -> None:
    if value in ("", "*"):
        return
    if attr.kind in ("uid", "int", "modalities") and not _split_list(value):
        # "," or "\\" alone: an empty list (an IndexError, found by the fuzzer).
        raise InvalidInput(f"{_describe(attr.tag)}: {value!r} holds no value")
    if attr.kind == "uid":
        for uid in _split_list(value):
            if not is_valid_uid(uid):
                raise InvalidInput(f"{_describe(attr.tag)}: {uid!r} is not a valid UID")
    elif attr.kind in ("date", "time"):
        pattern = _DATE_RE if attr.kind == "date" else _TIME_RE
        parts = value.split("-") if "-" in value else [value]
        if len(parts) > 2 or not any(parts):
            raise InvalidInput(f"{_describe(attr.tag)}: bad range {value!r}")
        for part in parts:
            if part and not pattern.match(part.replace(":", "")):
                what = "YYYYMMDD" if attr.kind == "date" else "HHMMSS"
                raise InvalidInput(f"{_describe(attr.tag)}: {part!r} is not {what}")
    elif attr.kind == "int":
        for v in _split_list(value):
            try:
                number = int(v)
            except ValueError:
                raise InvalidInput(f"{_describe(attr.tag)}: {v!r} is not a number") from None
            if not IS_MIN <= number <= IS_MAX:
                raise InvalidInput(f"{_describe(attr.tag)}: {v!r} is out of range")


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in re.split(r"[,\\]", value) if v.strip()]


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _condition(attr: Attr, value: str, fuzzy: bool) -> ColumnElement[bool] | None:
    col = attr.column
    if value in ("", "*"):
        return None
    if attr.kind == "uid":
        uids = _split_list(value)
        return col.in_(uids) if len(uids) > 1 else col == uids[0]
    if attr.kind == "int":
        values = [int(v) for v in _split_list(value)]
        return col.in_(values) if len(values) > 1 else col == values[0]
    if attr.kind == "modalities":
        mods = _split_list(value)
        return or_(*[col.like(f"%\\\\{_like(m)}\\\\%", escape="\\") for m in mods])
    if attr.kind in ("date", "time"):
        return _range(col, value.replace(":", ""), attr.kind)
    if attr.kind == "pn":
        search = (
            Study.patient_name_search
            if attr.tag == "00100010"
            else (Study.referring_physician_search)
        )
        if fuzzy:
            words = [w for w in re.split(r"[\s^=,]+", value.upper().replace("*", " ")) if w]
            return and_(*[search.like(f"% {_like(w)}%", escape="\\") for w in words])
        return func.upper(col).like(_like(value.upper()), escape="\\")
    if "\\" in value and "*" not in value and "?" not in value:
        return col.in_(_split_list(value))
    if "*" in value or "?" in value:
        return col.like(_like(value), escape="\\")
    return col == value


def _range(col: Any, value: str, kind: str) -> ColumnElement[bool]:
    if "-" not in value:
        return col.like(value + "%") if kind == "time" else col == value
    low, high = value.split("-", 1)
    conds = [col != ""]
    if low:
        conds.append(col >= low)
    if high:
        conds.append(col <= (high + "~" if kind == "time" else high))
    return and_(*conds)


def _collection_conditions(query: Query) -> list[ColumnElement[bool]]:
    conds = [Study.collection == query.collection]
    if query.trial_id is not None:
        conds.append(Study.trial_id == query.trial_id)
    if query.site_id is not None:
        conds.append(Study.site_id == query.site_id)
    if query.visible is not None:
        conds.append(query.visible)
    return conds


_LEVELS: tuple[Level, ...] = ("study", "series", "instance")
_PK: dict[Level, Any] = {"study": Study.pk, "series": Series.pk, "instance": Instance.pk}


def _row_columns(level: Level) -> tuple[list[Any], dict[tuple[str, str], int]]:
    """Columns a ``level`` query reads, and where each attribute sits in a row.

    Plain column rows instead of ORM entities: hydrating 101 ``Study``
    objects per page was a quarter of a study-list request's CPU. Position 0
    is the primary key of ``level`` (used to find each row's stored instance).
    """
    cols: list[Any] = [_PK[level]]
    where: dict[tuple[str, str], int] = {}
    for lv in _LEVELS[: LEVEL_ORDER[level] + 1]:
        for attr in ATTRS.values():
            if attr.level == lv:
                where[(lv, attr.column.key)] = len(cols)
                cols.append(attr.column)
    return cols, where


_ROW_COLUMNS = {lv: _row_columns(lv) for lv in _LEVELS}


def _base_select(query: Query) -> Select[Any]:
    stmt: Any
    cols = _ROW_COLUMNS[query.level][0]
    if query.level == "study":
        stmt = select(*cols).select_from(Study).where(*_collection_conditions(query))
        needs_series = any(ATTRS[t].level != "study" for t in query.matches)
        if needs_series:
            stmt = stmt.where(
                Study.pk.in_(select(Series.study_pk).where(*_level_conditions(query, "series")))
            )
        return stmt.where(*_level_conditions(query, "study"))
    if query.level == "series":
        stmt = (
            select(*cols)
            .select_from(Series)
            .join(Study, Study.pk == Series.study_pk)
            .where(*_collection_conditions(query))
        )
        if query.study_uid:
            stmt = stmt.where(Study.study_uid == query.study_uid)
        return stmt.where(*_level_conditions(query, "study"), *_level_conditions(query, "series"))
    stmt = (
        select(*cols)
        .select_from(Instance)
        .join(Series, Series.pk == Instance.series_pk)
        .join(Study, Study.pk == Instance.study_pk)
        .where(*_collection_conditions(query))
    )
    if query.study_uid:
        stmt = stmt.where(Study.study_uid == query.study_uid)
    if query.series_uid:
        stmt = stmt.where(Series.series_uid == query.series_uid)
    return stmt.where(
        *_level_conditions(query, "study"),
        *_level_conditions(query, "series"),
        *_level_conditions(query, "instance"),
    )


def _level_conditions(query: Query, level: Level) -> list[ColumnElement[bool]]:
    conds = []
    for tag, value in query.matches.items():
        attr = ATTRS[tag]
        if attr.level == level:
            cond = _condition(attr, value, query.fuzzy)
            if cond is not None:
                conds.append(cond)
    return conds


@dataclass
class SearchResult:
    items: list[dict[str, Any]]
    more: bool  # True when the limit cut the result


def search(session: Session, query: Query) -> SearchResult:
    """Run the query; returns DICOM JSON objects in insertion order."""
    stmt = _base_select(query)
    order = {"study": Study.pk, "series": Series.pk, "instance": Instance.pk}[query.level]
    stmt = stmt.order_by(order).offset(query.offset)
    if query.limit is not None:
        stmt = stmt.limit(query.limit + 1)
    rows = session.execute(stmt).all()
    more = query.limit is not None and len(rows) > query.limit
    if more:
        rows = rows[: query.limit]
    plan = _render_plan(query)
    items = [_render(plan, row) for row in rows]
    extra = _extra_tags(query)
    if extra or query.include_all:
        _add_from_metadata(session, query, rows, items, extra)
    return SearchResult(items=items, more=more)


def _returned_tags(query: Query) -> list[str]:
    tags: list[str] = []
    levels: list[Level] = ["study", "series", "instance"][: LEVEL_ORDER[query.level] + 1]  # type: ignore[assignment]
    for level in levels:
        if level == query.level or _shows_parent(query, level):
            tags.extend(DEFAULT_RETURN[level])
        else:
            tags.append({"study": "0020000D", "series": "0020000E"}[level])
    tags.extend(t for t in query.matches if t not in tags and t in ATTRS)
    tags.extend(t for t in query.include if t not in tags and t in ATTRS and _reachable(query, t))
    return tags


def _shows_parent(query: Query, level: Level) -> bool:
    """Parent attributes are returned when the parent is not fixed by the URL."""
    if level == "study":
        return query.study_uid is None
    return query.series_uid is None


def _reachable(query: Query, tag: str) -> bool:
    return LEVEL_ORDER[ATTRS[tag].level] <= LEVEL_ORDER[query.level]


def _extra_tags(query: Query) -> list[str]:
    return sorted(t for t in query.include if t not in ATTRS or not _reachable(query, t))


Converter = Callable[[Any], dict[str, Any]]


def _render_plan(query: Query) -> list[tuple[str, Converter, int]]:
    """(tag, value converter, row position) of every returned attribute, in output order.

    Worked out once per query rather than once per row; the order is the
    sorted tag order every response has always had.
    """
    where = _ROW_COLUMNS[query.level][1]
    out: dict[str, tuple[Converter, int]] = {}
    for tag in _returned_tags(query):
        attr = ATTRS[tag]
        out[tag] = (_converter(attr.vr), where[(attr.level, attr.column.key)])
    out["00080056"] = (_online, 0)  # RetrieveAvailability
    if query.level != "study":
        out.setdefault("0020000D", (_converter("UI"), where[("study", "study_uid")]))
    if query.level == "instance":
        out.setdefault("0020000E", (_converter("UI"), where[("series", "series_uid")]))
    return [(tag, conv, i) for tag, (conv, i) in sorted(out.items())]


def _render(plan: list[tuple[str, Converter, int]], row: Sequence[Any]) -> dict[str, Any]:
    return {tag: conv(row[i]) for tag, conv, i in plan}


def _online(_value: Any) -> dict[str, Any]:
    return {"vr": "CS", "Value": ["ONLINE"]}


_INT_VRS = frozenset({"IS", "US", "UL", "SS", "SL"})


def _converter(vr: str) -> Converter:
    """:func:`element` for one VR with the VR's branches decided up front.

    Same output as ``element(vr, value)`` (tests/archive/test_qido_render.py);
    a study-list page calls it 1,400 times.
    """
    if vr == "PN":

        def pn(value: Any) -> dict[str, Any]:
            if value is None or value == "":
                return {"vr": vr}
            return {"vr": vr, "Value": [{"Alphabetic": str(value)}]}

        return pn
    if vr in _INT_VRS:

        def number(value: Any) -> dict[str, Any]:
            if value is None or value == "":
                return {"vr": vr}
            return {"vr": vr, "Value": [int(value)]}

        return number

    def other(value: Any) -> dict[str, Any]:
        if value is None or value == "":
            return {"vr": vr}
        if isinstance(value, str) and "\\" in value:
            if vr == "CS" and value.startswith("\\"):
                return {"vr": vr, "Value": [v for v in value.split("\\") if v]}
            return {"vr": vr, "Value": value.split("\\")}
        return {"vr": vr, "Value": [value]}

    return other


def element(vr: str, value: Any) -> dict[str, Any]:
    """One DICOM JSON element from an index value (empty values have no Value)."""
    if value is None or value == "":
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(value)}]}
    if vr in ("IS", "US", "UL", "SS", "SL"):
        return {"vr": vr, "Value": [int(value)]}
    if vr == "CS" and isinstance(value, str) and value.startswith("\\"):
        return {"vr": vr, "Value": [v for v in value.split("\\") if v]}
    if isinstance(value, str) and "\\" in value:
        return {"vr": vr, "Value": value.split("\\")}
    return {"vr": vr, "Value": [value]}


def _add_from_metadata(
    session: Session,
    query: Query,
    rows: Sequence[Any],
    items: list[dict[str, Any]],
    extra: list[str],
) -> None:
    """Fill includefield attributes the index has no column for from a stored instance."""
    if not rows:
        return
    if query.level == "instance":
        pks = [row[0] for row in rows]
        blobs = dict(
            session.execute(
                select(Instance.pk, Instance.metadata_json).where(
                    _in_pks(session, Instance.pk, pks)
                )
            ).all()
        )
        metas = [blobs.get(pk) for pk in pks]
    else:
        col = Instance.study_pk if query.level == "study" else Instance.series_pk
        pks = [row[0] for row in rows]
        first = (
            select(col.label("parent"), func.min(Instance.pk).label("ipk"))
            .where(_in_pks(session, col, pks))
            .group_by(col)
            .subquery()
        )
        blobs = dict(
            session.execute(
                select(first.c.parent, Instance.metadata_json).join(
                    Instance, Instance.pk == first.c.ipk
                )
            ).all()
        )
        metas = [blobs.get(pk) for pk in pks]
    for item, blob in zip(items, metas, strict=True):
        if blob is None:
            continue
        attrs = orjson.loads(zlib.decompress(blob))
        if query.include_all:
            for tag, value in attrs.items():
                if tag not in item and "BulkDataURI" not in value:
                    item[tag] = value
        for tag in extra:
            if tag in attrs and tag not in item:
                item[tag] = attrs[tag]
            elif tag not in item:
                item[tag] = {"vr": _vr(tag)}
        item_sorted = dict(sorted(item.items()))
        item.clear()
        item.update(item_sorted)


def _in_pks(session: Session, col: Any, pks: list[int]) -> ColumnElement[bool]:
    """``col IN (pks)``; on PostgreSQL as ``= ANY(array)``, one parameter.

    101 separate parameters made a new SQL text per page size that psycopg
    re-parsed on every request and could not prepare; one array parameter
    keeps the statement text fixed (prepared after a few runs).
    """
    if session.get_bind().dialect.name == "postgresql":
        return col == any_(bindparam("pks", pks, type_=ARRAY(Integer)))
    return col.in_(pks)


def _vr(tag: str) -> str:
    try:
        return str(dictionary_VR(int(tag, 16))).split(" or ")[0]
    except KeyError:
        return "UN"
