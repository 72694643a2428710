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


# --- more shapes: grouped and horizontal bars, a dip, two panels, a scatter -------------------

QUARTERS = ["Q1", "Q2", "Q3", "Q4"]
NORTH = [30, 45, 38, 52]                     # above SOUTH in every quarter
SOUTH = [20, 25, 22, 31]
TEAMS = ["Alpha", "Bravo", "Charlie", "Delta"]
SCORES = [14, 37, 22, 8]                     # Bravo highest, Delta lowest
DIP = [40, 44, 38, 30, 24, 29, 35, 41]       # falls from March to May, rises from May on


def figure_png(draw, size=(6, 4), dpi=100) -> bytes:
    """``draw(fig)`` on a new figure, saved as PNG."""
    fig = plt.figure(figsize=size, dpi=dpi)
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def grouped_bars(fig) -> None:
    ax = fig.subplots()
    x = range(len(QUARTERS))
    ax.bar([i - 0.2 for i in x], NORTH, width=0.4, color="tab:red", label="North")
    ax.bar([i + 0.2 for i in x], SOUTH, width=0.4, color="tab:blue", label="South")
    ax.set_xticks(list(x), QUARTERS)
    ax.legend(loc="upper left")


def horizontal_bars(fig) -> None:
    ax = fig.subplots()
    ax.barh(TEAMS, SCORES, color="tab:green")


def dip_line(fig) -> None:
    ax = fig.subplots()
    ax.plot(MONTHS, DIP, color="tab:purple")
    ax.set_ylabel("Visitors")


def two_panels(fig) -> None:
    left, right = fig.subplots(1, 2)
    left.bar(QUARTERS, NORTH, color="tab:orange")
    right.plot(MONTHS, REVENUE, color="tab:green")


def scatter(fig) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    fig.subplots().scatter(rng.uniform(0, 10, 40), rng.uniform(0, 50, 40), color="tab:blue")


def raster_pdf(png: bytes, size=(1240, 1754), at=(120, 300)) -> bytes:
    """A page (A4 at 150 dpi) that is one scanned image: the chart pasted on white with a
    line of text above it, so the page has no text layer and is OCR'd."""
    from PIL import ImageDraw

    page = Image.new("RGB", size, "white")
    ImageDraw.Draw(page).text((at[0], at[1] - 60), "Quarterly report", fill="black")
    page.paste(Image.open(io.BytesIO(png)).convert("RGB"), at)
    buf = io.BytesIO()
    page.save(buf, format="PDF", resolution=150)
    return buf.getvalue()
