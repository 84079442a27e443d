"""Anatomic regions as SNOMED CT codes, and free text normalised to them.

The region list is DICOM CID 4031 (Common Anatomic Regions) as pydicom ships
it, plus brain and liver (CID 4030 codes, not in 4031) because trials name them
constantly. Header text is matched against each region's English meaning, the
Body Part Examined defined terms (PS3.16 Annex L) and a hand-kept list of
abbreviations and French, German, Spanish, Italian and Portuguese words, so
"GENOU", "Knie" and "rodilla" all become Knee (SCT 72696002).

Regions form a small containment hierarchy (brain inside head, shoulder inside
upper limb inside extremity) so "HEAD" coil evidence is compatible with an
expected brain, and a detected knee conflicts with an expected shoulder.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from pydicom.sr.codedict import codes


@dataclass(frozen=True, slots=True)
class Region:
    keyword: str  # pydicom's keyword, e.g. "Knee"
    code: str  # SNOMED CT concept id
    meaning: str

    def __str__(self) -> str:
        return f"{self.meaning} (SCT {self.code})"


# Regions trials use that CID 4031 lacks (CID 4030 / SNOMED CT codes).
_EXTRA = {"Brain": ("12738006", "Brain"), "Liver": ("10200004", "Liver")}

# keyword -> the coarser regions that contain it (transitively closed in ancestors()).
_PARENTS: dict[str, tuple[str, ...]] = {
    "Brain": ("Head",), "Skull": ("Head",), "InternalAuditoryCanal": ("Head",),
    "Eye": ("Head",), "EyeRegion": ("Head",), "OrbitalStructure": ("Head",),
    "SellaTurcica": ("Head",), "FacialBones": ("Head",), "ParanasalSinus": ("Head",),
    "Mandible": ("Head",), "Maxilla": ("Head",), "MastoidBone": ("Head",),
    "TemporomandibularJoint": ("Head",), "NasalBone": ("Head",), "Zygoma": ("Head",),
    "JawRegion": ("Head",), "OpticCanal": ("Head",), "ParotidGland": ("HeadAndNeck",),
    "Head": ("HeadAndNeck",), "Neck": ("HeadAndNeck",), "Larynx": ("Neck",),
    "Shoulder": ("UpperLimb",), "AcromioclavicularJoint": ("Shoulder",),
    "Scapula": ("Shoulder",), "Clavicle": ("Shoulder",), "Humerus": ("UpperLimb",),
    "UpperArm": ("UpperLimb",), "ElbowJoint": ("UpperLimb",), "Forearm": ("UpperLimb",),
    "WristJoint": ("UpperLimb",), "Hand": ("UpperLimb",), "Finger": ("Hand",),
    "Thumb": ("Hand",), "BoneOfUpperLimb": ("UpperLimb",), "MuscleOfUpperLimb": ("UpperLimb",),
    "UpperLimb": ("Extremity",),
    "Knee": ("LowerLimb",), "Patella": ("Knee",), "Femur": ("LowerLimb",),
    "Thigh": ("LowerLimb",), "LowerLeg": ("LowerLimb",), "Fibula": ("LowerLeg",),
    "AnkleJoint": ("LowerLimb",), "Foot": ("LowerLimb",), "Toe": ("Foot",),
    "Calcaneus": ("Foot",), "TarsalJoint": ("Foot",), "SesamoidBonesOfFoot": ("Foot",),
    "BoneOfLowerLimb": ("LowerLimb",), "MuscleOfLowerLimb": ("LowerLimb",),
    "Hip": ("LowerLimb", "Pelvis"), "HipJoint": ("Hip",), "LowerLimb": ("Extremity",),
    "Prostate": ("Pelvis",), "Bladder": ("Pelvis",), "Rectum": ("Pelvis",),
    "Anus": ("Pelvis",), "Urethra": ("Pelvis",), "UterusAndFallopianTubes": ("Pelvis",),
    "Sacrum": ("Pelvis",), "Coccyx": ("Pelvis",), "Ilium": ("Pelvis",),
    "SacroiliacJoint": ("Pelvis",),
    "Pelvis": ("AbdomenAndPelvis",), "Abdomen": ("AbdomenAndPelvis", "ChestAndAbdomen"),
    "Liver": ("LiverAndBiliaryStructure",), "LiverAndBiliaryStructure": ("Abdomen",),
    "Pancreas": ("Abdomen",), "Stomach": ("Abdomen",), "Gallbladder": ("Abdomen",),
    "Duodenum": ("Abdomen",), "SmallIntestine": ("Abdomen",), "Colon": ("Abdomen",),
    "UpperUrinaryTract": ("Abdomen",), "BileDuct": ("Abdomen",), "BiliaryTract": ("Abdomen",),
    "Chest": ("ChestAndAbdomen", "NeckAndChest"), "Heart": ("Chest",),
    "Mediastinum": ("Chest",), "Breast": ("Chest",), "Rib": ("Chest",), "Sternum": ("Chest",),
    "ApexOfLung": ("Chest",), "Bronchus": ("Chest",), "Trachea": ("Chest",),
    "Esophagus": ("Chest",),
    "CervicalSpine": ("Spine",), "ThoracicSpine": ("Spine",), "LumbarSpine": ("Spine",),
    "CervicoThoracicSpine": ("Spine",), "ThoracoLumbarSpine": ("Spine",),
    "LumboSacralSpine": ("Spine",), "SacroCoccygealSpine": ("Spine",),
    "AbdomenAndPelvis": ("ChestAbdomenAndPelvis",), "ChestAndAbdomen": ("ChestAbdomenAndPelvis",),
}  # fmt: skip

# Words and abbreviations (after accent folding and upper-casing) -> keyword.
_WORDS: dict[str, str] = {
    # Body Part Examined defined terms and common abbreviations
    "SHLDR": "Shoulder", "SHOULDER": "Shoulder", "SCHULTER": "Shoulder", "EPAULE": "Shoulder",
    "HOMBRO": "Shoulder", "SPALLA": "Shoulder", "OMBRO": "Shoulder", "ROTATOR CUFF": "Shoulder",
    "KNEE": "Knee", "KNIE": "Knee", "GENOU": "Knee", "RODILLA": "Knee", "GINOCCHIO": "Knee",
    "JOELHO": "Knee", "KNIEGELENK": "Knee", "MENISCUS": "Knee",
    "BRAIN": "Brain", "GEHIRN": "Brain", "HIRN": "Brain", "CERVEAU": "Brain",
    "CEREBRO": "Brain", "CERVELLO": "Brain", "ENCEFALO": "Brain", "NEURO": "Brain",
    "CRANE": "Head", "SCHADEL": "Head", "SCHAEDEL": "Head", "CRANEO": "Head", "CRANIO": "Head",
    "KOPF": "Head", "TETE": "Head", "CABEZA": "Head", "TESTA": "Head", "CABECA": "Head",
    "HEAD": "Head", "IAC": "InternalAuditoryCanal", "ORBIT": "OrbitalStructure",
    "ORBITS": "OrbitalStructure", "SINUS": "ParanasalSinus", "SINUSES": "ParanasalSinus",
    "NECK": "Neck", "HALS": "Neck", "COU": "Neck", "CUELLO": "Neck",
    "CHEST": "Chest", "THORAX": "Chest", "TORAX": "Chest", "TORACE": "Chest",
    "POITRINE": "Chest", "BRUSTKORB": "Chest", "LUNG": "Chest", "LUNGS": "Chest",
    "POUMON": "Chest", "LUNGE": "Chest", "PULMON": "Chest", "HEART": "Heart",
    "CARDIAC": "Heart", "COEUR": "Heart", "HERZ": "Heart", "CORAZON": "Heart",
    "BREAST": "Breast", "MAMMA": "Breast", "SEIN": "Breast", "MAMA": "Breast",
    "ABDOMEN": "Abdomen", "ABD": "Abdomen", "BAUCH": "Abdomen", "ABDOMINAL": "Abdomen",
    "LIVER": "Liver", "LEBER": "Liver", "FOIE": "Liver", "HIGADO": "Liver", "FEGATO": "Liver",
    "PANCREAS": "Pancreas", "PANKREAS": "Pancreas",
    "PELVIS": "Pelvis", "BECKEN": "Pelvis", "BASSIN": "Pelvis",
    "PROSTATE": "Prostate", "PROSTATA": "Prostate",
    "BLADDER": "Bladder", "RECTUM": "Rectum", "ECOIL": "Prostate", "ENDORECTAL": "Prostate",
    "SPINE": "Spine", "WIRBELSAULE": "Spine", "WIRBELSAEULE": "Spine", "RACHIS": "Spine",
    "COLUMNA": "Spine", "COLONNE": "Spine",
    "CSPINE": "CervicalSpine", "C SPINE": "CervicalSpine", "HWS": "CervicalSpine",
    "TSPINE": "ThoracicSpine", "T SPINE": "ThoracicSpine", "BWS": "ThoracicSpine",
    "LSPINE": "LumbarSpine", "L SPINE": "LumbarSpine", "LWS": "LumbarSpine",
    "LUMBAR": "LumbarSpine", "LOMBAIRE": "LumbarSpine",
    "HIP": "Hip", "HUFTE": "Hip", "HUEFTE": "Hip", "HANCHE": "Hip", "CADERA": "Hip",
    "ANCA": "Hip", "ANKLE": "AnkleJoint", "SPRUNGGELENK": "AnkleJoint",
    "CHEVILLE": "AnkleJoint", "TOBILLO": "AnkleJoint", "CAVIGLIA": "AnkleJoint",
    "FOOT": "Foot", "FUSS": "Foot", "PIED": "Foot", "PIE": "Foot",
    "ELBOW": "ElbowJoint", "ELLENBOGEN": "ElbowJoint", "COUDE": "ElbowJoint",
    "CODO": "ElbowJoint", "GOMITO": "ElbowJoint",
    "WRIST": "WristJoint", "HANDGELENK": "WristJoint", "POIGNET": "WristJoint",
    "MUNECA": "WristJoint", "POLSO": "WristJoint",
    "HAND": "Hand", "MAIN": "Hand", "MANO": "Hand",
    "TIBIA": "LowerLeg", "UNTERSCHENKEL": "LowerLeg", "JAMBE": "LowerLeg", "PIERNA": "LowerLeg",
    "FEMUR": "Femur", "OBERSCHENKEL": "Thigh", "CUISSE": "Thigh", "MUSLO": "Thigh",
    "HUMERUS": "Humerus", "OBERARM": "UpperArm", "BRAS": "UpperArm",
    "EXTREMITY": "Extremity", "EXTREMITE": "Extremity", "EXTREMITAT": "Extremity",
    "EXTREMIDAD": "Extremity",
    "WHOLEBODY": "EntireBody", "WHOLE BODY": "EntireBody", "GANZKORPER": "EntireBody",
    "CORPS ENTIER": "EntireBody", "CUERPO ENTERO": "EntireBody", "TOTAL BODY": "EntireBody",
}  # fmt: skip

_LATERALITY: dict[str, str] = {
    "RT": "R", "RIGHT": "R", "DROIT": "R", "DROITE": "R", "RECHTS": "R", "DERECHO": "R",
    "DERECHA": "R", "DESTRO": "R", "DESTRA": "R", "DX": "R",
    "LT": "L", "LEFT": "L", "GAUCHE": "L", "LINKS": "L", "IZQUIERDO": "L",
    "IZQUIERDA": "L", "SINISTRO": "L", "SINISTRA": "L", "SX": "L",
}  # fmt: skip

_SPLIT = re.compile(r"[^A-Z0-9]+")


def fold(text: str) -> str:
    """Upper case, accents removed, separators reduced to single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = plain.replace("ß", "SS").upper()
    return " ".join(t for t in _SPLIT.split(plain) if t)


@cache
def regions() -> dict[str, Region]:
    """Every known region by keyword."""
    cid = codes.CID4031
    out = {k: Region(k, getattr(cid, k).value, getattr(cid, k).meaning) for k in cid.dir()}
    for keyword, (code, meaning) in _EXTRA.items():
        out[keyword] = Region(keyword, code, meaning)
    return out


@cache
def _phrases() -> dict[str, str]:
    """Every phrase that names a region: meanings, keywords, the word list."""
    table: dict[str, str] = {}
    for kw, region in regions().items():
        table[fold(region.meaning)] = kw
        table[fold(re.sub(r"(?<!^)(?=[A-Z])", " ", kw))] = kw
    table.update({fold(k): v for k, v in _WORDS.items()})
    return table


@cache
def ancestors(keyword: str) -> frozenset[str]:
    """The region itself and every region containing it (EntireBody contains all)."""
    seen = {keyword, "EntireBody"}
    todo = list(_PARENTS.get(keyword, ()))
    while todo:
        k = todo.pop()
        if k not in seen:
            seen.add(k)
            todo.extend(_PARENTS.get(k, ()))
    return frozenset(seen)


@dataclass(frozen=True, slots=True)
class Mention:
    region: Region
    laterality: str  # "R", "L" or ""


def find(text: str) -> list[Mention]:
    """Regions named in ``text`` (longest phrases first, each word used once)."""
    words = fold(text).split()
    if not words:
        return []
    table = _phrases()
    longest = max(len(p.split()) for p in table)
    lat = ""
    for w in words:
        lat = _LATERALITY.get(w, lat)
    found: list[Mention] = []
    used = [False] * len(words)
    for size in range(min(longest, len(words)), 0, -1):
        for i in range(len(words) - size + 1):
            if any(used[i : i + size]):
                continue
            kw = table.get(" ".join(words[i : i + size]))
            if kw is not None:
                used[i : i + size] = [True] * size
                found.append(Mention(regions()[kw], lat))
    return found


def by_code(code: str) -> Region | None:
    for region in regions().values():
        if region.code == code:
            return region
    return None


@cache
def expected(term: str) -> Region:
    """A region a trial declares ("SHOULDER", "Knie", "72696002"); clear error when unknown."""
    term = term.strip()
    if term.isdigit():
        region = by_code(term)
        if region is not None:
            return region
    found = find(term)
    if not found:
        raise ValueError(
            f"unknown anatomy {term!r}: use a SNOMED CT code or a region name such as "
            "SHOULDER, KNEE, BRAIN, HEAD, CHEST, ABDOMEN, PELVIS, PROSTATE, LSPINE"
        )
    return found[0].region


@cache
def expected_laterality(term: str) -> str:
    found = find(term)
    return found[0].laterality if found else ""


def relation(detected: Region, wanted: Region) -> str:
    """``within`` (same or finer), ``coarser`` (contains it: compatible) or ``disjoint``."""
    if wanted.keyword in ancestors(detected.keyword):
        return "within"
    if detected.keyword in ancestors(wanted.keyword):
        return "coarser"
    return "disjoint"


def names(regions_: Iterable[Region]) -> str:
    return ", ".join(sorted({r.meaning for r in regions_}))
