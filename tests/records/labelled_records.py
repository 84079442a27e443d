"""A labelled set of records, generated: every PHI string and every clinical control phrase known.

Used by the tests and by ``bench/records_eval.py``. Each item carries the
patient (for the DICOM wrapper) and two lists: ``phi`` (must be gone after
de-identification) and ``keep`` (clinical phrases that must survive).
"""

from __future__ import annotations

import base64
import io
import json
import random
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
import pikepdf
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from trialpacs.records.identity import PatientIdentity

FIRST = ["John", "Maria", "Ahmed", "Chloe", "Pieter", "Yuki", "Olga", "Samuel", "Fatima", "Lucas"]
LAST = [
    "Smith",
    "Garcia",
    "Okafor",
    "Dubois",
    "Jansen",
    "Tanaka",
    "Ivanova",
    "Miller",
    "Haddad",
    "Rossi",
]
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LOINC = "http://loinc.org"
DOCTORS = ["Alice Brown", "Robert Chen", "Hannah Weiss", "Omar Farouk", "Grace Lee"]
STREETS = ["12 Elm Street", "48 Oak Avenue", "7 Harbour Road", "301 Maple Drive", "95 Station Lane"]
# Clinical text with numbers that look like IDs, dates or addresses to a careless rule.
MEASURES = [
    "Lesion 2.1 x 1.8 cm, unchanged since 2023.",
    "Nodule at 12 o'clock, 4 cm from the nipple.",
    "Segment 7 lesion 14 mm; series 3 image 45.",
    "Follow-up CT in 3 months per RECIST 1.1.",
]
FINDINGS = [
    "The liver is normal in size and echotexture.",
    "No focal lesion is identified in the pancreas.",
    "Mild degenerative change of the lumbar spine.",
    "Stable post-operative appearance of the left knee.",
    "No pleural effusion or pneumothorax.",
    "Target lesion measures 14 mm, previously 18 mm.",
]


@dataclass
class Item:
    name: str
    format: str
    data: bytes
    patient: PatientIdentity
    phi: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    # PHI the rules are not expected to find (a name with no cue); the bench counts it,
    # the tests tolerate it.
    hard: list[str] = field(default_factory=list)
    source_text: str = ""  # the report as written (for word-level precision)


@dataclass
class Person:
    first: str
    last: str
    mrn: str
    birth: str  # YYYYMMDD
    street: str
    phone: str
    doctor: str

    @property
    def dicom_name(self) -> str:
        return f"{self.last.upper()}^{self.first.upper()}"

    @property
    def us_birth(self) -> str:
        return f"{self.birth[4:6]}/{self.birth[6:]}/{self.birth[:4]}"

    def identity(self) -> PatientIdentity:
        return PatientIdentity(self.mrn, self.dicom_name, self.birth, "F")


def person(rng: random.Random) -> Person:
    return Person(
        first=rng.choice(FIRST),
        last=rng.choice(LAST),
        mrn=f"MRN{rng.randint(100000, 999999)}",
        birth=f"{rng.randint(1940, 1995)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        street=rng.choice(STREETS),
        phone=f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
        doctor=rng.choice(DOCTORS),
    )


def _long_date(yyyymmdd: str) -> str:
    months = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]  # fmt: skip
    return f"{int(yyyymmdd[6:])} {months[int(yyyymmdd[4:6]) - 1]} {yyyymmdd[:4]}"


def report_lines(p: Person, rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """Report text lines, the PHI in them (as written), the control phrases.

    Spellings vary on purpose (cue words or none, name order, date formats,
    signatures), so the set holds cases the rules miss as well as ones they catch.
    """
    finding = rng.sample(FINDINGS, 2)
    name_forms = [
        (f"Patient: {p.first} {p.last}   MRN: {p.mrn}", [f"{p.first} {p.last}", p.mrn]),
        (f"Name: {p.last.upper()}, {p.first}   Hospital no. {p.mrn}",
         [f"{p.last.upper()}, {p.first}", p.mrn]),
        (f"Pt {p.first} {p.last} (ID {p.mrn})", [f"{p.first} {p.last}", p.mrn]),
    ]  # fmt: skip
    birth_forms = [p.us_birth, f"{p.birth[:4]}-{p.birth[4:6]}-{p.birth[6:]}", _long_date(p.birth)]
    sign_forms = [
        (f"Reported by Dr. {p.doctor}, phone {p.phone}", [p.doctor, p.phone]),
        (f"Electronically signed: {p.doctor}, MD. Tel {p.phone}", [p.doctor, p.phone]),
        (f"Dictated by {p.doctor} ({p.phone})", [p.doctor, p.phone]),
    ]
    email = f"{p.first.lower()}.{p.last.lower()}@example.org"
    name_line, name_phi = rng.choice(name_forms)
    birth = rng.choice(birth_forms)
    sign_line, sign_phi = rng.choice(sign_forms)
    cc = rng.choice([d for d in DOCTORS if d != p.doctor])
    measure = rng.choice(MEASURES)
    lines = [
        "RADIOLOGY REPORT",
        name_line,
        f"DOB: {birth}   Address: {p.street}, Springfield",
        f"Contact: {email}",
        f"Findings: {finding[0]}",
        f"Impression: {finding[1]}",
        f"Measurements: {measure}",
        sign_line,
        f"cc: {cc}",
    ]
    phi = [*name_phi, birth, p.street, "Springfield", email, *sign_phi, cc]
    return lines, phi, [*finding, measure]


def text_pdf(p: Person, rng: random.Random) -> Item:
    lines, phi, keep = report_lines(p, rng)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.setTitle(f"Report {p.first} {p.last}")
    c.setAuthor(f"Dr. {p.doctor}")
    c.setSubject(p.mrn)
    c.setFont("Helvetica", 11)
    y = 780
    for line in lines:
        c.drawString(60, y, line)
        y -= 22
    c.showPage()
    c.save()
    text = "\n".join(lines)
    return Item("text-pdf", "pdf", buf.getvalue(), p.identity(), phi, keep, phi[-1:], text)


def _render(
    lines: list[str], size: tuple[int, int] = (900, 420), font_size: int = 24
) -> Image.Image:
    img = Image.new("RGB", size, (250, 250, 248))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=font_size)
    y = 20
    for line in lines:
        d.text((24, y), line, font=font, fill=(20, 20, 20))
        y += int(font_size * 1.7)
    return img


def scanned_pdf(p: Person, rng: random.Random) -> Item:
    """A scanned page: the report is an image, there is no text layer."""
    lines, phi, keep = report_lines(p, rng)
    img = _render(lines)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.drawImage(ImageReader(img), 40, 420, width=515, height=240)
    c.showPage()
    c.save()
    text = "\n".join(lines)
    return Item("scanned-pdf", "pdf", buf.getvalue(), p.identity(), phi, keep, phi[-1:], text)


def inline_image_pdf(p: Person, rng: random.Random) -> Item:
    """A report pasted as an inline image (BI … ID … EI) under a clinical text line."""
    lines, phi, keep = report_lines(p, rng)
    img = _render(lines)
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.setFont("Helvetica", 11)
    c.drawString(60, 780, "Clinical summary attached below.")
    c.drawInlineImage(img, 40, 420, width=515, height=240)
    c.showPage()
    c.save()
    text = "\n".join(lines)
    return Item("inline-image-pdf", "pdf", buf.getvalue(), p.identity(), phi, keep, phi[-1:], text)


_TO_UNICODE = (
    b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap "
    b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def "
    b"/CMapName /TP-UCS def /CMapType 2 def 1 begincodespacerange <00> <FF> endcodespacerange "
    b"1 beginbfrange <20> <FF> <0020> endbfrange endcmap "
    b"CMapName currentdict /CMap defineresource pop end end"
)


def _type3_font(pdf: pikepdf.Pdf, decodable: bool) -> pikepdf.Object:
    """A Type3 font whose glyph procedures paint 1-bit image masks of a bitmap font.

    Glyph names are private (/g65 …): with ``decodable`` a ToUnicode CMap says
    which character each code draws, without it nothing does (as in PDFs
    from some report writers and TeX bitmap fonts).
    """
    font = ImageFont.load_default(size=40)
    prefix = "g" if decodable else "T3glyph"  # pdfminer reads some names like gNN as codes
    procs = pikepdf.Dictionary()
    widths = []
    for code in range(32, 256):
        ch = bytes([code]).decode("latin-1")
        adv = max(int(font.getlength(ch)), 10)
        img = Image.new("L", (adv, 50), 255)
        ImageDraw.Draw(img).text((0, 2), ch, font=font, fill=0)
        bits = img.point(lambda v: 255 if v > 128 else 0).convert("1").tobytes()
        units = adv * 20  # 50 px = 1000 glyph units
        proc = (
            (
                f"{units} 0 0 -200 {units} 800 d1 q {units} 0 0 1000 0 -200 cm "
                f"BI /IM true /W {adv} /H 50 /BPC 1 /F /AHx ID "
            ).encode()
            + bits.hex().encode()
            + b"> EI Q"
        )
        procs[f"/{prefix}{code}"] = pdf.make_stream(proc)
        widths.append(units)
    font_dict = pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.Type3,
        FontBBox=[0, -200, 2000, 800],
        FontMatrix=[0.001, 0, 0, 0.001, 0, 0],
        CharProcs=procs,
        Encoding=pikepdf.Dictionary(
            Type=pikepdf.Name.Encoding,
            Differences=pikepdf.Array(
                [32, *[pikepdf.Name(f"/{prefix}{c}") for c in range(32, 256)]]
            ),
        ),
        FirstChar=32,
        LastChar=255,
        Widths=widths,
        Resources=pikepdf.Dictionary(),
    )
    if decodable:
        font_dict.ToUnicode = pdf.make_stream(_TO_UNICODE)
    return pdf.make_indirect(font_dict)


def type3_pdf(p: Person, rng: random.Random, decodable: bool = True) -> Item:
    """The report set in a Type3 font (decodable: with a ToUnicode CMap)."""
    lines, phi, keep = report_lines(p, rng)
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(595, 842))
    page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F3=_type3_font(pdf, decodable)))
    body = [b"BT /F3 11 Tf 60 780 Td 22 TL"]
    for line in lines:
        raw = line.encode("latin-1", "replace")
        esc = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        body.append(b"(" + esc + b") Tj T*")
    body.append(b"ET")
    page.obj.Contents = pdf.make_stream(b"\n".join(body))
    buf = io.BytesIO()
    pdf.save(buf)
    kind = "type3-pdf" if decodable else "type3-raster-pdf"
    text = "\n".join(lines)
    return Item(kind, "pdf", buf.getvalue(), p.identity(), phi, keep, phi[-1:], text)


def type3_undecodable_pdf(p: Person, rng: random.Random) -> Item:
    return type3_pdf(p, rng, decodable=False)


def hl7(p: Person, rng: random.Random) -> Item:
    lines, phi_lines, keep = report_lines(p, rng)
    narrative = [*lines[4:], f"Patient {p.first} {p.last} seen on {p.us_birth}."]
    obx = "\r".join(f"OBX|{i + 1}|TX|IMP^Impression||{t}||||||F" for i, t in enumerate(narrative))
    msg = (
        "MSH|^~\\&|RIS|General Hospital|TP|TP|20240305120000||ORU^R01|MSG0001|P|2.5.1\r"
        f"PID|1||{p.mrn}^^^HOSP^MR||{p.last.upper()}^{p.first.upper()}||{p.birth}|F|||"
        f"{p.street}^^Springfield^IL^62701||{p.phone}\r"
        f"NK1|1|{p.last.upper()}^ROSE|MTH|{p.street}|555-000-1111\r"
        f"PV1|1|O|RAD^1^2||||1234^{p.doctor.split()[1].upper()}^{p.doctor.split()[0].upper()}\r"
        "OBR|1|ORD1|FIL1|71020^CHEST XRAY||20240305|20240305110000\r" + obx + "\r"
    )
    phi = [p.mrn, p.last.upper(), p.street, p.phone, p.doctor, f"{p.first} {p.last}", p.birth]
    phi += [x for x in phi_lines if x not in phi and x in "\n".join(narrative)]
    phi.append(p.us_birth)  # the visit sentence
    text = "\n".join(narrative)
    return Item("hl7", "hl7v2", msg.encode(), p.identity(), phi, keep, phi_lines[-1:], text)


def fhir_bundle(p: Person, rng: random.Random) -> Item:
    lines, phi_lines, keep = report_lines(p, rng)
    report_text = "\n".join(lines[1:])
    bundle = {
        "resourceType": "Bundle",
        "id": "b1",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:8c1f6d1e-0000-4000-8000-000000000001",
                "resource": {
                    "resourceType": "Patient",
                    "id": "pat1",
                    "identifier": [
                        {
                            "type": {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                        "code": "MR",
                                    }
                                ]
                            },
                            "system": "urn:oid:1.2.3.4",
                            "value": p.mrn,
                        }
                    ],
                    "name": [{"family": p.last, "given": [p.first]}],
                    "telecom": [{"system": "phone", "value": p.phone}],
                    "address": [{"line": [p.street], "city": "Springfield", "postalCode": "62701"}],
                    "gender": "female",
                    "birthDate": f"{p.birth[:4]}-{p.birth[4:6]}-{p.birth[6:]}",
                },
            },
            {
                "resource": {
                    "resourceType": "Practitioner",
                    "id": "doc1",
                    "name": [{"family": p.doctor.split()[1], "given": [p.doctor.split()[0]]}],
                }
            },
            {
                "resource": {
                    "resourceType": "DiagnosticReport",
                    "id": "rep1",
                    "status": "final",
                    "identifier": [{"value": "ACC998877"}],
                    "code": {
                        "coding": [
                            {"system": "http://loinc.org", "code": "24627-2", "display": "Chest CT"}
                        ]
                    },
                    "subject": {"reference": "Patient/pat1", "display": f"{p.first} {p.last}"},
                    "performer": [{"reference": "Practitioner/doc1", "display": f"Dr. {p.doctor}"}],
                    "effectiveDateTime": "2024-03-05T11:00:00Z",
                    "issued": "2024-03-05T12:00:00Z",
                    "conclusion": f"{keep[1]} Discussed with {p.first} {p.last}.",
                    "presentedForm": [
                        {
                            "contentType": "text/plain",
                            "data": base64.b64encode(report_text.encode()).decode(),
                        }
                    ],
                },
            },
        ],
    }
    phi = [p.mrn, p.phone, p.street, f"{p.first} {p.last}", p.doctor, "ACC998877", "pat1"]
    phi += [x for x in phi_lines if x not in phi]
    data = json.dumps(bundle).encode()
    text = "\n".join(lines[1:])
    return Item("fhir", "fhir", data, p.identity(), phi, keep, phi_lines[-1:], text)


def video_clip(
    p: Person, rng: random.Random, frames: int = 40, size: tuple[int, int] = (320, 240)
) -> Item:
    """An endoscopy-like clip: a moving organ, a name/ID overlay, a running date-time, audio."""
    font = ImageFont.load_default(size=16)
    buf = io.BytesIO()
    w, h = size
    with av.open(buf, "w", format="mp4") as c:
        c.metadata["title"] = f"{p.first} {p.last} procedure"
        c.metadata["comment"] = p.mrn
        s = c.add_stream("libx264", rate=Fraction(25))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        a = c.add_stream("aac", rate=22050)
        a.layout = "mono"
        for i in range(frames):
            img = Image.new("RGB", size, (110, 30, 35))
            d = ImageDraw.Draw(img)
            d.ellipse((70 + i, 50, 230 + i, 190), fill=(205, 120, 95))
            d.text((8, 6), f"{p.last.upper()} {p.first.upper()}", font=font, fill=(255, 255, 255))
            d.text((w - 110, 6), p.mrn, font=font, fill=(255, 255, 255))
            d.text((8, h - 24), f"2024-03-05 10:15:{i // 25:02d}", font=font, fill=(255, 255, 0))
            frame = av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")
            frame.pts = i
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
        samples = np.zeros((1, 22050 * frames // 25), dtype=np.float32)
        af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        af.sample_rate = 22050
        for pkt in a.encode(af):
            c.mux(pkt)
        for pkt in a.encode():
            c.mux(pkt)
    phi = [p.last.upper(), p.first.upper(), p.mrn]
    return Item("video", "video", buf.getvalue(), p.identity(), phi, [])


def labelled_set(n: int = 4, seed: int = 12, videos: int = 1) -> list[Item]:
    rng = random.Random(seed)
    items: list[Item] = []
    for _ in range(n):
        for make in (
            text_pdf,
            scanned_pdf,
            inline_image_pdf,
            type3_pdf,
            type3_undecodable_pdf,
            hl7,
            fhir_bundle,
        ):
            items.append(make(person(rng), rng))
    for _ in range(videos):
        items.append(video_clip(person(rng), rng))
    return items
