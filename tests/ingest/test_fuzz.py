"""Mutation fuzzing of every loader (:mod:`tests.ingest.fuzz`) and the bugs it found.

The short run is part of ``make test``; the long one (10,000 cases) is marked slow and
its last result is kept in ``benchmarks/results/fuzz.md``. Every regression case below
is regenerated from its seed and number, or built from a seed in a line of code.
"""

from __future__ import annotations

import hashlib
import io
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

from mmrag.config import IngestSettings
from mmrag.errors import IngestError
from mmrag.ingest import load, sniff
from mmrag.types import Blob
from tests.ingest.fuzz import (
    RAW_EXCEPTION,
    WORKER_SETTINGS,
    Case,
    Summary,
    Worker,
    _judge,
    make_case,
    make_deep_case,
    report,
    run,
)
from tests.ingest.fuzz_seeds import SEEDS, seed_bytes


def _assert_clean(summary: Summary) -> None:
    assert summary.clean, report(summary)


def test_every_seed_loads():
    """A seed that fails unmutated would fuzz nothing but its own error path."""
    summary = run(len(SEEDS), pristine=True)
    _assert_clean(summary)
    failed = {k for (k, status), n in summary.outcome.items() if status != "added" and n}
    assert not failed, report(summary)


def test_fuzz_short():
    """20 mutants of each seed through Index.add: no crash, hang or traceback; every
    failure is one line naming its input; catalog and store agree."""
    summary = run(20 * len(SEEDS), seed=0)
    _assert_clean(summary)
    assert summary.cases == 20 * len(SEEDS)
    assert sum(n for (_, status), n in summary.outcome.items() if status == "failed") > 50


def test_fuzz_short_deep():
    """20 attribute-level XML edits of each zip-based seed (office, e-book)."""
    summary = run(20 * 7, seed=0, deep=True)
    _assert_clean(summary)
    assert summary.cases == 20 * 7


@pytest.mark.slow
def test_fuzz_long_deep():
    """The recorded deep run (benchmarks/results/fuzz.md): 5,000 cases of seed 1."""
    summary = run(5_000, seed=1, deep=True)
    _assert_clean(summary)
    assert summary.cases == 5_000


@pytest.mark.slow
def test_fuzz_long():
    """The recorded run (benchmarks/results/fuzz.md): 10,000 cases of seed 1."""
    summary = run(10_000, seed=1)
    _assert_clean(summary)
    assert summary.cases == 10_000


def test_make_case_is_reproducible():
    a, b = make_case(7, 123), make_case(7, 123)
    assert a == b and a.data != seed_bytes(a.kind)
    assert make_case(7, 124).kind != a.kind


# -- the judge finds what it must ----------------------------------------------------------
CASE = Case(0, "png", ("flip",), "fz0-00000-png-flip.png", b"")
FINE = {"added": [], "skipped": [], "seconds": 0.1, "problem": ""}


@pytest.mark.parametrize(("answer", "stderr", "finding"), [
    (None, "", "hangs"),
    ({"died": -11}, "", "crashes"),
    ({"raised": "Traceback ...", "type": "KeyError"}, "", "crashes"),
    ({"memory": 3 << 30}, "", "memory"),
    ({**FINE, "failed": ["/x/fz0-00000-png-flip.png: bad"]}, "Traceback (most", "tracebacks"),
    ({**FINE, "failed": []}, "/p/Tiff.py:9: UserWarning: Corrupt EXIF\n  warn()", "tracebacks"),
    ({**FINE, "failed": ["/x/fz0-00000-png-flip.png: bad\nline two"]}, "", "bad_messages"),
    ({**FINE, "failed": ["/x/other.png: bad"]}, "", "bad_messages"),
    ({**FINE, "failed": [], "problem": "catalog and store disagree"}, "", "inconsistent"),
])
def test_judge_reports(answer, stderr, finding):
    summary = Summary(0)
    _judge(CASE, answer, stderr, summary, 30)
    assert getattr(summary, finding) and not summary.clean


def test_judge_accepts_a_clean_failure():
    summary = Summary(0)
    _judge(CASE, {**FINE, "failed": ["/x/fz0-00000-png-flip.png: corrupt image"]}, "",
           summary, 30)
    assert summary.clean and summary.outcome["png", "failed"] == 1


def test_worker_that_hangs_is_killed(tmp_path: Path):
    sleeper = [sys.executable, "-c", "import time, sys; time.sleep(60)"]
    worker = Worker(tmp_path, 0, argv=sleeper, warm_up=0)
    assert worker.ask(tmp_path / "x.png", timeout=0.5) is None
    assert worker.proc is None


# -- regressions: each a bug the fuzzer found, now one clear line ------------------------------
# sha1 prefixes of the seeds the regression cases were found with: a codec library of
# another version (libheif) writes other bytes, and the case then is another file.
SEED_SHA1 = {"tiff": "520ce8", "gif": "035f1a", "epub": "76f91b", "odp": "808365",
             "ods": "8eecf9", "heic": "d4c80a", "docx": "0b4a45", "pptx": "5060a0",
             "xlsx": "9184f7", "jpeg": "69ff89"}


def _same_seed(kind: str) -> None:
    if kind == "heic":
        pytest.importorskip("pillow_heif", reason="the heif extra is not installed")
    if hashlib.sha1(seed_bytes(kind)).hexdigest()[:6] != SEED_SHA1[kind]:
        pytest.skip(f"the {kind} seed is other bytes here (another library version)")


def _reason(name: str, data: bytes) -> str:
    settings = IngestSettings(**WORKER_SETTINGS["ingest"])
    blob = Blob(uri=name, data=data, name=name, mime=sniff(data, name))
    with pytest.raises(IngestError) as err:
        list(load(blob, settings))
    line = str(err.value)
    assert "\n" not in line and line.startswith(name + ": ")
    return line.split(": ", 1)[1]


@pytest.mark.parametrize(("seed", "number", "expected"), [
    (2, 47, "corrupt or truncated image"),  # TIFF: TypeError counting frames (images)
    (2, 1685, "corrupt or truncated image"),  # TIFF: KeyError on a compression tag
    (2, 6, "corrupt or truncated image"),  # GIF: IndexError counting frames
    (2, 290, "corrupt e-book: META-INF/container.xml"),  # EPUB: zip negative seek
    (2, 680, "corrupt e-book: OEBPS/content.opf"),  # EPUB: unknown compression method
    (2, 1392, "corrupt OpenDocument: content.xml"),  # ODP: zip negative seek
    (2, 2017, "corrupt OpenDocument: content.xml"),  # ODS: unknown compression method
    (1, 5103, "corrupt or truncated image"),  # HEIC: libheif's RuntimeError (size limit)
])
def test_fuzz_regression(seed: int, number: int, expected: str):
    case = make_case(seed, number)
    _same_seed(case.kind)
    reason = _reason(case.name, case.data)
    assert reason.startswith(expected) and not RAW_EXCEPTION.search(reason), reason


@pytest.mark.parametrize("number", [47, 99])  # "Corrupt EXIF data", "Tag data larger..."
def test_damaged_tiff_metadata_prints_no_warning(number: int):
    """images: Pillow's UserWarnings about skipped metadata reached the terminal as two
    lines naming no input (one of these TIFFs loads, the other fails in one line)."""
    case = make_case(3, number)
    _same_seed(case.kind)
    blob = Blob(uri=case.name, data=case.data, name=case.name, mime=sniff(case.data, ""))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            list(load(blob, IngestSettings(**WORKER_SETTINGS["ingest"])))
        except IngestError as err:
            assert "\n" not in str(err)
    assert not [w for w in caught if issubclass(w.category, UserWarning)]


def test_zip_of_a_future_version_is_one_line():
    """pptx (any zip loader): zipfile's NotImplementedError for a version it cannot read."""
    data = bytearray(seed_bytes("pptx"))
    at = data.rindex(b"PK\x01\x02") + 6  # the last member's 'version needed to extract'
    data[at] = 148
    with pytest.raises(NotImplementedError):
        zipfile.ZipFile(io.BytesIO(bytes(data)))
    assert _reason("deck.pptx", bytes(data)).startswith("corrupt document (not a readable zip")


# -- structure bombs: numbers inside a zip member's XML (the fuzzer's --deep cases) --------------
def _rezipped(kind: str, member: str, old: bytes, new: bytes) -> bytes:
    """The seed of ``kind`` with ``old`` replaced by ``new`` in ``member``."""
    from tests.ingest.fuzz_seeds import _zip

    with zipfile.ZipFile(io.BytesIO(seed_bytes(kind))) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    assert any(old in body for name, body in members if name == member)
    return _zip([(n, b.replace(old, new, 1) if n == member else b) for n, b in members])


def test_xlsx_merged_range_bomb_refused_at_once():
    """xlsx: openpyxl builds one object per merged cell; A1:XFD1048576 (17 billion cells,
    a 30-byte edit) ran for hours before the merged ranges were checked."""
    data = _rezipped("xlsx", "xl/worksheets/sheet1.xml", b'mergeCell ref="A6:C6"',
                     b'mergeCell ref="A1:XFD1048576"')
    assert _reason("big.xlsx", data).startswith("spreadsheet bomb refused")


def test_odf_space_run_bomb_capped():
    """odf: <text:s text:c="400000000"/> made a 400 MB string; junk counts failed."""
    settings = IngestSettings(**WORKER_SETTINGS["ingest"])
    for count in (b"400000000", b"-1", b"x"):
        data = _rezipped("odt", "content.xml", b"High water",
                         b'High<text:s text:c="' + count + b'"/>water')
        blob = Blob(uri="s.odt", data=data, name="s.odt", mime=sniff(data, "s.odt"))
        text = " ".join(p.text for p in load(blob, settings))
        assert "water" in text and len(text) < 1000


@pytest.mark.parametrize("attrs", [
    b'table:number-rows-repeated="0"', b'table:number-rows-repeated="x"'])
def test_ods_zero_repeat_with_a_span_loads(attrs: bytes):
    """odf: a zero (or junk) row repeat left a spanned cell unset: KeyError, table lost."""
    data = _rezipped("ods", "content.xml", b"<table:table-row><table:table-cell>",
                     b"<table:table-row " + attrs + b"><table:table-cell "
                     b'table:number-columns-spanned="2">')
    blob = Blob(uri="t.ods", data=data, name="t.ods", mime=sniff(data, "t.ods"))
    text = " ".join(p.text for p in load(blob, IngestSettings(**WORKER_SETTINGS["ingest"])))
    assert "Brest" in text


def test_odf_unknown_xml_encoding_is_one_line():
    """odf: encoding="x" in content.xml's declaration raised a raw LookupError."""
    data = _rezipped("odt", "content.xml", b'encoding="UTF-8"', b'encoding="x"')
    assert _reason("e.odt", data) == "corrupt OpenDocument: content.xml: unknown encoding: x"


def test_xlsx_far_cell_makes_no_empty_cells():
    """xlsx: one value at row 99999999999999 made openpyxl build and keep a Cell for each
    of 2 million empty positions (12 s); the sheet is read from the cells it holds."""
    import openpyxl

    from mmrag.ingest.office.xlsx import sheet_rows

    data = _rezipped("xlsx", "xl/worksheets/sheet3.xml", b'<c r="C2"', b'<c r="C99999999999999"')
    ws = openpyxl.load_workbook(io.BytesIO(data), data_only=True)["Ledger"]
    held = len(ws._cells)
    rows = sheet_rows(ws)
    assert len(ws._cells) == held and any("account 1" in c for c in rows[1])


@pytest.mark.parametrize(("number", "expected"), [
    (140, "corrupt DOCX: the main document part has no body"),  # raw AttributeError
    (1104, "corrupt PPTX: slide list:"),  # python-pptx's KeyError for a missing rId
    (1636, "corrupt PPTX: slide list:"),  # a slide relationship to a part not a slide
    (1680, None),  # docx: core-properties relationship dropped: loads, without metadata
])
def test_deep_regression(number: int, expected: str | None):
    case = make_deep_case(1, number)
    _same_seed(case.kind)
    if expected is None:
        blob = Blob(uri=case.name, data=case.data, name=case.name, mime=sniff(case.data, ""))
        assert list(load(blob, IngestSettings(**WORKER_SETTINGS["ingest"])))
    else:
        assert _reason(case.name, case.data).startswith(expected)


def test_xlsx_damaged_style_index_prints_nothing(capsys):
    """xlsx: openpyxl print()ed "4294967295 is out of range" on stdout, where
    `mmrag add --json` writes its report."""
    case = make_deep_case(1, 3723)
    _same_seed(case.kind)
    blob = Blob(uri=case.name, data=case.data, name=case.name, mime=sniff(case.data, ""))
    try:
        list(load(blob, IngestSettings(**WORKER_SETTINGS["ingest"])))
    except IngestError as err:
        assert "\n" not in str(err)
    assert capsys.readouterr().out == ""


def test_exif_strip_of_damaged_tags_prints_no_warning():
    """privacy: stripping EXIF re-reads the stored JPEG; Pillow's "Tag data larger than
    file" warning reached the terminal from there, after the loader had silenced it."""
    from mmrag.ingest.privacy.exif import strip

    case = make_case(3, 2323)
    _same_seed(case.kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        strip(case.data, "jpg")
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
