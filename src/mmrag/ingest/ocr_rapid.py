"""The ``rapidocr`` OCR engine: PP-OCR detection, angle classification and recognition run
stage by stage on onnxruntime sessions shared by all threads.

    engine = RapidOCREngine(threads=1)
    lines, turn = engine.read_upright(image)   # any quarter turn, boxes in image pixels

The models (PP-OCRv4 det/rec, mobile v2 angle classifier) ship inside the
``rapidocr-onnxruntime`` wheel, and its pre/post-processing (DB boxes, CTC decoding) is
reused; only the driving loop is ours, because ``RapidOCR.__call__`` behind a separate
orientation probe cost a page ~3x what it needs:

- **One detection pass decides the orientation.** Mostly tall boxes mean the text runs
  vertically (90°/270°); the angle classifier on the longest crops tells 180° from 0°,
  judging each line by unsqueezed windows (see :meth:`RapidOCREngine.classify`; a
  whole squeezed line is a coin toss). Only an unsure reading is checked against the
  other flip, on a few crops.
- **Detection on a downscaled copy** (longest side :attr:`det_side`) of the page's
  content (blank margins trimmed, at the page's scale), recognition on full-resolution
  crops: recognition resizes every line to 48 px high anyway, so its cost is the lines'
  total length, whatever the dpi.
- **Folded graphs** (:mod:`.onnx_fold`) halve both models' CPU time, exactly.
- **Sessions** use onnxruntime's memory arena (rapidocr turns it off, which costs
  5-20% per call in allocations) and ``threads`` intra-op threads without spinning.
  Sessions are thread-safe, so pages read in parallel share one copy of the weights.
- **Recognition batches** only short crops: a call costs its total padded width, and
  batches past ~1000 columns run slower per column on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import MissingDependencyError
from .ocr import OCRLine
from .onnx_fold import fold_model

__all__ = ["RapidOCREngine"]

_FLIP_SAMPLE = 8  # longest crops the angle classifier votes with
_CHECK_SAMPLE = 3  # crops re-read upside down when the reading is unsure
_UNSURE = 0.80  # mean recognition confidence below which the flip is double-checked
_MARGIN = 32  # detection-input pixels kept around the page's content


def _session(path: str, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # Spinning threads burn the core a parallel page could use.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(fold_model(Path(path).read_bytes()), opts,
                                providers=["CPUExecutionProvider"])


def _content_box(rgb: np.ndarray, margin: int, block: int = 8,
                 contrast: int = 32) -> tuple[int, int, int, int]:
    """Bounding box of everything that differs from the background by more than
    ``contrast`` levels, plus ``margin``: a scan's blank margins are a third or more of a
    page, and detection costs its input area. Blocks keep their darkest and brightest
    channel value, so one thin faint or coloured stroke still counts; a photo or a busy
    background keeps the full image."""
    import cv2

    h, w = rgb.shape[:2]
    if rgb.ndim != 3 or h < 4 * block or w < 4 * block:
        return 0, 0, w, h
    r, g, b = cv2.split(np.ascontiguousarray(rgb))
    lo, hi = cv2.min(cv2.min(r, g), b), cv2.max(cv2.max(r, g), b)
    # A block x block min/max filter sampled at block centres = per-block min/max.
    kernel = np.ones((block, block), np.uint8)
    c = block // 2
    dark = cv2.erode(lo, kernel)[c::block, c::block]
    bright = cv2.dilate(hi, kernel)[c::block, c::block]
    # Text is a minority of the pixels even on a dense page, so the median is paper.
    ink = ((dark < int(np.median(lo[::block, ::block])) - contrast)
           | (bright > int(np.median(hi[::block, ::block])) + contrast))
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return 0, 0, w, h
    y0, y1 = int(rows[0]) * block, min(h, (int(rows[-1]) + 1) * block)
    x0, x1 = int(cols[0]) * block, min(w, (int(cols[-1]) + 1) * block)
    return (max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin),
            min(h, y1 + margin))


def _grow(lo: int, hi: int, size: int, step: float) -> tuple[int, int]:
    """``[lo, hi)`` widened to a whole number of ``step``s, within ``[0, size)``."""
    want = min(size, int(math.ceil(math.ceil((hi - lo) / step) * step)))
    hi = min(size, lo + want)
    return max(0, hi - want), hi


def _windows(crop: np.ndarray, aspect: float, count: int = 3) -> list[np.ndarray]:
    """Up to ``count`` windows of ``aspect`` (width / height) spread along a wide crop;
    the crop itself when it is not wider than that."""
    h, w = crop.shape[:2]
    width = max(1, int(aspect * h))
    if w <= width:
        return [crop]
    return [crop[:, x:x + width] for x in np.linspace(0, w - width, count).astype(int)]


def _long_side(quad: np.ndarray) -> tuple[float, float]:
    """Width and height of a detected quad (points clockwise from top-left)."""
    w = max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3]))
    h = max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))
    return float(w), float(h)


def _order_quad(pts: np.ndarray) -> np.ndarray:
    """Points as top-left, top-right, bottom-right, bottom-left."""
    xs = pts[np.argsort(pts[:, 0]), :]
    left, right = xs[:2], xs[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], dtype=np.float32)


def _crop(rgb: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad straightened into a BGR crop (the models were trained on cv2 images)."""
    import cv2

    w, h = _long_side(quad)
    w, h = max(1, int(w)), max(1, int(h))
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    crop = cv2.warpPerspective(rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    return np.ascontiguousarray(crop[:, :, ::-1])


def _turned_box(bbox: tuple[float, float, float, float], turn: int, w: int,
                h: int) -> tuple[float, float, float, float]:
    """``bbox`` in the image turned ``turn``° counter-clockwise (PIL's ROTATE_*)."""
    x0, y0, x1, y1 = bbox
    if turn == 90:  # (x, y) -> (y, w - x)
        return (y0, w - x1, y1, w - x0)
    if turn == 180:
        return (w - x1, h - y1, w - x0, h - y0)
    if turn == 270:  # (x, y) -> (h - y, x)
        return (h - y1, x0, h - y0, x1)
    return bbox


def _reading_order(lines: list[OCRLine], turn: int, w: int, h: int) -> list[OCRLine]:
    """Top to bottom, then left to right within a row, as read on the upright page."""
    boxes = [_turned_box(line.bbox, turn, w, h) for line in lines]
    order = sorted(range(len(lines)), key=lambda i: (boxes[i][1], boxes[i][0]))
    for k in range(len(order) - 1):  # rapidocr's pass: same row means left to right
        for j in range(k, -1, -1):
            a, b = boxes[order[j]], boxes[order[j + 1]]
            row = 0.5 * min(a[3] - a[1], b[3] - b[1])
            if abs(b[1] - a[1]) < max(row, 10.0) and b[0] < a[0]:
                order[j], order[j + 1] = order[j + 1], order[j]
            else:
                break
    return [lines[i] for i in order]


class RapidOCREngine:
    """PP-OCR through ``rapidocr_onnxruntime``'s models and processing; thread-safe."""

    name = "rapidocr"
    det_side = 960
    """Longest side of the whole page at detection scale. US letter at 960 px keeps 7 pt
    footnotes ~8 px high, enough for DB boxes (at 640 px 8.5 pt text was lost); 1280
    costs 1.8x for the same boxes."""
    rec_batch_cols = 1024
    """Padded input columns per recognition call (see :meth:`_batches`)."""

    def __init__(self, threads: int = 1):
        try:
            from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess
            from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode
            from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
            from rapidocr_onnxruntime.utils import read_yaml
        except ImportError:
            raise MissingDependencyError("OCR engine 'rapidocr' (rapidocr-onnxruntime)",
                                         "ocr") from None
        cfg = read_yaml(DEFAULT_CFG_PATH)
        root = Path(DEFAULT_CFG_PATH).parent
        self.threads = max(1, threads)
        det, cls, rec = cfg["Det"], cfg["Cls"], cfg["Rec"]
        self._det = _session(str(root / det["model_path"]), self.threads)
        self._cls = _session(str(root / cls["model_path"]), self.threads)
        self._rec = _session(str(root / rec["model_path"]), self.threads)
        self._db = DBPostProcess(thresh=det["thresh"], box_thresh=det["box_thresh"],
                                 max_candidates=det["max_candidates"],
                                 unclip_ratio=det["unclip_ratio"],
                                 score_mode=det["score_mode"],
                                 use_dilation=det["use_dilation"])
        chars = self._rec.get_modelmeta().custom_metadata_map["character"].splitlines()
        self._decode = CTCLabelDecode(character=chars)
        self._mean = np.array(det["mean"], np.float32)
        self._std = np.array(det["std"], np.float32)
        self._cls_shape = tuple(cls["cls_image_shape"])
        self._cls_thresh = float(cls["cls_thresh"])
        self._rec_height, self._rec_width = rec["rec_img_shape"][1:]
        glob = cfg["Global"]
        self._text_score = float(glob["text_score"])
        self._min_height = int(glob["min_height"])
        self._max_ratio = float(glob["width_height_ratio"])

    # --- stages (public so benchmarks can time them) -----------------------------------

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Text quads (4 × 2, clockwise from top-left) in ``rgb``'s pixels."""
        import cv2

        h, w = rgb.shape[:2]
        ratio = min(1.0, self.det_side / max(h, w))
        x0, y0, x1, y1 = _content_box(rgb, margin=int(_MARGIN / ratio))
        # Grown to whole 32-pixel steps of the detection input, so resizing to the
        # network's multiple-of-32 shape does not stretch the text.
        x0, x1 = _grow(x0, x1, w, 32 / ratio)
        y0, y1 = _grow(y0, y1, h, 32 / ratio)
        part = rgb[y0:y1, x0:x1]
        ph, pw = part.shape[:2]
        pad = 0
        if ph <= self._min_height or pw / ph > self._max_ratio:
            # A banner line alone gives DB too little context: letterbox it like rapidocr.
            pad = abs(max(int(pw / self._max_ratio), self._min_height) * 2 - ph) // 2
            part = cv2.copyMakeBorder(part, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        H, W = part.shape[:2]
        # The page's scale, not the trimmed part's: text keeps its size in pixels.
        ratio = min(ratio, self.det_side / max(H, W))
        rh, rw = (max(32, int(round(v * ratio / 32)) * 32) for v in (H, W))
        small = cv2.resize(part, (rw, rh), interpolation=cv2.INTER_AREA if ratio < 1
                           else cv2.INTER_LINEAR)
        x = (small[:, :, ::-1].astype(np.float32) / 255.0 - self._mean) / self._std
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)
        pred = self._det.run(None, {self._det.get_inputs()[0].name: x})[0]
        boxes, _ = self._db(pred, (H, W))
        quads = []
        for box in boxes:
            quad = _order_quad(np.asarray(box, np.float32))
            quad += np.array([x0, y0 - pad], np.float32)
            quad[:, 0] = np.clip(quad[:, 0], 0, w - 1)
            quad[:, 1] = np.clip(quad[:, 1], 0, h - 1)
            bw, bh = _long_side(quad)
            if int(bw) > 3 and int(bh) > 3:
                quads.append(np.round(quad))
        return quads

    def classify(self, crops: Sequence[np.ndarray]) -> list[tuple[bool, float]]:
        """Per crop: upside down?, and the classifier's confidence in that answer.

        The classifier takes a 4:1 input, and squeezing a whole line into it (what
        PaddleOCR and rapidocr do) leaves a coin toss: measured on 36 lines in four fonts,
        11-20 upright lines were called upside down. Three 4:1 windows of the line, taken
        unsqueezed, got all 144 right both ways up; their mean decides."""
        import cv2

        c, ch, cw = self._cls_shape
        windows: list[np.ndarray] = []
        owner: list[int] = []
        for i, crop in enumerate(crops):
            parts = _windows(crop, cw / ch)
            windows.extend(parts)
            owner.extend([i] * len(parts))
        down = np.zeros(len(crops))
        count = np.zeros(len(crops))
        for start in range(0, len(windows), 32):  # 48 x 192 inputs: cheap, batch them
            part = windows[start:start + 32]
            batch = np.zeros((len(part), c, ch, cw), np.float32)
            for k, win in enumerate(part):
                width = min(cw, math.ceil(ch * win.shape[1] / win.shape[0]))
                img = cv2.resize(win, (width, ch)).astype(np.float32)
                batch[k, :, :, :width] = (img.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
            probs = self._cls.run(None, {self._cls.get_inputs()[0].name: batch})[0]
            for k, p in enumerate(probs):
                i = owner[start + k]
                down[i] += float(p[1]) / float(p.sum())  # labels: "0", "180"
                count[i] += 1
        out = []
        for d, n in zip(down, count, strict=True):
            p180 = d / max(n, 1)
            out.append((bool(p180 > 0.5), float(max(p180, 1 - p180))))
        return out

    def recognize(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Text and mean character confidence per crop, in input order."""
        import cv2

        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        hgt = self._rec_height
        for idx, width in self._batches(crops):
            batch = np.zeros((len(idx), 3, hgt, width), np.float32)
            for k, i in enumerate(idx):
                crop = crops[i]
                rw = min(width, math.ceil(hgt * crop.shape[1] / max(1, crop.shape[0])))
                img = cv2.resize(crop, (rw, hgt)).astype(np.float32)
                batch[k, :, :, :rw] = (img.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
            preds = self._rec.run(None, {self._rec.get_inputs()[0].name: batch})[0]
            for i, (text, score) in zip(idx, self._decode(preds), strict=True):
                out[i] = (text, float(score))
        return out

    def _batches(self, crops: Sequence[np.ndarray]) -> list[tuple[list[int], int]]:
        """Crops grouped by aspect ratio, each group with its padded input width.

        A call costs its total width (measured: ~6 ms per 100 columns on one thread),
        and batches past ~1000 columns run slower per column (activations leave the
        cache), so only short crops share a call; long lines go alone."""
        hgt = self._rec_height
        # PaddleOCR pads every line to at least the 320 px width it was trained on.
        widths = [max(self._rec_width, math.ceil(hgt * c.shape[1] / max(1, c.shape[0])))
                  for c in crops]
        batches: list[tuple[list[int], int]] = []
        for i in sorted(range(len(crops)), key=lambda i: widths[i]):
            if batches and (len(batches[-1][0]) + 1) * widths[i] <= self.rec_batch_cols:
                batches[-1][0].append(i)
                batches[-1] = (batches[-1][0], widths[i])
            else:
                batches.append(([i], widths[i]))
        return batches

    # --- reading ------------------------------------------------------------------------

    def _crops(self, rgb: np.ndarray, quads: list[np.ndarray]
               ) -> tuple[list[np.ndarray], list[bool], list[float]]:
        """Crops turned wide (a tall one 90° counter-clockwise), which were tall, and
        their lengths (long lines weigh more than specks in the orientation votes)."""
        crops, tall, weight = [], [], []
        for quad in quads:
            w, h = _long_side(quad)
            crop = _crop(rgb, quad)
            is_tall = h >= 1.5 * w
            crops.append(np.ascontiguousarray(np.rot90(crop)) if is_tall else crop)
            tall.append(is_tall)
            weight.append(max(w, h))
        return crops, tall, weight

    def _orient(self, crops: list[np.ndarray], tall: list[bool], weight: list[float]
                ) -> tuple[bool, bool, list[bool]]:
        """Whether the page's text runs vertically, whether it is upside down, and which
        crops to turn 180°: the page's lines all together by a vote of the longest, the
        odd ones out (a vertical axis label on an upright chart) each alone."""
        vertical = sum(w for w, t in zip(weight, tall, strict=True) if t) * 2 > sum(weight)
        major = [i for i in range(len(crops)) if tall[i] == vertical]
        minor = [i for i in range(len(crops)) if tall[i] != vertical]
        voters = sorted(major, key=lambda i: -weight[i])[:_FLIP_SAMPLE]
        votes = self.classify([crops[i] for i in voters] + [crops[i] for i in minor])
        down = sum(weight[i] for i, (flip, _) in zip(voters, votes, strict=False) if flip)
        flip_major = down * 2 > sum(weight[i] for i in voters)
        flips = [flip_major] * len(crops)
        for i, (flip, score) in zip(minor, votes[len(voters):], strict=True):
            flips[i] = flip and score > self._cls_thresh
        return vertical, flip_major, flips

    def _lines(self, quads: list[np.ndarray], texts: list[tuple[str, float]]
               ) -> list[OCRLine]:
        lines = []
        for quad, (text, score) in zip(quads, texts, strict=True):
            text = " ".join(text.split())
            if text and score >= self._text_score:
                x0, y0 = (float(v) for v in quad.min(axis=0))
                x1, y1 = (float(v) for v in quad.max(axis=0))
                lines.append(OCRLine(text, (x0, y0, x1, y1), score))
        return lines

    def _double_check(self, crops: list[np.ndarray], texts: list[tuple[str, float]],
                      major: list[int], weight: list[float]) -> bool:
        """An unsure reading (a classifier fooled by an odd font) is compared with a few
        crops read the other way up; True when the other way reads clearly better."""
        chars = sum(len(texts[i][0]) for i in major)
        if not major or chars == 0:
            return False
        mean = sum(texts[i][1] * len(texts[i][0]) for i in major) / chars
        if mean >= _UNSURE:
            return False
        sample = sorted(major, key=lambda i: -weight[i])[:_CHECK_SAMPLE]
        other = self.recognize([np.ascontiguousarray(crops[i][::-1, ::-1]) for i in sample])

        def score(reads: list[tuple[str, float]]) -> float:
            return sum(s * len(t) for t, s in reads)

        return score(other) > 1.2 * score([texts[i] for i in sample])

    def read_upright(self, image: Image.Image) -> tuple[list[OCRLine], int]:
        """Lines of ``image`` read in whichever quarter turn is upright (boxes in
        ``image``'s pixels, reading order of the upright page) and that turn,
        counter-clockwise."""
        rgb = np.asarray(image.convert("RGB"))
        quads = self.detect(rgb)
        if not quads:
            return [], 0
        crops, tall, weight = self._crops(rgb, quads)
        vertical, flip_major, flips = self._orient(crops, tall, weight)
        major = [i for i in range(len(crops)) if tall[i] == vertical]
        turned = [np.ascontiguousarray(c[::-1, ::-1]) if f else c
                  for c, f in zip(crops, flips, strict=True)]
        texts = self.recognize(turned)
        if self._double_check(turned, texts, major, weight):
            flip_major = not flip_major
            again = self.recognize([np.ascontiguousarray(turned[i][::-1, ::-1])
                                    for i in major])
            for i, read in zip(major, again, strict=True):
                texts[i] = read
        turn = ((90 if vertical else 0) + (180 if flip_major else 0)) % 360
        lines = self._lines(quads, texts)
        return _reading_order(lines, turn, image.width, image.height), turn

    def orientation(self, image: Image.Image) -> int:
        """Counter-clockwise turn making ``image`` upright (no recognition)."""
        rgb = np.asarray(image.convert("RGB"))
        quads = self.detect(rgb)
        if not quads:
            return 0
        crops, tall, weight = self._crops(rgb, quads)
        vertical, flip, _ = self._orient(crops, tall, weight)
        return ((90 if vertical else 0) + (180 if flip else 0)) % 360

    def read(self, image: Image.Image, classify: bool = True) -> list[OCRLine]:
        """Lines of an upright ``image``; ``classify`` turns single upside-down crops."""
        rgb = np.asarray(image.convert("RGB"))
        quads = self.detect(rgb)
        if not quads:
            return []
        crops, _, _ = self._crops(rgb, quads)
        if classify:
            crops = [np.ascontiguousarray(c[::-1, ::-1]) if flip and score > self._cls_thresh
                     else c for c, (flip, score) in zip(crops, self.classify(crops),
                                                         strict=True)]
        lines = self._lines(quads, self.recognize(crops))
        return _reading_order(lines, 0, image.width, image.height)
