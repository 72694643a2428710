"""E-mail ingest: EML and MSG files built in code, their headers as metadata and text,
bodies, quoted replies, cid pictures, attachments as child documents, bad input."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from mmrag import Index
from mmrag.config import IngestSettings
from mmrag.errors import IngestError
from mmrag.ingest import load, sniff
from mmrag.ingest.mail import quoted_ranges
from mmrag.types import Blob, Filters, Item
from tests.cfb import make_msg
from tests.factories import make_png, make_text_pdf

FAST = {"encode": {"text_encoder": "hashing"}, "ingest": {"ocr": "never"}}
DATE = "Mon, 09 Jan 2023 15:00:43 -0600"


def _inner_mail() -> EmailMessage:
    inner = EmailMessage()
    inner["From"] = "Carl <carl@example.com>"
    inner["To"] = "Ann Lee <ann@example.com>"
    inner["Subject"] = "Hangar minutes"
    inner["Date"] = "Fri, 16 Dec 2022 17:04:16 -0500"
    inner.set_content("The hangar roof gets aluminium panels.")
    inner.add_attachment(b"Marmalade inventory: forty jars.\n", maintype="text",
                         subtype="plain", filename="inventory.txt")
    return inner


def make_eml(*, pdf: bytes | None = None, nested: bool = True, extra: list | None = None,
             subject: str = "Quarterly zeppelin budget") -> bytes:
    """HTML + plain body, a cid picture, a PDF attachment and a forwarded e-mail."""
    msg = EmailMessage()
    msg["From"] = "Ann Lee <Ann@Example.com>"
    msg["To"] = "Bob <bob@example.com>, Sue <sue@example.com>"
    msg["Cc"] = "Tom <tom@example.com>"
    msg["Subject"] = subject
    msg["Date"] = DATE
    msg["Message-ID"] = "<budget-1@example.com>"
    msg.set_content("Budget\n\nThe airship budget is attached.\n")
    msg.add_alternative(
        "<html><body><h1>Budget</h1><p>The airship budget is attached.</p>"
        "<img src=\"cid:logo1\" alt=\"company logo\">"
        "<h2>Risks</h2><p>Helium prices may rise.</p></body></html>", subtype="html")
    msg.get_payload()[1].add_related(make_png("blue", (48, 48)), maintype="image",
                                     subtype="png", cid="<logo1>", filename="logo.png")
    msg.add_attachment(pdf if pdf is not None else make_text_pdf(["Zeppelin costs 42 crowns"]),
                       maintype="application", subtype="pdf", filename="report.pdf")
    if nested:
        msg.add_attachment(_inner_mail())
    for name, data, ctype in extra or []:
        main, sub = ctype.split("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return msg.as_bytes()


def _items(index: Index, name: str) -> list[Item]:
    rec = next(d for d in index.documents() if d.name == name)
    return index.store.get(rec.item_ids)


@pytest.fixture()
def mailbox(tmp_path: Path) -> Path:
    box = tmp_path / "mail"
    box.mkdir()
    (box / "budget.eml").write_bytes(make_eml())
    return box


def test_sniffed_from_content_not_name():
    data = make_eml()
    assert sniff(data, "budget.txt") == "message/rfc822"
    assert sniff(b"Received: from mx.example.com\r\n  by host\r\nSubject: hi\r\n\r\nbody",
                 "x") == "message/rfc822"
    # plain text that merely starts like a note is not stolen
    assert sniff(b"Subject: groceries\nDate: Monday\n\nmilk, eggs", "notes.txt") == "text/plain"
    assert sniff(b"Title: A\nAuthor: B\n\ntext", "a.md") == "text/markdown"
    assert sniff(b"From the desk of the editor: hello\n\nbody", "n.txt") == "text/plain"
    assert sniff(make_msg(subject="x"), "x.bin") == "application/vnd.ms-outlook"


def test_headers_are_metadata_and_text(tmp_path, mailbox):
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add(mailbox)
        assert not report.failed, report.failed
        items = _items(index, "budget.eml")
        texts = [it for it in items if it.modality == "text"]
        meta = texts[0].metadata
        assert meta["from"] == "Ann Lee <Ann@Example.com>"
        assert meta["sender"] == "ann@example.com"
        assert meta["to"] == ["bob@example.com", "sue@example.com"]
        assert meta["cc"] == ["tom@example.com"]
        assert meta["date"] == "2023-01-09T21:00:43+00:00"
        assert meta["subject"] == "Quarterly zeppelin budget"
        assert meta["message_id"] == "budget-1@example.com"
        assert meta["attachments"] == ["report.pdf", "Hangar minutes.eml"]
        assert all(it.metadata["sender"] == "ann@example.com" for it in items)
        head = texts[0].text
        assert head.startswith("From: Ann Lee <Ann@Example.com>\nTo: Bob <bob@example.com>")
        assert "Subject: Quarterly zeppelin budget" in head and "Date: " in head
        assert "Attachments: report.pdf (application/pdf)" in head
        # the HTML body, its headings as sections (the header block comes before them)
        assert {it.section for it in texts} >= {"Budget", "Budget > Risks"}
        assert any("Helium prices" in it.text for it in texts)
        assert not any("<p>" in it.text for it in texts)
        # searchable by the header words, filterable by sender and recipient
        hit = index.search("zeppelin budget Ann Lee", k=1)[0]
        assert hit.item.name == "budget.eml"
        assert index.search("budget", k=5, filters={"sender": "ann@example.com"})
        assert not index.search("budget", k=5, filters={"sender": "bob@example.com"})
        assert index.search("budget", k=5, filters={"to": "sue@example.com"})
        jan = {"date": {"gte": "2023-01", "lte": "2023-01-09"}}
        assert {h.item.name for h in index.search("budget", k=5, filters=jan)} == {"budget.eml"}
        assert not index.search("budget", k=5, filters={"date": {"gt": "2023-01-09"}})


def test_cid_picture_is_an_image_of_the_mail(tmp_path, mailbox):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(mailbox)
        images = [it for it in _items(index, "budget.eml") if it.modality == "image"]
        assert len(images) == 1
        pic = images[0]
        assert pic.metadata["embedded"] is True and pic.metadata["cid"] == "logo1"
        assert pic.metadata["sender"] == "ann@example.com"
        assert "company logo" in pic.text and pic.media
        # the picture is not also an attachment
        assert not any(d.name.endswith("logo.png") for d in index.documents())


def test_attachments_are_child_documents(tmp_path, mailbox):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(mailbox)
        docs = {d.name: d for d in index.documents()}
        parent = docs["budget.eml"]
        assert set(docs) == {"budget.eml", "budget.eml/report.pdf",
                             "budget.eml/Hangar minutes.eml",
                             "budget.eml/Hangar minutes.eml/inventory.txt"}
        pdf = docs["budget.eml/report.pdf"]
        assert pdf.mime == "application/pdf" and pdf.parent == parent.doc_id
        assert pdf.source == parent.source + "#report.pdf"
        page = next(it for it in _items(index, "budget.eml/report.pdf") if it.modality == "page")
        assert page.metadata["parent_doc_id"] == parent.doc_id and "42 crowns" in page.text
        inner = docs["budget.eml/Hangar minutes.eml"]
        assert inner.mime == "message/rfc822" and inner.parent == parent.doc_id
        assert _items(index, "budget.eml/Hangar minutes.eml")[0].metadata["sender"] == \
            "carl@example.com"
        leaf = docs["budget.eml/Hangar minutes.eml/inventory.txt"]
        assert leaf.parent == inner.doc_id
        hit = index.search("marmalade jars", k=1)[0]
        assert hit.item.name == "budget.eml/Hangar minutes.eml/inventory.txt"
        assert hit.item.metadata["parent_doc_id"] == inner.doc_id


def test_deleting_the_mail_deletes_its_attachments(tmp_path, mailbox):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(mailbox)
        assert index.delete(mailbox / "budget.eml") == 4
        assert index.documents() == [] and index.store.count() == 0
        index.add(mailbox)
        parent = next(d for d in index.documents() if d.name == "budget.eml")
        assert index.delete(parent.doc_id) == 4
        assert index.store.count() == 0


def test_replaced_mail_drops_old_attachments(tmp_path, mailbox):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(mailbox)
        (mailbox / "budget.eml").write_bytes(make_eml(
            pdf=make_text_pdf(["Revised: zeppelin costs 50 crowns"]), nested=False))
        report = index.add(mailbox)
        assert report.replaced == [str(mailbox / "budget.eml")]
        names = {d.name for d in index.documents()}
        assert names == {"budget.eml", "budget.eml/report.pdf"}
        assert {it.doc_id for it in index.search("crowns", k=10, group_by="item")} <= \
            {d.doc_id for d in index.documents()}
        assert "Revised" in index.search("zeppelin crowns", k=1)[0].item.text
        assert not index.search("marmalade", k=3, mode="bm25")


def test_same_attachment_in_two_mails_is_two_documents(tmp_path, mailbox):
    (mailbox / "second.eml").write_bytes(make_eml(subject="Another zeppelin budget",
                                                  nested=False))
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(mailbox)
        pdfs = [d for d in index.documents() if d.name.endswith("/report.pdf")]
        assert len(pdfs) == 2 and len({d.doc_id for d in pdfs}) == 2
        index.delete(mailbox / "second.eml")
        assert [d.name for d in index.documents() if d.name.endswith("/report.pdf")] == \
            ["budget.eml/report.pdf"]


def test_bad_and_unsupported_attachments(tmp_path):
    box = tmp_path / "mail"
    box.mkdir()
    extra = [("broken.pdf", b"%PDF-1.4\n garbage", "application/pdf"),
             ("tool.exe", b"MZ\x90\x00" + bytes(range(256)) * 4, "application/octet-stream"),
             ("song.mp3", b"U" * 300, "audio/mpeg")]  # text-looking bytes of a binary type
    (box / "m.eml").write_bytes(make_eml(nested=False, extra=extra))
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add(box)
        assert [f.source for f in report.failed] == [str(box / "m.eml") + "#broken.pdf"]
        assert "\n" not in report.failed[0].reason
        names = {d.name for d in index.documents()}
        assert names == {"m.eml", "m.eml/report.pdf"}  # the others are only named
        head = _items(index, "m.eml")[0].text
        assert "tool.exe (application/octet-stream)" in head and "song.mp3" in head


def test_attachment_depth_bounds_recursion(tmp_path, mailbox):
    with Index(tmp_path / "idx", encode={"text_encoder": "hashing"},
               ingest={"ocr": "never", "attachment_depth": 1}) as index:
        index.add(mailbox)
        assert "budget.eml/Hangar minutes.eml/inventory.txt" not in \
            {d.name for d in index.documents()}
        assert "budget.eml/Hangar minutes.eml" in {d.name for d in index.documents()}


# --- bodies -------------------------------------------------------------------------------


def _pieces(data: bytes, settings: IngestSettings | None = None) -> list:
    blob = Blob(uri="m.eml", data=data, name="m.eml", mime=sniff(data, "m.eml"))
    return list(load(blob, settings or IngestSettings(ocr="never")))


def test_quoted_replies_are_marked():
    body = ("Sounds good, see you at noon.\n\n> earlier line one\n> earlier line two\n\n"
            "Also bring the charts.\n\nOn Mon, 9 Jan 2023 at 15:00, Bob <bob@example.com>\n"
            "wrote:\n> Shall we meet for lunch?\n")
    msg = EmailMessage()
    msg["From"] = "ann@example.com"
    msg["Subject"] = "Re: lunch"
    msg.set_content(body)
    pieces = _pieces(msg.as_bytes(), IngestSettings(ocr="never", chunk_size=100,
                                                    chunk_overlap=0))
    own = [p for p in pieces if not p.metadata.get("quoted")]
    quoted = [p for p in pieces if p.metadata.get("quoted")]
    assert any("noon" in p.text for p in own) and any("charts" in p.text for p in own)
    assert any("earlier line one" in p.text for p in quoted)
    assert any("Shall we meet" in p.text for p in quoted)
    assert all(p.section == "Quoted reply" for p in quoted)
    assert not any("earlier line" in p.text for p in own)
    assert quoted_ranges("no quotes here") == []


def _raw_mail(content_type: str, payload: bytes, cte: str = "8bit",
              headers: bytes = b"") -> bytes:
    return (b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: charsets\r\n"
            b"MIME-Version: 1.0\r\n" + headers + b"Content-Type: " + content_type.encode()
            + b"\r\nContent-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n" + payload)


@pytest.mark.parametrize("content_type, payload, cte", [
    ("text/plain; charset=windows-1252", "Café – “déjà vu” €5".encode("cp1252"), "8bit"),
    # declared UTF-8, really cp1252: detection instead of replacement characters
    ("text/plain; charset=utf-8", "Café – “déjà vu” €5".encode("cp1252"), "8bit"),
    ("text/plain; charset=x-unknown-charset", "Café – “déjà vu” €5".encode(), "8bit"),
    ("text/plain; charset=utf-16",
     base64.encodebytes("Café – “déjà vu” €5".encode("utf-16")), "base64"),
    ("text/html; charset=utf-16le",
     base64.encodebytes("<p>Café – “déjà vu” €5</p>".encode("utf-16-le")), "base64"),
])
def test_odd_charsets(content_type, payload, cte):
    text = "\n".join(p.text for p in _pieces(_raw_mail(content_type, payload, cte)))
    assert "Café – “déjà vu” €5" in text, text


def test_encoded_and_raw_8bit_headers():
    data = _raw_mail("text/plain; charset=utf-8", b"body", headers=(
        b"X-Note: =?utf-8?q?ok?=\r\nReply-To: =?iso-8859-1?q?Ren=E9?= <rene@example.com>\r\n"))
    data = data.replace(b"Subject: charsets", "Subject: Réunion ☕".encode())
    data = data.replace(b"From: ann@example.com",
                        b"From: =?iso-8859-1?q?Andr=E9?= <andre@example.com>")
    meta = _pieces(data)[0].metadata
    assert meta["subject"] == "Réunion ☕" and meta["from"] == "André <andre@example.com>"
    assert meta["sender"] == "andre@example.com"


def test_broken_mime_still_gives_its_text():
    # a multipart whose boundary never appears, and a truncated base64 attachment
    data = (b"From: ann@example.com\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"nowhere\"\r\n\r\n"
            b"The quarterly figures are fine.\r\n")
    assert "quarterly figures" in "".join(p.text for p in _pieces(data))
    msg = EmailMessage()
    msg["From"] = "ann@example.com"
    msg["Subject"] = "truncated"
    msg.set_content("Body survives truncation.")
    msg.add_attachment(make_text_pdf(["x" * 200]), maintype="application", subtype="pdf",
                       filename="cut.pdf")
    raw = msg.as_bytes()
    cut = raw[: len(raw) - 300]  # the attachment's base64 and the closing boundary lost
    pieces = _pieces(cut)
    assert "Body survives truncation." in pieces[0].text


def test_bad_mail_is_one_line_and_the_run_goes_on(tmp_path):
    box = tmp_path / "mail"
    box.mkdir()
    smime = (b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: secret\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; "
             b"smime-type=enveloped-data; name=smime.p7m\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAx\r\n")
    pgp = (b"From: ann@example.com\r\nSubject: pgp\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
           b"boundary=\"b\"\r\n\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
           b"Version: 1\r\n--b--\r\n")
    (box / "a_smime.eml").write_bytes(smime)
    (box / "b_pgp.eml").write_bytes(pgp)
    (box / "c_msg_encrypted.msg").write_bytes(make_msg(subject="secret",
                                                       message_class="IPM.Note.SMIME"))
    (box / "d_good.eml").write_bytes(make_eml(nested=False))
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add(box)
        failed = {Path(f.source).name: f.reason for f in report.failed}
        assert set(failed) == {"a_smime.eml", "b_pgp.eml", "c_msg_encrypted.msg"}
        assert "encrypted e-mail (S/MIME)" in failed["a_smime.eml"]
        assert "encrypted e-mail (PGP)" in failed["b_pgp.eml"]
        assert "encrypted Outlook message" in failed["c_msg_encrypted.msg"]
        names = {d.name for d in index.documents()}
        assert names == {"d_good.eml", "d_good.eml/report.pdf"}  # nothing half-added


# --- Outlook .msg ---------------------------------------------------------------------


def test_msg_is_read_like_eml(tmp_path):
    box = tmp_path / "mail"
    box.mkdir()
    (box / "budget.msg").write_bytes(make_msg(
        subject="Airship budget", sender=("Ann Lee", "ann@example.com"),
        to=[("Bob", "bob@example.com")], cc=[("Cy", "cy@example.com")],
        body="Numbers attached.", date=datetime(2023, 3, 1, 12, tzinfo=UTC),
        html="<h1>Numbers</h1><p>Numbers attached.</p><img src=\"cid:logo1\" alt=\"logo\">",
        message_id="<m1@example.com>",
        attachments=[("report.pdf", make_text_pdf(["Zeppelin costs 42 crowns"])),
                     ("logo.png", make_png("blue", (40, 40)), "logo1")]))
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add(box)
        assert not report.failed, report.failed
        docs = {d.name: d for d in index.documents()}
        assert set(docs) == {"budget.msg", "budget.msg/report.pdf"}
        assert docs["budget.msg"].mime == "application/vnd.ms-outlook"
        items = _items(index, "budget.msg")
        meta = items[0].metadata
        assert meta["sender"] == "ann@example.com" and meta["to"] == ["bob@example.com"]
        assert meta["cc"] == ["cy@example.com"] and meta["subject"] == "Airship budget"
        assert meta["date"] == "2023-03-01T12:00:00+00:00"
        assert meta["message_id"] == "m1@example.com"
        assert items[0].text.startswith("From: Ann Lee <ann@example.com>")
        assert items[0].section == "Numbers"
        assert [it.metadata["cid"] for it in items if it.modality == "image"] == ["logo1"]
        assert docs["budget.msg/report.pdf"].parent == docs["budget.msg"].doc_id
        hits = index.search("crowns", k=3, filters={"parent_doc_id": docs["budget.msg"].doc_id})
        assert hits and hits[0].item.name == "budget.msg/report.pdf"


def test_corrupt_msg_is_one_line():
    data = make_msg(subject="x")
    broken = data[:1024]  # the FAT and directory are gone
    with pytest.raises(IngestError) as err:
        list(load(Blob(uri="bad.msg", data=broken, name="bad.msg",
                       mime="application/vnd.ms-outlook"), IngestSettings()))
    assert str(err.value).startswith("bad.msg: ") and "\n" not in str(err.value)


# --- filters ------------------------------------------------------------------------------


def test_filters_match_lists_and_ranges():
    item = Item(id="a", doc_id="d", source="s", modality="text",
                metadata={"to": ["bob@example.com", "sue@example.com"],
                          "date": "2023-01-09T21:00:43+00:00", "width": 640})
    assert Filters.build({"to": "sue@example.com"}).matches(item)
    assert not Filters.build({"to": "tom@example.com"}).matches(item)
    assert Filters.build({"date": {"gte": "2023-01-09", "lt": "2023-01-10"}}).matches(item)
    assert Filters.build({"date": {"lte": "2023-01"}}).matches(item)
    assert not Filters.build({"date": {"gt": "2023-01-09"}}).matches(item)
    assert Filters.build({"width": {"gt": 600}}).matches(item)
    assert not Filters.build({"width": {"gt": "600"}}).matches(item)  # no str/int compare
    assert not Filters.build({"missing": {"gt": 1}}).matches(item)


def test_mask_pii_masks_addresses_in_metadata(tmp_path, mailbox):
    with Index(tmp_path / "idx", privacy={"mask_pii": True}, **FAST) as index:
        index.add(mailbox)
        first = _items(index, "budget.eml")[0]
        assert "ann@example.com" not in first.text.lower()
        assert first.metadata["sender"] == "[EMAIL]"
        assert first.metadata["to"] == ["[EMAIL]"] * 2
        assert "example.com" not in str(first.metadata).lower()


def test_cli_filters_by_sender_and_date(tmp_path, mailbox, monkeypatch):
    import json

    from typer.testing import CliRunner

    from mmrag.cli import app

    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")
    monkeypatch.setenv("MMRAG_INGEST__OCR", "never")
    runner = CliRunner()
    idx = str(tmp_path / "idx")

    def search(*extra: str) -> set[str]:
        res = runner.invoke(app, ["search", "budget", "--index", idx, "--json", *extra])
        assert res.exit_code == 0, (res.output, res.exception)
        return {h["name"] for h in json.loads(res.output)}

    assert runner.invoke(app, ["add", str(mailbox), "--index", idx]).exit_code == 0
    assert search("--filter", "sender=ann@example.com") == {"budget.eml"}
    assert search("--filter", "sender=bob@example.com") == set()
    assert search("--filter", "date>=2023-01", "--filter", "date<2023-02") == {"budget.eml"}
    assert search("--filter", "date>2023-01-09") == set()
    bad = runner.invoke(app, ["search", "budget", "--index", idx, "--filter", "nonsense"])
    assert bad.exit_code != 0 and "nonsense" in str(bad.exception)  # main() prints it


def test_msg_attached_message_and_picture_are_child_documents(tmp_path):
    from tests.cfb import msg_tree

    inner = msg_tree(subject="Hangar minutes", sender=("Carl", "carl@example.com"),
                     body="The hangar roof gets aluminium panels.", embedded=True)
    box = tmp_path / "mail"
    box.mkdir()
    (box / "fwd.msg").write_bytes(make_msg(
        subject="Fwd: minutes", sender=("Ann", "ann@example.com"), body="See attached.",
        attachments=[("Hangar minutes", inner), ("harbour_photo.png", make_png("teal"))]))
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add(box)
        assert not report.failed, report.failed
        docs = {d.name: d for d in index.documents()}
        assert set(docs) == {"fwd.msg", "fwd.msg/Hangar minutes.eml",
                             "fwd.msg/harbour_photo.png"}
        assert docs["fwd.msg/harbour_photo.png"].mime == "image/png"
        inner_items = _items(index, "fwd.msg/Hangar minutes.eml")
        assert inner_items[0].metadata["sender"] == "carl@example.com"
        assert "aluminium panels" in " ".join(it.text for it in inner_items)
        photo = _items(index, "fwd.msg/harbour_photo.png")[0]
        assert photo.modality == "image" and photo.metadata["parent_doc_id"] == \
            docs["fwd.msg"].doc_id
