"""PDF redaction for real: PHI glyphs are removed from the content streams.

Libraries: pikepdf (MPL-2.0, qpdf) edits the file, pdfplumber/pdfminer.six
(MIT) give each glyph's text and position; PyMuPDF is AGPL and not
compatible with our Apache-2.0 licence.

How (docs/records.md):

1. pdfplumber lists the glyphs of a page in content-stream order; their
   text (with spaces and line breaks inferred from positions) goes through
   the PHI engine.
2. The page's content stream (and the Form XObjects it draws) is walked
   with the same glyph count: fonts of subtype Type0 take two bytes per
   glyph, simple fonts one. Each PHI glyph is taken out of its Tj/TJ string
   and replaced by a TJ displacement of the same advance, so the rest of the
   line stays where it was. The count must equal pdfplumber's or the file is
   refused (fail closed).
3. A black box with the replacement (subject ID, shifted date, ``[LABEL]``)
   in white Helvetica is drawn where the text was.
4. Images (scanned pages, pasted screenshots) are OCR'd with the pixel
   de-identification's engine; lines with PHI are painted black and the
   image is written back as Flate RGB. Inline images (``BI … EI``) are
   OCR'd the same way; one with PHI becomes a masked image XObject drawn
   by ``Do`` in its place.
5. Document information, XMP metadata, annotations, forms, outlines,
   embedded files, JavaScript, thumbnails and page piece info are removed.
6. A page whose glyphs do not decode to text (Type3 fonts whose glyph
   procedures have neither ToUnicode nor standard glyph names, where
   pdfminer would guess letters from the base encoding; or ``(cid:N)``)
   cannot be read by the PHI engine: it is rendered with pypdfium2
   (Apache-2.0/BSD, PDFium), OCR'd, masked and replaced by the image, like
   a scanned page; no text layer is left on it. Type3 text that decodes
   goes through steps 1-3 like any simple font (one byte per glyph).
7. Verification: the output's text layer is extracted again and must hold
   none of the record's identifying values (else the PDF is refused).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pdfplumber
import pikepdf
import pypdfium2
from numpy.typing import NDArray
from pdfminer.glyphlist import glyphname2unicode

from trialpacs.errors import InvalidInput
from trialpacs.records.phi import RecordPhi

MAX_PAGES = 2000
MIN_IMAGE_SIDE = 48  # smaller images are icons and rules, not text
OcrFn = Callable[[NDArray[np.uint8]], list[tuple[tuple[int, int, int, int], str]]]
_SHOW_OPS = frozenset({"Tj", "TJ", "'", '"'})
_FONT_NAME = pikepdf.Name("/TPRedact")


class PdfRedactionError(InvalidInput):
    """The PDF cannot be redacted safely; nothing of it may be released."""


@dataclass
class PageGlyphs:
    chars: list[dict[str, Any]]
    text: str
    index: list[int]  # text position -> char index (-1: inferred space/newline)


@dataclass
class PdfResult:
    data: bytes
    glyphs_removed: int = 0
    images_masked: int = 0
    pages_rasterised: int = 0
    spans: list[str] = field(default_factory=list)
    text: str = ""  # the output's text layer (after), for verification and the SR


def _page_text(chars: list[dict[str, Any]]) -> PageGlyphs:
    parts: list[str] = []
    index: list[int] = []
    prev: dict[str, Any] | None = None
    for i, ch in enumerate(chars):
        t = str(ch.get("text", ""))
        if prev is not None:
            size = float(ch.get("size") or 10)
            if abs(float(ch["top"]) - float(prev["top"])) > size * 0.5:
                parts.append("\n")
                index.append(-1)
            elif (
                float(ch["x0"]) - float(prev["x1"]) > size * 0.2
                and t != " "
                and prev.get("text") != " "
            ):
                parts.append(" ")
                index.append(-1)
        for c in t:
            parts.append(c)
            index.append(i)
        prev = ch
    return PageGlyphs(chars, "".join(parts), index)


class _State:
    __slots__ = ("font", "size", "tc", "th", "tw")

    def __init__(self) -> None:
        self.font: Any = None
        self.size = 1.0
        self.tc = 0.0
        self.tw = 0.0
        self.th = 1.0

    def copy(self) -> _State:
        s = _State()
        s.font, s.size, s.tc, s.tw, s.th = self.font, self.size, self.tc, self.tw, self.th
        return s


class _Walker:
    """Walks content streams in pdfminer's order, removing the glyphs it is told to."""

    def __init__(self, chars: list[dict[str, Any]], delete: set[int]) -> None:
        self.chars = chars
        self.delete = delete
        self.g = 0
        self.removed = 0

    def stream(self, operations: list[Any], resources: Any, depth: int = 0) -> list[Any]:
        if depth > 12:
            raise PdfRedactionError("PDF: Form XObjects nested too deeply")
        fonts = resources.get("/Font", {}) if resources is not None else {}
        xobjects = resources.get("/XObject", {}) if resources is not None else {}
        st = _State()
        stack: list[_State] = []
        out: list[Any] = []
        for instr in operations:
            if isinstance(instr, pikepdf.ContentStreamInlineImage):
                out.append(instr)  # kept as parsed (re-wrapping it would lose the image)
                continue
            operands, op = instr
            name = str(op)
            if name == "q":
                stack.append(st.copy())
            elif name == "Q" and stack:
                st = stack.pop()
            elif name == "Tf" and len(operands) == 2:
                st.font = fonts.get(str(operands[0])) if fonts is not None else None
                st.size = float(operands[1]) or 1.0
            elif name == "Tc" and operands:
                st.tc = float(operands[0])
            elif name == "Tw" and operands:
                st.tw = float(operands[0])
            elif name == "Tz" and operands:
                st.th = float(operands[0]) / 100.0
            elif name == "Do" and operands and xobjects is not None:
                xo = xobjects.get(str(operands[0]))
                if xo is not None and xo.get("/Subtype") == "/Form":
                    self.form(xo, resources, depth)
            if name in _SHOW_OPS:
                out.extend(self.show(operands, name, st))
                continue
            out.append(pikepdf.ContentStreamInstruction(operands, op))
        return out

    def form(self, xo: Any, parent_resources: Any, depth: int) -> None:
        res = xo.get("/Resources", parent_resources)
        ops = pikepdf.parse_content_stream(xo)
        start = self.removed
        new = self.stream(ops, res, depth + 1)
        if self.removed != start:
            xo.write(pikepdf.unparse_content_stream(new))

    def _width(self, font: Any) -> int:
        if font is not None and font.get("/Subtype") == "/Type0":
            return 2
        return 1

    def show(self, operands: list[Any], name: str, st: _State) -> list[Any]:
        if name == "TJ":
            items = list(operands[0])
        elif name == '"':
            items = [operands[2]]
        else:
            items = [operands[0]]
        width = self._width(st.font)
        new_items: list[Any] = []
        changed = False
        for item in items:
            if not isinstance(item, pikepdf.String):
                new_items.append(item)
                continue
            raw = bytes(item)
            keep = bytearray()
            for pos in range(0, len(raw), width):
                glyph = raw[pos : pos + width]
                gi = self.g
                self.g += 1
                if gi in self.delete:
                    changed = True
                    self.removed += 1
                    if keep:
                        new_items.append(pikepdf.String(bytes(keep)))
                        keep = bytearray()
                    new_items.append(self._advance(gi, glyph, st))
                else:
                    keep += glyph
            if keep:
                new_items.append(pikepdf.String(bytes(keep)))
        if not changed:
            return [pikepdf.ContentStreamInstruction(operands, pikepdf.Operator(name))]
        out: list[Any] = []
        if name == "'":
            out.append(pikepdf.ContentStreamInstruction([], pikepdf.Operator("T*")))
        elif name == '"':
            out.append(pikepdf.ContentStreamInstruction([operands[0]], pikepdf.Operator("Tw")))
            out.append(pikepdf.ContentStreamInstruction([operands[1]], pikepdf.Operator("Tc")))
            out.append(pikepdf.ContentStreamInstruction([], pikepdf.Operator("T*")))
        out.append(
            pikepdf.ContentStreamInstruction([pikepdf.Array(new_items)], pikepdf.Operator("TJ"))
        )
        return out

    def _advance(self, gi: int, glyph: bytes, st: _State) -> float:
        """The TJ number that moves as far as the removed glyph would have."""
        ch = self.chars[gi] if gi < len(self.chars) else {}
        adv = float(ch.get("adv") or 0.0)  # w0 * Tfs * Th (pdfminer)
        w0_size = adv / st.th if st.th else adv  # w0 * Tfs
        tx = w0_size + st.tc + (st.tw if len(glyph) == 1 and glyph == b" " else 0.0)
        return -tx * 1000.0 / st.size


def _spans_to_delete(
    page: PageGlyphs, phi: RecordPhi
) -> tuple[set[int], list[tuple[list[int], str]]]:
    delete: set[int] = set()
    boxes: list[tuple[list[int], str]] = []
    for start, end, repl in phi.edits(page.text):
        idx = sorted({page.index[i] for i in range(start, end) if page.index[i] >= 0})
        if not idx:
            continue
        delete.update(idx)
        boxes.append((idx, repl))
    return delete, boxes


def _escape_pdf(text: str) -> bytes:
    raw = text.encode("latin-1", "replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _overlay(
    chars: list[dict[str, Any]], boxes: list[tuple[list[int], str]], x0: float, y0: float
) -> bytes:
    """Black boxes where PHI was, each line of a span separately, replacement in white."""
    out = [b"q"]
    for idx, replacement in boxes:
        lines: dict[int, list[dict[str, Any]]] = {}
        for i in idx:
            ch = chars[i]
            lines.setdefault(round(float(ch["top"])), []).append(ch)
        first = True
        for group in lines.values():
            bx0 = min(float(c["x0"]) for c in group) + x0
            bx1 = max(float(c["x1"]) for c in group) + x0
            by0 = min(float(c["y0"]) for c in group) + y0
            by1 = max(float(c["y1"]) for c in group) + y0
            h = max(by1 - by0, 1.0)
            out.append(f"0 g {bx0:.2f} {by0:.2f} {bx1 - bx0:.2f} {h:.2f} re f".encode())
            if first and replacement:
                size = max(min(h * 0.8, 12.0), 3.0)
                fit = (bx1 - bx0) / max(len(replacement) * size * 0.5, 1.0)
                size = max(min(size, size * fit), 3.0)
                out.append(
                    b"BT 1 g /TPRedact %.2f Tf %.2f %.2f Td (%s) Tj ET"
                    % (size, bx0 + 0.5, by0 + h * 0.2, _escape_pdf(replacement))
                )
                first = False
    out.append(b"Q")
    return b"\n".join(out) + b"\n"


def _helvetica(pdf: pikepdf.Pdf) -> Any:
    return pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )


def _clean_document(pdf: pikepdf.Pdf) -> None:
    root = pdf.Root
    for key in (
        "/Metadata",
        "/Outlines",
        "/Names",
        "/OpenAction",
        "/AA",
        "/AcroForm",
        "/PieceInfo",
        "/SpiderInfo",
        "/Threads",
        "/StructTreeRoot",
        "/MarkInfo",
        "/PageLabels",
        "/Perms",
        "/Legal",
        "/URI",
    ):
        if key in root:
            del root[key]
    if "/Info" in pdf.trailer:
        del pdf.trailer["/Info"]
    for page in pdf.pages:
        for key in ("/Annots", "/Metadata", "/PieceInfo", "/Thumb", "/AA", "/B"):
            if key in page.obj:
                del page.obj[key]


def _images(page: pikepdf.Page) -> list[tuple[str, Any]]:
    out = []
    resources: Any = page.obj.get("/Resources")
    xobjects: Any = resources.get("/XObject") if resources is not None else None
    for name, xo in xobjects.items() if xobjects is not None else []:
        if xo.get("/Subtype") == "/Image":
            out.append((str(name), xo))
    return out


def _mask_image(xo: Any, ocr: OcrFn, phi: RecordPhi) -> tuple[bool, list[str]]:
    w, h = int(xo.get("/Width", 0)), int(xo.get("/Height", 0))
    if min(w, h) < MIN_IMAGE_SIDE or xo.get("/ImageMask", False):
        return False, []
    try:
        pil = pikepdf.PdfImage(xo).as_pil_image().convert("RGB")
    except Exception as exc:
        raise PdfRedactionError(f"PDF: an image cannot be decoded for OCR: {exc}") from exc
    arr = np.asarray(pil, dtype=np.uint8).copy()
    hits, lines = _mask_pixels(arr, ocr, phi)
    if not hits:
        return False, lines
    xo.write(zlib.compress(arr.tobytes()), filter=pikepdf.Name.FlateDecode)
    xo.ColorSpace = pikepdf.Name.DeviceRGB
    xo.BitsPerComponent = 8
    xo.Width, xo.Height = arr.shape[1], arr.shape[0]
    for key in ("/DecodeParms", "/Decode", "/Mask", "/ColorTransform"):
        if key in xo:
            del xo[key]
    return True, lines


def _mask_pixels(arr: NDArray[np.uint8], ocr: OcrFn, phi: RecordPhi) -> tuple[list[str], list[str]]:
    """Paints black the OCR lines of ``arr`` that hold PHI; returns (hits, all lines)."""
    hits: list[str] = []
    lines: list[str] = []
    for (x0, y0, x1, y1), text in ocr(arr):
        lines.append(text)
        if phi.find(text):
            pad = max(2, (y1 - y0) // 6)
            arr[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad] = 0
            hits.append(text)
    return hits, lines


def _mask_inline_images(
    pdf: pikepdf.Pdf, page: pikepdf.Page, ocr: OcrFn, phi: RecordPhi
) -> tuple[int, list[str]]:
    """OCR of inline images (``BI … ID … EI``); those with PHI become masked XObjects.

    An inline image is painted in the unit square of the current matrix,
    exactly like ``/Name Do`` of an image XObject, so the instruction is
    swapped for a ``Do`` of the masked pixels (Flate RGB) and nothing else
    on the page moves. Images without PHI stay inline, byte for byte.
    """
    ops = pikepdf.parse_content_stream(page)
    if not any(isinstance(op, pikepdf.ContentStreamInlineImage) for op in ops):
        return 0, []
    out: list[Any] = []
    masked = 0
    lines: list[str] = []
    for op in ops:
        if not isinstance(op, pikepdf.ContentStreamInlineImage):
            out.append(op)
            continue
        ii = op.iimage
        if min(int(ii.width), int(ii.height)) < MIN_IMAGE_SIDE or ii.image_mask:
            out.append(op)
            continue
        try:
            pil = ii.as_pil_image().convert("RGB")
        except Exception as exc:
            raise PdfRedactionError(
                f"PDF page {page.index + 1}: an inline image cannot be decoded for OCR: {exc}"
            ) from exc
        arr = np.asarray(pil, dtype=np.uint8).copy()
        hits, found = _mask_pixels(arr, ocr, phi)
        lines += found
        if not hits:
            out.append(op)
            continue
        xo = pdf.make_stream(
            zlib.compress(arr.tobytes()),
            Type=pikepdf.Name.XObject,
            Subtype=pikepdf.Name.Image,
            Width=arr.shape[1],
            Height=arr.shape[0],
            ColorSpace=pikepdf.Name.DeviceRGB,
            BitsPerComponent=8,
            Filter=pikepdf.Name.FlateDecode,
        )
        if "/Resources" not in page.obj:
            page.obj.Resources = pikepdf.Dictionary()
        res = page.obj.Resources
        if "/XObject" not in res:
            res.XObject = pikepdf.Dictionary()
        name = pikepdf.Name(f"/TPInline{masked}")
        while name in res.XObject:
            name = pikepdf.Name(f"{name}x")
        res.XObject[name] = xo
        out.append(pikepdf.ContentStreamInstruction([name], pikepdf.Operator("Do")))
        masked += 1
    if masked:
        page.obj.Contents = pdf.make_stream(pikepdf.unparse_content_stream(out))
    return masked, lines


RASTER_SCALE = 2.0  # 144 dpi: what the pixel OCR reads reliably at report font sizes


def _undecodable(chars: list[dict[str, Any]]) -> bool:
    """Glyphs whose text the PDF does not say (Type3 procedures without a usable
    encoding/ToUnicode): the PHI engine cannot read them, so the text layer
    cannot be redacted and the page is rasterised instead."""
    return any("(cid:" in str(ch.get("text", "")) for ch in chars)


def _type3_unreadable(resources: Any, depth: int = 0) -> bool:
    """A Type3 font that does not say which characters its glyphs are.

    Without ToUnicode, a Type3 font's text is only known through its
    Differences glyph names; private names (``/T3g65``, ``/a12``) make
    pdfminer fall back to the base encoding, i.e. a guess that may be wrong
    letters rather than ``(cid:N)``. Such pages are rasterised rather than
    trusted. Fonts of Form XObjects are checked too.
    """
    if resources is None or depth > 12:
        return False
    fonts = resources.get("/Font")
    for font in fonts.values() if fonts is not None else []:
        if font.get("/Subtype") != "/Type3" or "/ToUnicode" in font:
            continue
        enc = font.get("/Encoding")
        diffs = enc.get("/Differences") if isinstance(enc, pikepdf.Dictionary) else None
        for item in diffs if diffs is not None else []:
            if isinstance(item, pikepdf.Name) and str(item)[1:] not in glyphname2unicode:
                return True
    xobjects = resources.get("/XObject")
    for xo in xobjects.values() if xobjects is not None else []:
        if xo.get("/Subtype") == "/Form" and _type3_unreadable(xo.get("/Resources"), depth + 1):
            return True
    return False


def _rasterise(
    pdf: pikepdf.Pdf, page: pikepdf.Page, data: bytes, ocr: OcrFn, phi: RecordPhi
) -> list[str]:
    """Replaces the page by its rendering (pypdfium2), OCR'd and masked: a scanned page.

    No text layer, fonts or vector content of the original page are left.
    """
    try:
        doc = pypdfium2.PdfDocument(data)
        try:
            pil = doc[page.index].render(scale=RASTER_SCALE).to_pil().convert("RGB")
        finally:
            doc.close()
    except Exception as exc:
        raise PdfRedactionError(f"PDF page {page.index + 1}: cannot be rendered: {exc}") from exc
    arr = np.asarray(pil, dtype=np.uint8).copy()
    _, lines = _mask_pixels(arr, ocr, phi)
    h, w = arr.shape[0], arr.shape[1]
    img = pdf.make_stream(
        zlib.compress(arr.tobytes()),
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Image,
        Width=w,
        Height=h,
        ColorSpace=pikepdf.Name.DeviceRGB,
        BitsPerComponent=8,
        Filter=pikepdf.Name.FlateDecode,
    )
    pw, ph = w / RASTER_SCALE, h / RASTER_SCALE  # the rendering is already rotated/cropped
    for key in ("/Rotate", "/CropBox", "/TrimBox", "/BleedBox", "/ArtBox", "/Group"):
        if key in page.obj:
            del page.obj[key]
    page.obj.MediaBox = pikepdf.Array([0, 0, pw, ph])
    page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(TPPage=img))
    page.obj.Contents = pdf.make_stream(f"q {pw:.4f} 0 0 {ph:.4f} 0 0 cm /TPPage Do Q".encode())
    return lines


def extract_text(data: bytes) -> str:
    """The text layer of a PDF, page by page (what a reader's copy-paste would give)."""
    try:
        with pdfplumber.open(io.BytesIO(data)) as doc:
            return "\n\f".join(_page_text(p.chars).text for p in doc.pages)
    except Exception as exc:
        raise InvalidInput(f"PDF: cannot read the text layer: {exc}") from exc


def redact(data: bytes, phi: RecordPhi, ocr: OcrFn | None) -> PdfResult:
    """A new PDF without the PHI of ``data``; PdfRedactionError when that cannot be ensured."""
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PasswordError as exc:
        raise PdfRedactionError("PDF: encrypted with a password; cannot be redacted") from exc
    except Exception as exc:
        raise PdfRedactionError(f"PDF: cannot be parsed: {exc}") from exc
    if len(pdf.pages) > MAX_PAGES:
        raise PdfRedactionError(f"PDF: more than {MAX_PAGES} pages")
    result = PdfResult(b"")
    ocr_text: list[str] = []
    with pdfplumber.open(io.BytesIO(data)) as plumber:
        for page, ppage in zip(pdf.pages, plumber.pages, strict=True):
            glyphs = _page_text(list(ppage.chars))
            if _undecodable(glyphs.chars) or _type3_unreadable(page.obj.get("/Resources")):
                if ocr is None:
                    raise PdfRedactionError(
                        f"PDF page {page.index + 1}: text in fonts that do not say which "
                        "characters they draw (e.g. Type3) and no OCR to rasterise the page"
                    )
                ocr_text += _rasterise(pdf, page, data, ocr, phi)
                result.pages_rasterised += 1
                continue
            delete, boxes = _spans_to_delete(glyphs, phi)
            result.spans += [r for _, r in boxes]
            resources = page.obj.get("/Resources")
            walker = _Walker(glyphs.chars, delete)
            ops = pikepdf.parse_content_stream(page)
            new_ops = walker.stream(ops, resources)
            if walker.g != len(glyphs.chars):
                raise PdfRedactionError(
                    f"PDF page {page.index + 1}: {walker.g} glyphs in the content stream but "
                    f"{len(glyphs.chars)} in the text layer (unsupported font or layout)"
                )
            result.glyphs_removed += walker.removed
            overlay = b""
            if boxes:
                mb = [float(x) for x in page.mediabox]
                overlay = _overlay(glyphs.chars, boxes, mb[0], mb[1])
                if "/Resources" not in page.obj:
                    page.obj.Resources = pikepdf.Dictionary()
                res = page.obj.Resources
                if "/Font" not in res:
                    res.Font = pikepdf.Dictionary()
                res.Font[_FONT_NAME] = _helvetica(pdf)
            if walker.removed or overlay:
                body = pikepdf.unparse_content_stream(new_ops)
                page.obj.Contents = pdf.make_stream(b"q\n" + body + b"\nQ\n" + overlay)
            if ocr is not None:
                for _, xo in _images(page):
                    masked, lines = _mask_image(xo, ocr, phi)
                    result.images_masked += int(masked)
                    ocr_text += lines
                n_inline, lines = _mask_inline_images(pdf, page, ocr, phi)
                result.images_masked += n_inline
                ocr_text += lines
    _clean_document(pdf)
    buf = io.BytesIO()
    pdf.save(buf, linearize=False, deterministic_id=True, compress_streams=True)
    out = buf.getvalue()
    text = extract_text(out)
    left = phi.residual(text)
    if left:
        raise PdfRedactionError(
            f"PDF: {len(left)} identifying value(s) still in the text layer after redaction"
        )
    result.data = out
    result.text = text
    return result
