"""OCR engines behind one small interface.

The cleaner only needs two things from an engine: where text is (boxes to
mask) and, for the policies that keep some text, what it says. Keeping the
engine behind this interface lets tests inject a failing or scripted engine,
and lets the evaluation swap rapidocr for Tesseract in the same pipeline.

Detection and recognition are separate calls on purpose: rapidocr's
all-in-one call drops boxes whose recognised text is empty or scores below
``text_score``, and a dropped box is an unmasked name. Every detected box is
masked unless a policy positively decides it is safe.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "OcrEngine",
    "OcrError",
    "RapidOcrEngine",
    "TesseractEngine",
    "TextRegion",
    "bundled_rapidocr_models",
]


class OcrError(RuntimeError):
    """The engine could not run; the image must be treated as unscanned."""


@dataclass(frozen=True)
class TextRegion:
    """An axis-aligned text box in the coordinates of the image given to the engine.

    ``quad`` keeps the detector's four corners so recognition can crop a
    rotated line; ``text`` is None until recognition ran.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    score: float = 1.0
    text: str | None = None
    text_score: float | None = None
    quad: tuple[tuple[float, float], ...] | None = None
    second_look: bool = False
    """Found only by a second, more permissive look (kept when drawn text is confirmed)."""

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@runtime_checkable
class OcrEngine(Protocol):
    """What the cleaner needs from an OCR engine.

    Images are ``uint8`` arrays of shape (rows, columns, 3) in RGB order.
    Engines raise :class:`OcrError` (or anything else) when they fail; an
    empty list means "looked and found no text", never "could not look".
    """

    name: str

    def detect(self, image: NDArray[np.uint8]) -> list[TextRegion]: ...

    def recognize(
        self, image: NDArray[np.uint8], regions: list[TextRegion]
    ) -> list[TextRegion]: ...


def bundled_rapidocr_models() -> dict[str, Path]:
    """The detection, classifier and recognition models shipped inside the rapidocr wheel.

    rapidocr fetches any model it does not find (or whose name it does not
    expect) from the internet; pinning these paths is what keeps it offline.
    """
    try:
        import rapidocr
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise OcrError("rapidocr is not installed") from exc
    root = Path(rapidocr.__file__).resolve().parent / "models"
    models = {
        "det": root / "PP-OCRv6_det_small.onnx",
        "rec": root / "PP-OCRv6_rec_small.onnx",
        "cls": root / "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    }
    missing = [str(p) for p in models.values() if not p.is_file()]
    if missing:
        raise OcrError(f"rapidocr bundled models missing (would need a download): {missing}")
    return models


def _cores() -> int:
    """CPUs this process may run on (the affinity mask, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _quad_to_region(quad: NDArray[Any], score: float, height: int, width: int) -> TextRegion:
    xs = quad[:, 0]
    ys = quad[:, 1]
    x0 = max(0, int(np.floor(xs.min())))
    y0 = max(0, int(np.floor(ys.min())))
    x1 = min(width, int(np.ceil(xs.max())) + 1)
    y1 = min(height, int(np.ceil(ys.max())) + 1)
    return TextRegion(
        x0,
        y0,
        x1,
        y1,
        score=float(score),
        quad=tuple((float(x), float(y)) for x, y in quad),
    )


class RapidOcrEngine:
    """PP-OCR detection and recognition through rapidocr and onnxruntime.

    Models load lazily (about 0.3 s) and once per engine; one engine can be
    shared by threads because onnxruntime sessions are thread-safe, but the
    lazy load is guarded.
    """

    name = "rapidocr"

    def __init__(
        self,
        *,
        det_limit_side_len: int = 736,
        box_thresh: float = 0.5,
        unclip_ratio: float = 1.6,
        threads: int = -1,
        max_line_fraction: float = 0.3,
        split_thresh: float = 0.6,
        max_upscale: float = 2.0,
        spin: bool = False,
    ) -> None:
        self.max_upscale = max_upscale
        self.spin = spin
        self.max_line_fraction = max_line_fraction
        self.split_thresh = split_thresh
        self.det_limit_side_len = det_limit_side_len
        self.box_thresh = box_thresh
        self.unclip_ratio = unclip_ratio
        self.threads = threads
        self._lock = threading.Lock()
        self._det: Any = None
        self._rec: Any = None

    def _config(self) -> Any:
        from rapidocr import RapidOCR

        models = bundled_rapidocr_models()
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.use_cls": False,
            "Global.text_score": 0.0,
            "Det.model_path": str(models["det"]),
            "Cls.model_path": str(models["cls"]),
            "Rec.model_path": str(models["rec"]),
            "Det.limit_side_len": self.det_limit_side_len,
            "Det.box_thresh": self.box_thresh,
            "Det.unclip_ratio": self.unclip_ratio,
            "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
        }
        # RapidOCR only parses and validates the configuration here; the
        # sessions are built below so that nothing is swallowed or filtered.
        return RapidOCR(params=params).cfg

    def _load(self) -> tuple[Any, Any]:
        if self._det is None or self._rec is None:
            with self._lock:
                if self._det is None or self._rec is None:
                    try:
                        from rapidocr.ch_ppocr_det import TextDetector
                        from rapidocr.ch_ppocr_rec import TextRecognizer

                        cfg = self._config()
                        for section in (cfg.Det, cfg.Rec):
                            section.engine_cfg = cfg.EngineConfig[section.engine_type.value]
                            section.model_root_dir = cfg.Global.model_root_dir
                        cfg.Rec.font_path = None
                        det = TextDetector(cfg.Det)
                        rec = TextRecognizer(cfg.Rec)
                        if not self.spin:
                            models = bundled_rapidocr_models()
                            det.session.session = self._session(models["det"])
                            rec.session.session = self._session(models["rec"])
                        self._det, self._rec = det, rec
                    except OcrError:
                        raise
                    except Exception as exc:
                        raise OcrError(f"rapidocr could not load its models: {exc}") from exc
        return self._det, self._rec

    def _session(self, model: Path) -> Any:
        """An onnxruntime session whose idle worker threads sleep instead of spinning.

        On a shared machine spinning threads burn the time slices the busy
        ones need; measured on 2 busy cores, detection took 30 % less time.
        """
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_cpu_mem_arena = False
        # One inference at a time per session: the graph runs its nodes in
        # order (no inter-op pool) on at most one thread per core.
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = self.threads if self.threads > 0 else _cores()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        return ort.InferenceSession(
            str(model), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def detect(self, image: NDArray[np.uint8]) -> list[TextRegion]:
        """Text boxes; a box too tall to be a line is also split into the lines inside it.

        The detector sometimes joins a field-of-view circle and the text
        near it into one region the size of the image, which the cleaner
        must ignore; the lines inside it are then found again on the same
        probability map with a stricter binarisation threshold (no second
        inference).
        """
        det, _ = self._load()
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        h, w = image.shape[:2]
        try:
            from rapidocr.ch_ppocr_det.utils import DetPreProcess

            # rapidocr scales the shorter side up to det_limit_side_len; small
            # frames gain nothing from more than ``max_upscale`` (8 px text is
            # 16 px then) and cost the square of the factor.
            limit = min(self.det_limit_side_len, int(self.max_upscale * min(h, w)))
            pre = DetPreProcess(max(limit, 32), "min", det.mean, det.std)(bgr)
            if pre is None:
                return []
            preds = det.session(pre)
            boxes, scores = det.postprocess_op(preds, (h, w))
        except Exception as exc:
            raise OcrError(f"rapidocr detection failed: {exc}") from exc
        regions = self._regions(boxes, scores, h, w)
        too_tall = [r for r in regions if r.height > max(48.0, self.max_line_fraction * h)]
        if too_tall:
            from rapidocr.ch_ppocr_det.utils import DBPostProcess

            strict = DBPostProcess(
                thresh=self.split_thresh,
                box_thresh=self.box_thresh,
                unclip_ratio=self.unclip_ratio,
                use_dilation=True,
            )
            try:
                fine_boxes, fine_scores = strict(preds, (h, w))
            except Exception as exc:
                raise OcrError(f"rapidocr detection failed: {exc}") from exc
            for r in self._regions(fine_boxes, fine_scores, h, w):
                cx, cy = (r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2
                if r.height <= max(48.0, self.max_line_fraction * h) and any(
                    t.x0 <= cx <= t.x1 and t.y0 <= cy <= t.y1 for t in too_tall
                ):
                    regions.append(replace(r, second_look=True))
        return regions

    @staticmethod
    def _regions(boxes: Any, scores: Any, h: int, w: int) -> list[TextRegion]:
        if boxes is None or len(boxes) == 0:
            return []
        scores = scores if scores is not None else [1.0] * len(boxes)
        return [
            _quad_to_region(np.asarray(q, dtype=np.float32), s, h, w)
            for q, s in zip(boxes, scores, strict=True)
        ]

    def recognize(self, image: NDArray[np.uint8], regions: list[TextRegion]) -> list[TextRegion]:
        if not regions:
            return []
        from rapidocr.ch_ppocr_rec import TextRecInput
        from rapidocr.utils.process_img import get_rotate_crop_image

        _, rec = self._load()
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        crops = []
        for r in regions:
            quad = (
                np.asarray(r.quad, dtype=np.float32)
                if r.quad is not None
                else np.array(
                    [[r.x0, r.y0], [r.x1, r.y0], [r.x1, r.y1], [r.x0, r.y1]], dtype=np.float32
                )
            )
            crops.append(get_rotate_crop_image(bgr, quad))
        try:
            out = rec(TextRecInput(img=crops))
        except Exception as exc:
            raise OcrError(f"rapidocr recognition failed: {exc}") from exc
        txts = list(out.txts or [])
        scores = list(out.scores or [])
        if len(txts) != len(regions):
            raise OcrError("rapidocr recognition returned a different number of lines")
        return [
            replace(r, text=str(t), text_score=float(s))
            for r, t, s in zip(regions, txts, scores, strict=True)
        ]


def _tesseract_env() -> dict[str, str]:
    """Tesseract's environment with OpenMP limited to one thread unless the caller chose.

    Tesseract's own advice for throughput: its OpenMP threads wait on each
    other and, on 2 busy cores, one page took 2.7x longer than with
    ``OMP_THREAD_LIMIT=1`` (same words found).
    """
    env = dict(os.environ)
    env.setdefault("OMP_THREAD_LIMIT", "1")
    return env


class TesseractEngine:
    """Debian's tesseract binary (TSV output): a second opinion and the benchmark baseline.

    Tesseract finds and reads words in one pass, so ``detect`` already fills
    the text and ``recognize`` returns its input.
    """

    name = "tesseract"

    def __init__(
        self,
        *,
        psm: int = 11,
        lang: str = "eng",
        min_conf: float = -1.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.psm = psm
        self.lang = lang
        self.min_conf = min_conf
        self.timeout_s = timeout_s
        if shutil.which("tesseract") is None:
            raise OcrError("the tesseract binary is not installed (apt-get install tesseract-ocr)")

    def detect(self, image: NDArray[np.uint8]) -> list[TextRegion]:
        import subprocess

        # Binary PPM: leptonica reads it from stdin as it does PNG, with the
        # same words found, and it costs a copy instead of a deflate pass
        # (PNG encoding was about a tenth of this engine's time).
        h, w = image.shape[:2]
        ppm = b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(image, dtype=np.uint8).tobytes()
        cmd = ["tesseract", "stdin", "stdout", "-l", self.lang, "--psm", str(self.psm), "tsv"]
        try:
            proc = subprocess.run(
                cmd,
                input=ppm,
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
                env=_tesseract_env(),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OcrError(f"tesseract failed: {exc}") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-300:]
            raise OcrError(f"tesseract exited with {proc.returncode}: {err}")
        regions: list[TextRegion] = []
        for line in proc.stdout.decode("utf-8", "replace").splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) < 12 or not cols[11].strip():
                continue
            conf = float(cols[10])
            if conf < self.min_conf:
                continue
            x, y, bw, bh = (int(c) for c in cols[6:10])
            score = max(conf, 0.0) / 100.0
            regions.append(
                TextRegion(
                    max(0, x),
                    max(0, y),
                    min(w, x + bw),
                    min(h, y + bh),
                    score=score,
                    text=cols[11],
                    text_score=score,
                )
            )
        return regions

    def recognize(self, image: NDArray[np.uint8], regions: list[TextRegion]) -> list[TextRegion]:
        return regions
