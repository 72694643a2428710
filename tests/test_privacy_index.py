"""Privacy settings through ``Index.add``: what ends up in the media folder and the text
index, and what ``AddReport.privacy`` says was removed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mmrag import Index
from mmrag.cli import app
from tests.factories import make_text_pdf

FAST = {"encode": {"text_encoder": "hashing"}, "ingest": {"ocr": "never"}}
EMAIL = "jane.doe@example.org"


def _media_files(index_dir: Path) -> list[Path]:
    return [p for p in (index_dir / "media").rglob("*") if p.is_file()]


def _gps_jpeg() -> bytes:
    tags = Image.Exif()
    tags[0x010F], tags[0x0110], tags[0x0112] = "Canon", "EOS 5D", 3
    tags.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 90, 200)).save(buf, format="JPEG", exif=tags.tobytes())
    return buf.getvalue()


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "contacts.md").write_text(
        f"# Contacts\n\nThe zeppelin supplier is reached at {EMAIL} or +44 20 7946 0958.\n"
        "Invoices go to IBAN GB82 WEST 1234 5698 7654 32.\n")
    (folder / "holiday.jpg").write_bytes(_gps_jpeg())
    return folder


def test_mask_pii_hides_raw_values_from_bm25(tmp_path, docs):
    with Index(tmp_path / "idx", privacy={"mask_pii": True}, **FAST) as index:
        report = index.add(docs)
        assert not report.failed, report.failed
        assert report.privacy["pii_email"] == 1 and report.privacy["pii_phone"] == 1
        assert report.privacy["pii_iban"] == 1
        assert not index.search("jane.doe", k=5, mode="bm25")
        hit = index.search("zeppelin supplier", k=1, mode="bm25")[0]
        assert "[EMAIL]" in hit.item.text and EMAIL not in hit.item.text


def test_defaults_keep_text_but_strip_exif(tmp_path, docs):
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add(docs)
        assert report.privacy == {"exif_stripped": 1}
        hit = index.search("jane.doe", k=1, mode="bm25")[0]
        assert EMAIL in hit.item.text
        photo = index.search("holiday", k=5, filters={"modality": "image"})[0]
        stored = Image.open(photo.media_path)
        tags = stored.getexif()
        assert 0x010F not in tags and 0x0110 not in tags and not tags.get_ifd(0x8825)
        assert tags[0x0112] == 3


def test_keep_exif_option_stores_original_bytes(tmp_path, docs):
    with Index(tmp_path / "idx", privacy={"strip_exif": False}, **FAST) as index:
        report = index.add(docs)
        assert "exif_stripped" not in report.privacy
        photo = index.search("holiday", k=5, filters={"modality": "image"})[0]
        assert Path(photo.media_path).read_bytes() == (docs / "holiday.jpg").read_bytes()


def test_store_media_false_writes_no_files_and_search_works(tmp_path, docs):
    (docs / "report.pdf").write_bytes(make_text_pdf(["The airship hangar was rebuilt."]))
    root = tmp_path / "idx"
    with Index(root, privacy={"store_media": False}, **FAST) as index:
        report = index.add(docs)
        assert not report.failed and len(report.added) == 3
        assert _media_files(root) == []
        hits = index.search("holiday", k=5, filters={"modality": "image"})
        assert hits and hits[0].item.media == "" and hits[0].media_path is None
        assert index.search("zeppelin supplier", k=1)[0].item.name == "contacts.md"
        page = index.search("airship hangar", k=1, filters={"modality": "page"})[0]
        assert page.item.media == "" and page.media_path is None  # render embedded, not kept


def test_blur_faces_in_stored_photo(tmp_path):
    data = pytest.importorskip("skimage.data")
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    with Index(tmp_path / "idx", privacy={"blur_faces": True}, **FAST) as index:
        report = index.add(folder)
        assert report.privacy.get("faces_blurred", 0) >= 1
        hit = index.search("astronaut", k=1, filters={"modality": "image"})[0]
        stored = np.asarray(Image.open(hit.media_path).convert("L"), dtype=np.float64)
        original = np.asarray(Image.open(folder / "astronaut.png").convert("L"),
                              dtype=np.float64)
        face = (slice(85, 150), slice(185, 255))
        assert stored[face].var() < 0.5 * original[face].var()
        assert np.array_equal(stored[:60, :60], original[:60, :60])  # PNG: lossless elsewhere
        assert hit.item.metadata["faces_blurred"] >= 1


def test_cli_add_reports_privacy_counts(tmp_path, docs, monkeypatch):
    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")
    monkeypatch.setenv("MMRAG_PRIVACY__MASK_PII", "true")
    runner = CliRunner()
    text = runner.invoke(app, ["add", str(docs), "--index", str(tmp_path / "a")])
    assert text.exit_code == 0, text.output
    assert "privacy: exif stripped 1, pii email 1, pii iban 1, pii phone 1" in text.output
    as_json = runner.invoke(app, ["add", str(docs), "--index", str(tmp_path / "b"), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["privacy"] == {"exif_stripped": 1, "pii_email": 1,
                                                     "pii_iban": 1, "pii_phone": 1}


def test_privacy_settings_stay_with_the_index_when_reopened(tmp_path) -> None:
    """An index created to mask PII keeps masking when reopened without the setting."""
    from mmrag import Index

    where = tmp_path / "idx"
    with Index(where, profile="offline", encode={"text_encoder": "hashing"},
               privacy={"mask_pii": True}, show_progress=False) as idx:
        idx.add([b"first note, write to alice@example.com"])
    with Index(where, encode={"text_encoder": "hashing"}, show_progress=False) as idx:
        assert idx.settings.privacy.mask_pii
        report = idx.add([b"second note, write to bob@example.org"])
        assert report.privacy.get("pii_email") == 1
        hits = idx.search("second note", k=5, mode="bm25")
        assert hits and all("bob@example.org" not in h.item.text for h in hits)
        assert any("[EMAIL]" in h.item.text for h in hits)
    # an explicit setting still wins over the stored one
    with Index(where, encode={"text_encoder": "hashing"}, privacy={"mask_pii": False},
               show_progress=False) as idx:
        assert not idx.settings.privacy.mask_pii


class _ReadsAnEmail:
    """A scripted captioner, like a VLM that reads the address off a screenshot."""

    model_name = "scripted"

    def caption(self, images):
        return [f"a screenshot showing the address {EMAIL}" for _ in images]


def test_generated_captions_are_masked_too(tmp_path, docs):
    with Index(tmp_path / "idx", privacy={"mask_pii": True}, **FAST) as index:
        index._captioner = _ReadsAnEmail()  # as if encode.caption_model were set
        report = index.add(docs / "holiday.jpg")
        assert not report.failed and report.privacy["pii_email"] == 1
        item = index.search("screenshot showing the address", k=1, mode="bm25")[0].item
        assert "[EMAIL]" in item.metadata["generated_caption"]
        assert EMAIL not in item.text and EMAIL not in item.metadata["generated_caption"]
