"""Charts, kind facets, colours and orientation read off pixels (ingest/facets.py,
ingest/charts.py). Charts are drawn in code with known values; the tests assert the
values and trends read back, not merely that some text appeared."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mmrag import Index
from mmrag.config import IngestSettings
from mmrag.ingest.charts import read_charts
from mmrag.ingest.facets import color_name, describe, dominant_colors, orientation
from mmrag.ingest.ocr import ocr_image
from tests.ingest.charts_made import (
    COSTS,
    MONTHS,
    REVENUE,
    SALES,
    chart_image,
    chart_pdf,
    chart_png,
)

FULL = {"Jan": "January", "Jun": "June", "Aug": "August"}


def _read(kind: str):
    img = chart_image(kind)
    ocr = ocr_image(img, IngestSettings())
    return img, ocr, read_charts(img, ocr.lines)


def test_bar_chart_values_come_back_within_five_percent_of_the_axis():
    _, _, charts = _read("bar")
    assert len(charts) == 1
    chart = charts[0]
    assert chart.kind == "bar" and chart.categories == MONTHS
    [series] = chart.series
    span = max(SALES)
    for got, want in zip(series.values, SALES, strict=True):
        assert got is not None and abs(got - want) <= 0.05 * span
    said = " ".join(chart.sentences())
    assert "peaks in June" in said and "lowest in January" in said
    assert "| Jun | 42 |" in chart.table()


def test_line_chart_reads_two_series_their_trends_and_order():
    _, _, charts = _read("line")
    [chart] = charts
    assert chart.kind == "line"
    by_name = {n: s for n, s in zip(chart.series_names(), chart.series, strict=True)}
    assert set(by_name) == {"Revenue", "Costs"}
    for name, want in (("Revenue", REVENUE), ("Costs", COSTS)):
        got = by_name[name].values
        assert all(abs(g - w) <= 0.05 * max(REVENUE) for g, w in zip(got, want, strict=True))
    said = " ".join(chart.sentences())
    assert said.count("rises every month") == 2  # Revenue and Costs
    assert "Revenue is above Costs in every month" in said
    assert {by_name["Revenue"].color, by_name["Costs"].color} == {"red", "blue"}


def test_describe_marks_charts_and_names_their_colours():
    img, ocr, _ = _read("line")
    found = describe(img, ocr.lines, ocr.rotation)
    assert found.kinds[:2] == ["chart", "line"] and "picture" not in found.kinds
    assert found.colors[:2] == ["red", "blue"]
    meta = found.metadata()
    assert meta["charts"][0]["kind"] == "line" and meta["orientation"] == "landscape"
    assert "rises every month" in found.text()


def _photo(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:240, 0:320]
    arr = np.stack([xx / 320 * 255, yy / 240 * 255, (xx + yy) % 255], -1)
    arr = arr + rng.normal(0, 25, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def test_a_photo_is_a_picture_not_a_chart():
    found = describe(_photo(), [])
    assert found.kinds == ["picture"] and not found.charts


def _table(rows: int = 5, cols: int = 4) -> Image.Image:
    img = Image.new("RGB", (400, 260), "white")
    draw = ImageDraw.Draw(img)
    for r in range(rows + 1):
        draw.line([(20, 20 + r * 44), (380, 20 + r * 44)], fill="black", width=2)
    for c in range(cols + 1):
        draw.line([(20 + c * 90, 20), (20 + c * 90, 240)], fill="black", width=2)
    return img


def test_a_ruled_grid_is_a_table_and_a_blank_page_is_nothing():
    assert describe(_table(), []).kinds == ["table"]
    assert describe(Image.new("RGB", (300, 400), "white"), []).kinds == []


def test_formula_needs_maths_on_more_than_one_line():
    class Line:
        def __init__(self, text):
            self.text, self.bbox = text, (0, 0, 10, 10)

    maths = [Line("E = mc^2"), Line("∑ x_i ≤ √n"), Line("where x is the input")]
    prose = [Line("We set x = 3 in all runs of the experiment"), Line("and report means")]
    assert "formula" in describe(Image.new("RGB", (200, 100), "white"), maths).kinds
    assert "formula" not in describe(Image.new("RGB", (200, 100), "white"), prose).kinds


@pytest.mark.parametrize("rgb, name", [
    ((220, 30, 30), "red"), ((30, 60, 200), "blue"), ((40, 160, 60), "green"),
    ((250, 220, 40), "yellow"), ((240, 140, 20), "orange"), ((120, 40, 170), "purple"),
    ((120, 70, 30), "brown"), ((10, 10, 10), "black"), ((128, 128, 128), "grey"),
    ((250, 250, 250), "white"), ((255, 170, 190), "pink"),
])
def test_color_names(rgb, name):
    assert color_name(rgb) == name


def test_dominant_colours_leave_out_the_background():
    img = Image.new("RGB", (200, 200), "white")
    ImageDraw.Draw(img).rectangle([20, 20, 120, 180], fill=(200, 20, 20))
    ImageDraw.Draw(img).rectangle([130, 100, 180, 180], fill=(20, 40, 200))
    assert dominant_colors(img) == ["red", "blue"]


def _text_page(turn: int) -> Image.Image:
    img = Image.new("RGB", (900, 1200), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=34)
    for i, line in enumerate(["Quarterly report of the harbour", "Ships arrived on time",
                              "Cargo volumes grew in spring", "The new crane works well"]):
        draw.text((60, 80 + i * 70), line, fill="black", font=font)
    return img.rotate(turn, expand=True)


def test_a_page_scanned_sideways_is_marked_rotated_and_landscape():
    upright = _text_page(0)
    turned = _text_page(90)
    assert orientation(upright) == "portrait" and orientation(turned) == "landscape"
    ocr = ocr_image(turned, IngestSettings())
    found = describe(turned, ocr.lines, ocr.rotation)
    assert found.rotation in (90, 270)
    assert found.metadata()["rotated"] == found.rotation
    assert f"text rotated {found.rotation} degrees" in found.text()
    assert "rotated" not in describe(upright, ocr_image(upright, IngestSettings()).lines).text()


def _items(idx: Index) -> list[dict]:
    rows = idx.store._table.search().select(["name", "modality", "metadata", "text", "page"]) \
        .limit(None).to_arrow().to_pylist()
    return [{**r, "metadata": json.loads(r["metadata"])} for r in rows]


def test_index_finds_a_chart_by_what_it_shows_and_filters_by_facet(tmp_path):
    with Index(tmp_path / "idx", show_progress=False,
               encode={"text_encoder": "hashing"}) as idx:
        report = idx.add([("sales.png", chart_png("bar")), ("photo.png", _png(_photo())),
                          ("trend.pdf", chart_pdf("line"))])
        assert not report.failed
        hits = idx.search("which month do sales peak", k=3)
        assert hits[0].item.name == "sales.png"
        charts = idx.search("chart", k=10, filters={"facets": "chart"})
        assert {h.item.name for h in charts} == {"sales.png", "trend.pdf"}
        assert [h.item.name for h in idx.search("picture", k=5,
                                                filters={"facets": "picture"})] == ["photo.png"]
        red = {h.item.name for h in idx.search("line chart", k=5, filters={"colors": "red"})}
        assert "trend.pdf" in red and "sales.png" not in red  # the bars are blue
        page = next(it for it in _items(idx) if it["name"] == "trend.pdf"
                    and it["modality"] == "page")
        assert page["metadata"]["charts"][0]["kind"] == "line"  # read from the text layer
        # the reading is an item of its own on the same page, so the page's own words
        # keep their BM25 weight and the page still collects both
        [chart] = [it for it in _items(idx) if it["name"] == "trend.pdf"
                   and it["metadata"].get("origin") == "chart"]
        assert chart["page"] == page["page"] and chart["modality"] == "text"
        assert "Revenue is above Costs in every month" in chart["text"]
        assert "Revenue is above Costs" not in page["text"]


def test_visual_facets_off_adds_nothing(tmp_path):
    with Index(tmp_path / "idx", show_progress=False, encode={"text_encoder": "hashing"},
               ingest={"visual_facets": False}) as idx:
        idx.add([("sales.png", chart_png("bar"))])
        [item] = [it for it in _items(idx) if it["name"] == "sales.png"]
    assert "facets" not in item["metadata"] and "peaks in" not in item["text"]


def _png(img: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
