"""CSV and TSV files: told from text by name and content, indexed as Markdown tables."""

from __future__ import annotations

import pytest

from mmrag import Index
from mmrag.config import IngestSettings
from mmrag.ingest import load, loader_for, sniff
from mmrag.types import Blob

CSV = ("city,country,population\n"
       "Reykjavik,Iceland,139875\n"
       "Tromsø,Norway,77544\n"
       "\"Nuuk, Sermersooq\",Greenland,19872\n")

TSV = ("city\tcountry\tpopulation\nReykjavik\tIceland\t139875\nTromsø\tNorway\t77544\n"
       "Nuuk, Sermersooq\tGreenland\t19872\n")
SEMICOLON = ("city;country;population\nReykjavik;Iceland;139875\nTromsø;Norway;77544\n"
             "Nuuk, Sermersooq;Greenland;19872\n")

def _pieces(data: bytes, name: str, **settings) -> list:
    mime = sniff(data, name)
    return list(load(Blob(uri=name, data=data, name=name, mime=mime),
                     IngestSettings(ocr="never", **settings)))


def test_sniffed_by_name_and_content():
    assert sniff(CSV.encode(), "cities.csv") == "text/csv"
    assert sniff(TSV.encode(), "cities.tsv") == "text/tab-separated-values"
    assert sniff(SEMICOLON.encode(), "cities.csv") == "text/csv"
    assert sniff(CSV.encode(), "cities.txt") == "text/plain"  # no name hint: plain text
    prose = b"Dear diary, today it rained.\nTomorrow, perhaps, the sun.\nWho knows.\n"
    assert sniff(prose, "diary.csv") == "text/plain"  # not a table, whatever its name
    assert loader_for("text/csv") == loader_for("text/tab-separated-values") == "csv"


@pytest.mark.parametrize("name, data", [("cities.csv", CSV), ("cities.tsv", TSV),
                                        ("cities_semicolon.csv", SEMICOLON)])
def test_one_table_with_its_header(name, data):
    [piece] = _pieces(data.encode(), name)
    assert piece.metadata == {"table": True, "rows": "1-4", "columns": 3}
    lines = piece.text.splitlines()
    assert lines[0] == "| city | country | population |" and lines[1] == "|---|---|---|"
    assert "| Nuuk, Sermersooq | Greenland | 19872 |" in lines
    assert "| Tromsø | Norway | 77544 |" in lines


def test_long_table_repeats_the_header_in_every_chunk():
    rows = "".join(f"station {i},{i * 1.5:.1f},{'north' if i % 2 else 'south'}\n"
                   for i in range(1, 301))
    data = ("station,rainfall_mm,side\n" + rows).encode()
    pieces = _pieces(data, "rain.csv", chunk_size=300)
    assert len(pieces) > 5
    text = data.decode()
    for p in pieces:
        assert p.text.startswith("| station | rainfall_mm | side |\n|---|---|---|")
        assert p.metadata["table"] is True and len(p.text) <= 320
        first, last = (int(n) for n in p.metadata["rows"].split("-"))
        # the span is the chunk's rows in the file
        assert text[p.chunk_start:p.chunk_end].rstrip("\n").splitlines()[-1] == \
            f"station {last - 1},{(last - 1) * 1.5:.1f},{'north' if (last - 1) % 2 else 'south'}"
    numbers = [p.metadata["rows"] for p in pieces]
    assert numbers[0].startswith("1-") and numbers[-1].endswith("-301")
    seen = " ".join(p.text for p in pieces)
    assert all(f"| station {i} |" in seen for i in (1, 150, 300))


def test_headerless_numbers_get_column_names():
    [piece] = _pieces(b"1,2,3\n4,5,6\n7,8,9\n", "grid.csv")
    assert piece.text.splitlines()[0] == "| column 1 | column 2 | column 3 |"
    assert "| 1 | 2 | 3 |" in piece.text


def test_large_table_streams_in_blocks():
    data = ("id,word\n" + "".join(f"{i},w{i}\n" for i in range(1, 5001))).encode()
    pieces = _pieces(data, "big.csv", chunk_size=2000)
    assert pieces[-1].metadata["rows"].endswith("-5001")
    rows = [p.metadata["rows"] for p in pieces]
    assert rows[0].startswith("1-") and not any(r.startswith("1-") for r in rows[1:])
    ends = [int(r.split("-")[1]) for r in rows]
    starts = [int(r.split("-")[0]) for r in rows[1:]]
    assert all(s == e + 1 for s, e in zip(starts, ends, strict=False))  # no row lost


def test_added_and_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "cities.csv").write_text(CSV, encoding="utf-8")
    with Index(tmp_path / "idx", encode={"text_encoder": "hashing"}) as index:
        report = index.add(tmp_path / "docs")
        assert not report.failed, report.failed
        hit = index.search("population of Tromsø", k=1)[0]
        assert hit.item.name == "cities.csv" and hit.item.mime == "text/csv"
        assert hit.item.metadata["table"] is True
        assert index.search("Greenland", k=1, filters={"table": True})
