"""A tiny OLE2 compound-file writer, to build Outlook ``.msg`` fixtures in code.

No package on PyPI writes ``.msg`` files (extract-msg and olefile only read), so the tests
lay out the compound file themselves: 512-byte sectors, streams under 4096 bytes in the
mini stream, one FAT without DIFAT sectors (files up to ~7 MB), siblings as a chain of
black nodes (readers walk the whole tree; none checks the red-black colouring).

    data = make_msg(subject="Budget", sender=("Ann", "ann@example.com"),
                    to=[("Bob", "bob@example.com")], body="Numbers attached.",
                    attachments=[("report.pdf", pdf_bytes)])
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Union

__all__ = ["make_cfb", "make_msg", "msg_tree"]

Tree = dict[str, Union[bytes, "Tree"]]  # a storage: name → stream bytes or sub-storage

_SECTOR = 512
_MINI = 64
_CUTOFF = 4096
_END, _FREE, _FATSECT, _NOSTREAM = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF


def _order(name: str) -> tuple[int, str]:
    return len(name), name.upper()  # the compound-file sibling order


def _flatten(tree: Tree) -> list[dict]:
    """Directory entries, root first, each storage's children linked as a chain."""
    entries: list[dict] = [{"name": "Root Entry", "type": 5, "data": b"", "child": _NOSTREAM,
                            "right": _NOSTREAM}]

    def add(storage: Tree, parent: int) -> None:
        ids = []
        for name in sorted(storage, key=_order):
            value = storage[name]
            entry = {"name": name, "type": 1 if isinstance(value, dict) else 2,
                     "data": value if isinstance(value, bytes) else b"",
                     "child": _NOSTREAM, "right": _NOSTREAM}
            entries.append(entry)
            ids.append(len(entries) - 1)
            if isinstance(value, dict):
                add(value, len(entries) - 1)
        if ids:
            entries[parent]["child"] = ids[0]
            for a, b in zip(ids, ids[1:], strict=False):
                entries[a]["right"] = b

    add(tree, 0)
    return entries


def _chain(fat: list[int], start: int, count: int) -> None:
    for i in range(count):
        fat[start + i] = start + i + 1 if i + 1 < count else _END


def make_cfb(tree: Tree) -> bytes:
    """The bytes of a compound file holding ``tree``."""
    entries = _flatten(tree)
    mini = bytearray()
    minifat: list[int] = []
    big: list[bytes] = []  # regular sectors after the header, in order
    fat: list[int] = []
    for e in entries:
        data = e["data"]
        e["size"] = len(data) if e["type"] == 2 else 0
        e["start"] = _END if e["type"] != 5 else 0
        if e["type"] != 2 or not data:
            continue
        if len(data) < _CUTOFF:
            n = -(-len(data) // _MINI)
            e["start"] = len(minifat)
            minifat.extend([0] * n)
            _chain(minifat, e["start"], n)
            mini += data + b"\0" * (n * _MINI - len(data))
        else:
            n = -(-len(data) // _SECTOR)
            e["start"] = len(big)
            fat.extend([0] * n)
            _chain(fat, e["start"], n)
            padded = data + b"\0" * (n * _SECTOR - len(data))
            big += [padded[i:i + _SECTOR] for i in range(0, len(padded), _SECTOR)]

    def place(blob: bytes) -> tuple[int, int]:
        n = -(-len(blob) // _SECTOR) if blob else 0
        start = len(big)
        fat.extend([0] * n)
        _chain(fat, start, n)
        padded = blob + b"\0" * (n * _SECTOR - len(blob))
        big.extend(padded[i:i + _SECTOR] for i in range(0, len(padded), _SECTOR))
        return (start if n else _END), n

    root = entries[0]
    root["start"], _ = place(bytes(mini))
    root["size"] = len(mini)
    minifat_blob = b"".join(struct.pack("<I", v) for v in minifat)
    minifat_start, minifat_n = place(minifat_blob)
    directory = b"".join(_entry(e) for e in entries)
    directory += _entry(None) * ((-len(entries)) % 4)
    dir_start, _ = place(directory)
    n_fat = 1
    while n_fat * (_SECTOR // 4) < len(big) + n_fat:
        n_fat += 1
    fat_start = len(big)
    fat.extend([_FATSECT] * n_fat)
    fat.extend([_FREE] * (n_fat * (_SECTOR // 4) - len(fat)))
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    big += [fat_bytes[i:i + _SECTOR] for i in range(0, len(fat_bytes), _SECTOR)]
    assert n_fat <= 109, "fixture too large for a writer without DIFAT sectors"
    difat = [fat_start + i for i in range(n_fat)] + [_FREE] * (109 - n_fat)
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"\0" * 16, 0x3E, 3,
        0xFFFE, 9, 6, b"\0" * 6, 0, n_fat, dir_start, 0, _CUTOFF, minifat_start, minifat_n,
        _END, 0) + struct.pack("<109I", *difat)
    return header + b"".join(big)


def _entry(e: dict | None) -> bytes:
    if e is None:
        return struct.pack("<64sHBBIII16sIQQIQ", b"", 0, 0, 0, _NOSTREAM, _NOSTREAM,
                           _NOSTREAM, b"\0" * 16, 0, 0, 0, 0, 0)
    name = e["name"].encode("utf-16-le") + b"\0\0"
    return struct.pack("<64sHBBIII16sIQQIQ", name, len(name), e["type"], 1, _NOSTREAM,
                       e["right"], e["child"], b"\0" * 16, 0, 0, 0, e["start"], e["size"])


# --- Outlook messages ------------------------------------------------------------------

_UNICODE, _BINARY, _LONG, _TIME, _BOOL = 0x001F, 0x0102, 0x0003, 0x0040, 0x000B
Address = tuple[str, str]


def _filetime(dt: datetime) -> int:
    return int((dt - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds() * 10**7)


def _props(strings: dict[int, object], fixed: dict[int, tuple[int, int]], header: bytes,
           ) -> Tree:
    """A property storage: variable-size values as ``__substg1.0_`` streams, fixed-size
    ones (and the sizes of the others) in ``__properties_version1.0``."""
    out: Tree = {}
    table = bytearray(header)
    for pid, value in strings.items():
        if isinstance(value, str):  # the size counts a terminator the stream leaves out
            kind, data, size = _UNICODE, value.encode("utf-16-le"), len(value) * 2 + 2
        else:
            assert isinstance(value, bytes)
            kind, data, size = _BINARY, value, len(value)
        out[f"__substg1.0_{pid:04X}{kind:04X}"] = data
        table += struct.pack("<IIII", (pid << 16) | kind, 6, size, 0)
    for pid, (kind, value) in fixed.items():
        table += struct.pack("<IIQ", (pid << 16) | kind, 6, value)
    out["__properties_version1.0"] = bytes(table)
    return out


def make_msg(**fields: object) -> bytes:
    """An Outlook ``.msg`` file (see :func:`msg_tree` for the fields)."""
    tree = msg_tree(**fields)  # type: ignore[arg-type]
    tree["__nameid_version1.0"] = {"__substg1.0_00020102": b"", "__substg1.0_00030102": b"",
                                   "__substg1.0_00040102": b""}
    return make_cfb(tree)


def msg_tree(*, subject: str = "", sender: Address | None = None,
             to: Sequence[Address] = (), cc: Sequence[Address] = (), body: str = "",
             html: str | None = None, date: datetime | None = None,
             message_id: str = "", message_class: str = "IPM.Note",
             attachments: Sequence[tuple] = (), embedded: bool = False) -> Tree:
    """A message's storage. ``attachments`` are ``(name, data)``, ``(name, data,
    content_id)`` (a picture the HTML shows through ``cid:``) or ``(name, tree)`` with a
    tree from ``msg_tree(..., embedded=True)`` (an attached Outlook message)."""
    strings: dict[int, object] = {0x001A: message_class}
    if subject:
        strings[0x0037] = subject
    if sender:
        strings.update({0x0C1A: sender[0], 0x0C1F: sender[1], 0x0C1E: "SMTP",
                        0x5D01: sender[1], 0x0042: sender[0], 0x0065: sender[1]})
    if to:
        strings[0x0E04] = "; ".join(n for n, _ in to)
    if cc:
        strings[0x0E03] = "; ".join(n for n, _ in cc)
    if body:
        strings[0x1000] = body
    if html is not None:
        strings[0x1013] = html.encode("utf-8")
    if message_id:
        strings[0x1035] = message_id
    fixed = {}
    if date is not None:
        fixed = {0x0039: (_TIME, _filetime(date)), 0x0E06: (_TIME, _filetime(date))}
    recipients = [(a, 1) for a in to] + [(a, 2) for a in cc]
    counts = struct.pack("<IIII", len(recipients), len(attachments), len(recipients),
                         len(attachments))
    # the top-level message's property header has 8 more reserved bytes than an embedded one
    header = b"\0" * 8 + counts + (b"" if embedded else b"\0" * 8)
    tree = _props(strings, fixed, header)
    for i, ((name, address), kind) in enumerate(recipients):
        tree[f"__recip_version1.0_#{i:08X}"] = _props(
            {0x3001: name, 0x3003: address, 0x39FE: address, 0x3002: "SMTP"},
            {0x0C15: (_LONG, kind)}, b"\0" * 8)
    for i, att in enumerate(attachments):
        name, data = att[0], att[1]
        values: dict[int, object] = {0x3707: name, 0x3704: name[:12]}
        if isinstance(data, dict):  # an attached message: its own storage, method 5
            storage = _props(values, {0x3705: (_LONG, 5), 0x0E21: (_LONG, i)}, b"\0" * 8)
            storage["__substg1.0_3701000D"] = data
            tree[f"__attach_version1.0_#{i:08X}"] = storage
            continue
        values[0x3701] = data
        if len(att) > 2:
            values[0x3712] = att[2]
        tree[f"__attach_version1.0_#{i:08X}"] = _props(
            values, {0x3705: (_LONG, 1), 0x0E21: (_LONG, i)}, b"\0" * 8)
    return tree
