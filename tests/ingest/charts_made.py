"""Charts with known values, drawn by matplotlib in code (no files shipped)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug"]
SALES = [12, 18, 25, 31, 27, 42, 35, 20]      # peak in June, lowest in January
REVENUE = [5, 8, 11, 15, 19, 24, 28, 33]      # rises every month
COSTS = [3, 4, 6, 7, 9, 10, 12, 14]           # below revenue every month


def _figure(kind: str):
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if kind == "bar":
        ax.bar(MONTHS, SALES, color="tab:blue")
        ax.set_title("Monthly sales")
    else:
        ax.plot(MONTHS, REVENUE, color="red", label="Revenue")
        ax.plot(MONTHS, COSTS, color="blue", label="Costs")
        ax.legend()
    return fig


def chart_png(kind: str) -> bytes:
    fig = _figure(kind)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def chart_image(kind: str) -> Image.Image:
    return Image.open(io.BytesIO(chart_png(kind))).convert("RGB")


def chart_pdf(kind: str) -> bytes:
    """The chart as vector PDF: its labels are a text layer, no OCR needed."""
    fig = _figure(kind)
    buf = io.BytesIO()
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        fig.savefig(buf, format="pdf")
    plt.close(fig)
    return buf.getvalue()
