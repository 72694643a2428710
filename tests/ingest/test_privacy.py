"""Privacy filters on real inputs: planted PII, EXIF made in code, a shipped face photo."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mmrag.config import PrivacySettings
from mmrag.ingest.base import Piece
from mmrag.ingest.privacy import exif, faces, pii, protect

GPS, EXIF_IFD = 0x8825, 0x8769
MAKE, MODEL, ORIENTATION, SERIAL, DATE = 0x010F, 0x0110, 0x0112, 0xA431, 0x9003

VISA_OK = "4111 1111 1111 1111"      # Luhn-valid test number
VISA_BAD = "4111 1111 1111 1112"     # one digit off: fails Luhn
IBAN_OK = "GB82 WEST 1234 5698 7654 32"
IBAN_BAD = "GB82 WEST 1234 5698 7654 33"  # fails mod-97
ALL = ["email", "phone", "iban", "credit_card", "ipv4", "ssn"]


def _astronaut() -> Image.Image:
    """Eileen Collins' NASA portrait (public domain), shipped in scikit-image's wheel."""
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(data.astronaut())


def _exif_jpeg(fmt: str = "JPEG") -> bytes:
    tags = Image.Exif()
    tags[MAKE], tags[MODEL], tags[ORIENTATION] = "Canon", "EOS 5D", 6
    gps = tags.get_ifd(GPS)
    gps[1], gps[2] = "N", (48.0, 51.0, 24.0)
    inner = tags.get_ifd(EXIF_IFD)
    inner[SERIAL], inner[DATE] = "SN-123456", "2024:05:01 10:00:00"
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format=fmt, exif=tags.tobytes())
    return buf.getvalue()


# --- text ---------------------------------------------------------------------------------

def test_checksums():
    assert pii.luhn_ok("4111111111111111") and not pii.luhn_ok("4111111111111112")
    assert pii.iban_ok("DE89370400440532013000") and not pii.iban_ok("DE89370400440532013001")


def test_planted_pii_is_masked_and_counted():
    text = (f"Write to jane.doe@example.org or call +44 20 7946 0958 / (555) 123-4567. "
            f"Card {VISA_OK}, typo {VISA_BAD}. Pay to {IBAN_OK}, not {IBAN_BAD}. "
            f"Host 192.168.10.20, SSN 123-45-6789, order 12345678 on 2024-05-01.")
    counts: dict[str, int] = {}
    out = pii.mask(text, ALL, counts)
    assert counts == {"pii_email": 1, "pii_phone": 2, "pii_credit_card": 1, "pii_iban": 1,
                      "pii_ipv4": 1, "pii_ssn": 1}
    for raw in ("jane.doe@example.org", "7946 0958", "123-4567", VISA_OK, IBAN_OK,
                "192.168.10.20", "123-45-6789"):
        assert raw not in out
    for kept in (VISA_BAD, IBAN_BAD, "12345678", "2024-05-01"):  # fail checks / not PII
        assert kept in out
    assert "[EMAIL]" in out and "[CREDIT_CARD]" in out and "[IBAN]" in out


def test_only_chosen_types_are_masked():
    counts: dict[str, int] = {}
    out = pii.mask("a@b.io at 10.0.0.1", ["ipv4"], counts)
    assert out == "a@b.io at [IPV4]" and counts == {"pii_ipv4": 1}
    with pytest.raises(ValueError, match="passport"):
        pii.mask("x", ["passport"], {})


def test_protect_masks_text_and_ocr_metadata():
    piece = Piece(modality="image", text="scan\nmail me: bob@corp.com",
                  metadata={"ocr_text": "mail me: bob@corp.com"})
    counts: dict[str, int] = {}
    protect(piece, PrivacySettings(mask_pii=True), counts)
    assert piece.text == "scan\nmail me: [EMAIL]"
    assert piece.metadata["ocr_text"] == "mail me: [EMAIL]"
    assert counts == {"pii_email": 1}  # OCR text is part of piece.text: counted once


def test_a_spoken_segment_with_pii_loses_its_clip():
    """The transcript is masked; the Opus clip of the same words would still say them."""
    said = Piece(modality="text", text="call me on +44 20 7946 0958", media=b"OggS...",
                 media_ext="ogg")
    plain = Piece(modality="text", text="the meeting starts at noon", media=b"OggS...",
                  media_ext="ogg")
    counts: dict[str, int] = {}
    for piece in (said, plain):
        protect(piece, PrivacySettings(mask_pii=True), counts)
    assert said.text == "call me on [PHONE]" and said.media is None
    assert plain.media == b"OggS..."
    assert counts == {"pii_phone": 1, "audio_clips_dropped": 1}


# --- EXIF ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_gps_and_device_tags_removed_orientation_kept(fmt):
    cleaned = exif.strip(_exif_jpeg(fmt), fmt.lower())
    assert cleaned is not None
    tags = Image.open(io.BytesIO(cleaned)).getexif()
    assert MAKE not in tags and MODEL not in tags and not tags.get_ifd(GPS)
    assert tags[ORIENTATION] == 6
    inner = tags.get_ifd(EXIF_IFD)
    assert SERIAL not in inner and inner[DATE] == "2024:05:01 10:00:00"
    assert exif.strip(cleaned, fmt.lower()) is None  # nothing left to remove


def test_jpeg_pixels_are_untouched():
    data = _exif_jpeg()
    cleaned = exif.strip(data, "jpg")
    assert cleaned is not None
    # byte-level rewrite: the entropy-coded scan is copied, not re-encoded
    assert data[data.index(b"\xff\xda"):] == cleaned[cleaned.index(b"\xff\xda"):]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))),
                          np.asarray(Image.open(io.BytesIO(cleaned))))


def test_clean_image_is_left_byte_identical():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    piece = Piece(modality="image", media=buf.getvalue(), media_ext="jpg")
    counts: dict[str, int] = {}
    protect(piece, PrivacySettings(), counts)
    assert piece.media == buf.getvalue() and counts == {}


def test_protect_strips_by_default_and_keep_option():
    data = _exif_jpeg()
    piece = Piece(modality="image", media=data, media_ext="jpg")
    counts: dict[str, int] = {}
    protect(piece, PrivacySettings(), counts)
    assert counts == {"exif_stripped": 1} and MAKE not in Image.open(
        io.BytesIO(piece.media or b"")).getexif()
    kept = Piece(modality="image", media=data, media_ext="jpg")
    protect(kept, PrivacySettings(strip_exif=False), counts)
    assert kept.media == data


# --- faces --------------------------------------------------------------------------------

def _grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=np.float64)


def test_face_found_on_shipped_photo():
    boxes = faces.detect(_astronaut())
    # the face is around x 180-260, y 70-160 in the 512x512 photo
    assert any(x0 < 220 < x1 and y0 < 110 < y1 for x0, y0, x1, y1 in boxes), boxes


def test_protect_blurs_stored_original_inside_the_face_only():
    img = _astronaut()
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)
    piece = Piece(modality="image", image=img, media=buf.getvalue(), media_ext="jpg")
    counts: dict[str, int] = {}
    shown = protect(piece, PrivacySettings(blur_faces=True), counts)
    assert counts["faces_blurred"] >= 1 and piece.media_ext == "jpg"
    stored = _grey(Image.open(io.BytesIO(piece.media or b"")))
    before = _grey(Image.open(io.BytesIO(buf.getvalue())))
    face = (slice(85, 150), slice(185, 255))
    assert stored[face].var() < 0.5 * before[face].var()
    assert np.abs(stored[:60, :60] - before[:60, :60]).mean() < 3  # far from any face
    assert shown is piece.image  # embed_blurred: encoders see the blurred copy
    assert _grey(shown)[face].var() < 0.5 * _grey(img)[face].var()


def test_embed_blurred_off_gives_encoders_the_original():
    img = _astronaut()
    piece = Piece(modality="page", image=img)
    shown = protect(piece, PrivacySettings(blur_faces=True, embed_blurred=False), {})
    assert shown is img and piece.image is not img  # the stored render is still blurred
    assert np.array_equal(np.asarray(img), np.asarray(_astronaut()))  # input not mutated


def test_defaults_leave_text_and_pixels_alone():
    img = _astronaut()
    piece = Piece(modality="image", text="mail a@b.io", image=img)
    counts: dict[str, int] = {}
    assert protect(piece, PrivacySettings(), counts) is img
    assert piece.text == "mail a@b.io" and piece.image is img and counts == {}


def test_rotated_photo_is_stored_upright_with_the_face_blurred():
    upright = _astronaut().crop((0, 0, 512, 400))  # not square: a wrong turn shows in size
    tags = Image.Exif()
    tags[ORIENTATION] = 6  # viewers rotate 90° clockwise to display
    buf = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, format="JPEG", quality=92,
                                                      exif=tags.tobytes())
    piece = Piece(modality="image", image=upright, media=buf.getvalue(), media_ext="jpg")
    protect(piece, PrivacySettings(blur_faces=True), {})
    stored = Image.open(io.BytesIO(piece.media or b""))
    assert stored.size == upright.size and stored.getexif().get(ORIENTATION) == 1
    face = (slice(85, 150), slice(185, 255))
    assert _grey(stored)[face].var() < 0.5 * _grey(upright)[face].var()


def test_unreadable_original_falls_back_to_the_blurred_render():
    img = _astronaut()
    piece = Piece(modality="image", image=img, media=b"not an image", media_ext="bin")
    protect(piece, PrivacySettings(blur_faces=True, strip_exif=False), {})
    assert piece.media is None and piece.image is not img  # put_media stores the render
