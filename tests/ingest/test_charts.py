"""Charts read back into numbers (ingest/charts.py) and told as text (ingest/chart_text.py).

Every chart is drawn by matplotlib in code with known values (tests/ingest/charts_made.py)
and read through the same OCR the loaders run; values must come back within 5% of the axis
range, and the sentences must name the right categories. Shapes that are not bar or line
charts must give nothing.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mmrag.config import IngestSettings
from mmrag.ingest import load
from mmrag.ingest.chart_text import Chart, Series, category_unit
from mmrag.ingest.charts import parse_number, read_charts
from mmrag.ingest.ocr import ocr_image
from mmrag.types import Blob
from tests.ingest import charts_made as made


def _read(png: bytes):
    img = Image.open(io.BytesIO(png)).convert("RGB")
    return read_charts(img, ocr_image(img, IngestSettings()).lines)


def _close(got: list[float | None], want: list[float], span: float) -> bool:
    return all(g is not None and abs(g - w) <= 0.05 * span
               for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("text, value, affix", [
    ("42", 42.0, ("", "")), ("1,200", 1200.0, ("", "")), ("-5", -5.0, ("", "")),
    ("\u22122.5", -2.5, ("", "")), ("20%", 20.0, ("", "%")), ("$30", 30.0, ("$", "")),
    ("50-", 50.0, ("", "")),  # a tick mark read as a dash
    ("0.25", 0.25, ("", "")),
])
def test_parse_number(text, value, affix):
    assert parse_number(text) == (value, affix)


@pytest.mark.parametrize("text", ["Q1", "Jan", "1-2", "12 15", "", "size 23B"])
def test_parse_number_refuses_what_is_not_one_number(text):
    assert parse_number(text) is None


def test_grouped_bars_keep_their_series_apart_and_compare_them():
    [chart] = _read(made.figure_png(made.grouped_bars))
    assert chart.kind == "bar" and chart.categories == made.QUARTERS
    by_name = dict(zip(chart.series_names(), chart.series, strict=True))
    assert set(by_name) == {"North", "South"}  # from the legend
    assert _close(by_name["North"].values, made.NORTH, 50)
    assert _close(by_name["South"].values, made.SOUTH, 50)
    assert {by_name["North"].color, by_name["South"].color} == {"red", "blue"}
    said = " ".join(chart.sentences())
    assert "North is higher than South in every quarter." in said
    assert "North peaks in Q4 (52)." in said
    assert "| Quarter | North | South |" in chart.table()


def test_horizontal_bars_are_read_top_to_bottom():
    [chart] = _read(made.figure_png(made.horizontal_bars))
    assert chart.kind == "bar" and chart.horizontal
    # matplotlib draws the first category at the bottom
    assert chart.categories == made.TEAMS[::-1]
    assert _close(chart.series[0].values, made.SCORES[::-1], 35)
    said = " ".join(chart.sentences())
    assert "peaks in Bravo" in said and "lowest in Delta" in said
    assert chart.text().startswith("chart: horizontal bar chart")


def test_a_dip_is_told_as_a_fall_and_a_rise():
    [chart] = _read(made.figure_png(made.dip_line))
    assert chart.kind == "line" and chart.categories == made.MONTHS
    assert _close(chart.series[0].values, made.DIP, 20)
    said = " ".join(chart.sentences())
    assert "falls from February to May" in said and "rises from May to August" in said
    assert "lowest in May" in said and "peaks in February" in said


def test_each_panel_is_its_own_chart():
    bars, line = _read(made.figure_png(made.two_panels, size=(8, 4)))
    assert bars.kind == "bar" and bars.categories == made.QUARTERS
    assert _close(bars.series[0].values, made.NORTH, 50)
    assert line.kind == "line" and line.categories == made.MONTHS
    assert _close(line.series[0].values, made.REVENUE, 30)
    assert "rises every month" in " ".join(line.sentences())


def _page_pieces(data: bytes, name: str):
    blob = Blob(uri=f"mem://{name}", data=data, name=name, mime="application/pdf")
    return list(load(blob, IngestSettings()))


def test_a_chart_scanned_into_a_pdf_page_is_read_from_its_ocr():
    pages = [p for p in _page_pieces(made.raster_pdf(_big_bar_png(), at=(70, 300)),
                                     "scan.pdf")
             if p.modality == "page"]
    [page] = pages
    assert page.ocr is not None and page.ocr.engine != "text"  # no text layer: OCR'd
    [chart] = read_charts(page.image, page.ocr.lines)
    assert chart.categories == made.MONTHS
    assert _close(chart.series[0].values, made.SALES, 42)


def _big_bar_png() -> bytes:
    """The bar chart at 180 dpi: a page is OCR'd at 200 dpi, so labels drawn at 100 dpi
    and pasted at 150 dpi would be too small to read."""
    import matplotlib.pyplot as plt

    fig = made._figure("bar")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=180)
    plt.close(fig)
    return buf.getvalue()


def test_a_vector_pdf_chart_is_read_from_its_text_layer():
    [page] = [p for p in _page_pieces(made.chart_pdf("line"), "trend.pdf")
              if p.modality == "page"]
    assert page.ocr is not None and page.ocr.engine == "text"
    [chart] = read_charts(page.image, page.ocr.lines)
    assert chart.kind == "line" and chart.categories == made.MONTHS
    by_name = dict(zip(chart.series_names(), chart.series, strict=True))
    assert _close(by_name["Revenue"].values, made.REVENUE, 33)


def _text_image(lines: list[str]) -> Image.Image:
    img = Image.new("RGB", (900, 60 + 50 * len(lines)), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=30)
    for i, line in enumerate(lines):
        draw.text((40, 30 + 50 * i), line, fill="black", font=font)
    return img


@pytest.mark.parametrize("what", ["scatter", "numbers", "photo", "no text"])
def test_no_chart_when_it_is_not_one(what):
    if what == "scatter":
        assert _read(made.figure_png(made.scatter)) == []
        return
    if what == "numbers":  # a price list: numbers in a column, no plot
        img = _text_image(["Apples 10", "Pears 20", "Plums 30", "Kiwis 40", "Figs 50"])
        lines = ocr_image(img, IngestSettings()).lines
    elif what == "photo":
        rng = np.random.default_rng(0)
        img = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
        lines = ocr_image(img, IngestSettings()).lines
    else:
        img = Image.open(io.BytesIO(made.chart_png("bar"))).convert("RGB")
        lines = []
    assert read_charts(img, lines) == []


def _labels(*texts_and_boxes):
    return [SimpleNamespace(text=t, bbox=b, confidence=1.0) for t, b in texts_and_boxes]


def test_labels_that_do_not_read_as_a_linear_scale_give_nothing():
    img = Image.open(io.BytesIO(made.chart_png("bar"))).convert("RGB")
    # a column of numbers whose spacing does not match their values (not an axis)
    lines = _labels(("10", (20, 50, 40, 62)), ("20", (20, 90, 40, 102)),
                    ("70", (20, 130, 40, 142)), ("80", (20, 300, 40, 312)))
    assert read_charts(img, lines) == []


# --- the text told about a chart (no pixels involved) ----------------------------------------

def _chart(values, categories=None, kind="line", names=("",), step=10.0, **kw):
    series = [Series(n, "blue", list(v)) for n, v in zip(names, values, strict=True)]
    cats = categories or made.MONTHS[:len(values[0])]
    chart = Chart(kind, cats, series, step=step, **kw)
    chart.unit = category_unit(cats)
    return chart


def test_sentences_name_peak_low_and_every_month_rises():
    chart = _chart([[5, 8, 11, 15, 19, 24]], value_label="Sales (k)")
    said = chart.sentences()
    assert "Sales peaks in June (24)." in said
    assert "It is lowest in January (5)." in said  # the name once, not in every sentence
    assert "It rises every month, from 5 in January to 24 in June." in said


def test_sentences_compare_series_and_name_exceptions():
    chart = _chart([[10, 12, 15, 18, 22, 25], [8, 9, 16, 12, 15, 16]], names=("A", "B"))
    said = chart.sentences()
    assert "A is above B except in March." in said
    chart = _chart([[10, 12, 15, 18], [8, 9, 11, 12]], names=("A", "B"))
    assert "A is above B in every month." in chart.sentences()


def test_a_flat_series_stays_level_and_unordered_bars_get_no_trend():
    assert "Value stays level at about 20." in _chart([[20, 20.4, 19.8, 20.1]]).sentences()
    bars = _chart([[3, 7, 5]], categories=["Math", "Code", "Law"], kind="bar")
    said = " ".join(bars.sentences())
    assert "peaks in Code (7)" in said and "rises" not in said and "falls" not in said


def test_table_has_a_row_per_category_and_keeps_the_axis_affix():
    chart = _chart([[12.0, 30.0]], categories=["Q1", "Q2"], kind="bar", step=10.0,
                   affix=("$", ""), names=("Revenue",))
    assert chart.table().splitlines() == ["| Quarter | Revenue |", "| --- | --- |",
                                          "| Q1 | $12 |", "| Q2 | $30 |"]
    assert chart.to_dict()["series"][0] == {"name": "Revenue", "color": "blue",
                                            "values": [12.0, 30.0]}


@pytest.mark.parametrize("labels, unit", [
    (["Jan", "Feb", "Mar"], "month"), (["January", "Sept", "Dec."], "month"),
    (["Q1", "Q2 2024"], "quarter"), (["2019", "2020"], "year"), (["Mon", "Tue"], "day"),
    (["MMLU", "Math"], ""), (["Jan"], ""),
])
def test_category_unit(labels, unit):
    assert category_unit(labels) == unit
