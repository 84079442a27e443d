"""Parse a configuration file keeping line numbers, then validate it.

PyYAML's composer gives nodes with positions; we build plain values from
them and remember the line of every path, so both pydantic's errors and our
own cross-reference checks can point at ``file:line`` with a hint.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from trialpacs.config import schema
from trialpacs.config.schema import ConfigDoc

PathKey = tuple[str | int, ...]
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class _Doc:
    file: str
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line(self, path: PathKey) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


def load_file(path: Path, *, server_region: str = "local", server_ae: str = "") -> ConfigDoc:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), 1, f"cannot read the file: {exc}")]) from exc
    return load_text(text, str(path), server_region=server_region, server_ae=server_ae)


def load_text(
    text: str, file: str = "<config>", *, server_region: str = "local", server_ae: str = ""
) -> ConfigDoc:
    doc = _Doc(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [Problem(file, line, f"not valid YAML: {problem}", "check indentation and quoting")]
        ) from None
    if node is None:
        data: Any = {}
    else:
        problems: list[Problem] = []
        data = _value(node, (), doc, problems)
        if problems:
            raise ConfigError(problems)
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem(file, doc.line(()), "the file must be a mapping", "start with `trials:`")]
        )
    try:
        config = ConfigDoc.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(exc, doc)) from None
    problems = check_references(config, doc, server_region=server_region, server_ae=server_ae)
    if problems:
        raise ConfigError(problems)
    return config


def _value(node: yaml.Node, path: PathKey, doc: _Doc, problems: list[Problem]) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            key_text = str(key)
            if key_text in out:
                problems.append(
                    Problem(
                        doc.file,
                        key_node.start_mark.line + 1,
                        f"key {key_text!r} appears twice in one mapping",
                        "remove one of them",
                    )
                )
            doc.lines[(*path, key_text)] = key_node.start_mark.line + 1
            out[key_text] = _value(value_node, (*path, key_text), doc, problems)
            doc.lines[(*path, key_text)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_value(item, (*path, i), doc, problems) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    constructor = yaml.constructor.SafeConstructor()
    return constructor.construct_object(node, deep=True)


def _model_at(path: PathKey) -> type[BaseModel] | None:
    """The model that the last mapping on ``path`` is validated against."""
    model: type[BaseModel] | None = ConfigDoc
    for part in path:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _inner_model(info.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _pydantic_problems(exc: ValidationError, doc: _Doc) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc: PathKey = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        kind = err["type"]
        hint = ""
        if kind == "extra_forbidden":
            model = _model_at(loc[:-1])
            known = sorted(model.model_fields) if model else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            hint += f"known keys: {', '.join(known)}"
            message = f"{where}: unknown key"
        elif kind == "missing":
            message = f"{where}: required key is missing"
            hint = f"add `{loc[-1]}:` here"
        elif kind in ("literal_error", "enum"):
            message = f"{where}: {err['msg']}"
            hint = "use one of the listed values"
        else:
            message = f"{where}: {err['msg']}"
            hint = _type_hint(kind)
        problems.append(Problem(doc.file, doc.line(loc), message, hint))
    return problems


def _type_hint(kind: str) -> str:
    if kind.startswith("list"):
        return "write a YAML list (`- item` lines or `[a, b]`)"
    if kind in ("model_type", "dict_type"):
        return "write a mapping (`key: value` lines)"
    if kind.startswith("string_pattern"):
        return "letters, digits, dot, dash and underscore only"
    if kind.startswith("string_too"):
        return "shorten or lengthen the value"
    return ""


def _dupes(items: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    out = []
    for i, key in items:
        if key in seen:
            out.append((i, key))
        seen.add(key)
    return out


def check_references(
    c: ConfigDoc, doc: _Doc | None = None, *, server_region: str = "local", server_ae: str = ""
) -> list[Problem]:
    """Cross-references, uniqueness and the residency rule, each with its line."""
    doc = doc or _Doc("<config>")
    problems: list[Problem] = []

    def add(path: PathKey, message: str, hint: str = "") -> None:
        problems.append(Problem(doc.file, doc.line(path), message, hint))

    def suggest(value: str, known: Iterable[str], what: str) -> str:
        names = sorted(set(known))
        close = difflib.get_close_matches(value, names, n=1)
        text = f"did you mean {close[0]!r}? " if close else ""
        return text + (f"known {what}: {', '.join(names)}" if names else f"declare the {what}")

    for section, key in (
        ("regions", "id"),
        ("storage_backends", "name"),
        ("profiles", "name"),
        ("sites", "id"),
        ("trials", "id"),
        ("roles", "name"),
    ):
        values = [(i, str(getattr(x, key))) for i, x in enumerate(getattr(c, section))]
        for i, dup in _dupes(values):
            add((section, i, key), f"{section}: {dup!r} is declared twice", "names must be unique")

    regions = {r.id for r in c.regions} | {server_region}
    backends = {b.name: b for b in c.storage_backends}
    for i, b in enumerate(c.storage_backends):
        if b.name in ("published", "quarantine"):
            add(
                ("storage_backends", i, "name"),
                f"backend name {b.name!r} is built in",
                "choose another name",
            )
        if b.region not in regions:
            add(
                ("storage_backends", i, "region"),
                f"backend {b.name!r}: unknown region {b.region!r}",
                suggest(b.region, regions, "regions"),
            )
        if b.kind == "local" and not b.path:
            add(("storage_backends", i), f"backend {b.name!r}: a local backend needs `path`")
        if b.kind == "s3" and not b.bucket:
            add(("storage_backends", i), f"backend {b.name!r}: an s3 backend needs `bucket`")

    _check_profiles(c, doc, add)

    ae_owner: dict[str, str] = {}

    def claim_ae(path: PathKey, title: str, owner: str) -> None:
        if not _AE_RE.match(title) or title != title.strip():
            add(path, f"invalid AE title {title!r}", "1-16 printable ASCII, no backslash")
            return
        if server_ae and title == server_ae:
            add(path, f"AE title {title!r} is the archive's own AE title", "choose another one")
        if title in ae_owner:
            add(path, f"AE title {title!r} is already used by {ae_owner[title]}", "use another")
        ae_owner[title] = owner

    sites = {s.id: s for s in c.sites}
    for i, s in enumerate(c.sites):
        if s.region not in regions:
            add(
                ("sites", i, "region"),
                f"site {s.id!r}: unknown region {s.region!r}",
                suggest(s.region, regions, "regions"),
            )
        if s.identified_backend is not None:
            sb = backends.get(s.identified_backend)
            if s.identified_backend == "quarantine" and s.region != server_region:
                add(
                    ("sites", i, "identified_backend"),
                    f"site {s.id!r} is in region {s.region!r}; the built-in quarantine is in "
                    f"{server_region!r}",
                    "use an identified backend of the site's region",
                )
            elif sb is None and s.identified_backend != "quarantine":
                add(
                    ("sites", i, "identified_backend"),
                    f"site {s.id!r}: unknown backend {s.identified_backend!r}",
                    suggest(s.identified_backend, backends, "backends"),
                )
            elif sb is not None and sb.purpose != "identified":
                add(
                    ("sites", i, "identified_backend"),
                    f"site {s.id!r}: backend {sb.name!r} is for de-identified data",
                    "point it at a backend with `purpose: identified`",
                )
            elif sb is not None and sb.region != s.region:
                add(
                    ("sites", i, "identified_backend"),
                    f"site {s.id!r} is in region {s.region!r} but backend {sb.name!r} is in "
                    f"{sb.region!r}: identified data may not leave its site's region",
                    "use an identified backend of the site's region",
                )
        elif s.region != server_region:
            add(
                ("sites", i),
                f"site {s.id!r} is in region {s.region!r} and has no identified_backend; the "
                f"built-in quarantine is in {server_region!r}",
                "set `identified_backend:` to a backend in the site's region",
            )
        for j, ae in enumerate(s.aes):
            claim_ae(("sites", i, "aes", j, "ae_title"), ae.ae_title, f"site {s.id}")

    profiles = {p.name for p in c.profiles} | {"basic", "trial"}
    for i, t in enumerate(c.trials):
        if t.profile not in profiles:
            add(
                ("trials", i, "profile"),
                f"trial {t.id!r}: unknown profile {t.profile!r}",
                suggest(t.profile, profiles, "profiles"),
            )
        for j, r in enumerate(t.deid_regions):
            if r not in regions:
                add(
                    ("trials", i, "deid_regions", j),
                    f"trial {t.id!r}: unknown region {r!r}",
                    suggest(r, regions, "regions"),
                )
        deid_backends = [b.name for b in c.storage_backends if b.purpose == "deidentified"]
        for j, name in enumerate(t.publish_to):
            where_to: PathKey = ("trials", i, "publish_to", j)
            target = backends.get(name)
            if target is None:
                hint = suggest(name, deid_backends, "de-identified backends")
                add(where_to, f"trial {t.id!r}: unknown backend {name!r}", hint)
            elif target.purpose != "deidentified":
                hint = "publish only to a backend with `purpose: deidentified`"
                add(where_to, f"trial {t.id!r}: backend {name!r} is for identified data", hint)
            elif target.region not in t.deid_regions:
                allowed = ", ".join(t.deid_regions) or "none"
                add(
                    where_to,
                    f"trial {t.id!r} may not publish to {name!r} in region "
                    f"{target.region!r}: its deid_regions are {allowed}",
                    f"add {target.region!r} to deid_regions or pick a backend there",
                )
        if t.ae_title:
            claim_ae(("trials", i, "ae_title"), t.ae_title, f"trial {t.id}")
        for j, ts in enumerate(t.sites):
            if ts.site not in sites:
                add(
                    ("trials", i, "sites", j, "site"),
                    f"trial {t.id!r}: unknown site {ts.site!r}",
                    suggest(ts.site, sites, "sites"),
                )
            if ts.ae_title:
                claim_ae(("trials", i, "sites", j, "ae_title"), ts.ae_title, f"{t.id}/{ts.site}")
        for k, dup in _dupes([(j, ts.site) for j, ts in enumerate(t.sites)]):
            add(("trials", i, "sites", k), f"trial {t.id!r}: site {dup!r} listed twice")
        for k, dup in _dupes([(j, tp.id) for j, tp in enumerate(t.timepoints)]):
            add(("trials", i, "timepoints", k), f"trial {t.id!r}: time point {dup!r} listed twice")
        _check_windows(t, i, add)

    trial_ids = {t.id for t in c.trials}
    for i, role in enumerate(c.roles):
        for j, tid in enumerate(role.trials):
            if tid not in trial_ids:
                where: PathKey = ("roles", i, "trials", j)
                hint = suggest(tid, trial_ids, "trials")
                add(where, f"role {role.name!r}: unknown trial {tid!r}", hint)
        for j, sid in enumerate(role.phi_sites):
            if sid not in sites:
                hint = suggest(sid, sites, "sites")
                add(("roles", i, "phi_sites", j), f"role {role.name!r}: unknown site {sid!r}", hint)
    return problems


def _check_windows(t: Any, i: int, add: Any) -> None:
    """Rule windows must be ranges and must not overlap: a date picks one visit or none."""
    seen: list[tuple[int, int, str]] = []
    for j, tp in enumerate(t.timepoints):
        if tp.window_days is None:
            continue
        lo, hi = tp.window_days
        where = ("trials", i, "timepoints", j, "window_days")
        if lo > hi:
            message = f"trial {t.id!r}: time point {tp.id!r} window [{lo}, {hi}] is empty"
            add(where, message, "write it as [first day, last day]")
            continue
        for olo, ohi, other in seen:
            if lo <= ohi and olo <= hi:
                message = (
                    f"trial {t.id!r}: time point {tp.id!r} window [{lo}, {hi}] overlaps "
                    f"{other!r} [{olo}, {ohi}]"
                )
                add(where, message, "make the day windows disjoint")
        seen.append((lo, hi, tp.id))


def _check_profiles(c: ConfigDoc, doc: _Doc, add: Any) -> None:
    """Build each profile with the deid library, so a bad one fails here, not in a job."""
    from trialpacs.config.profiles import build_profile
    from trialpacs.errors import TrialpacsError

    defined = {p.name: p for p in c.profiles}
    for i, p in enumerate(c.profiles):
        try:
            build_profile(p.name, defined)
        except TrialpacsError as exc:
            add(("profiles", i), f"profile {p.name!r}: {exc}", "see docs/deid.md for profile keys")


__all__ = ["ConfigError", "Problem", "check_references", "load_file", "load_text", "schema"]
