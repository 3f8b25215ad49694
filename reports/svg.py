"""Inline SVG charts, drawn server-side so they show with JavaScript off and need no library.

This module computes the geometry only (coordinates formatted as text, titles as plain
strings); ``templates/charts.html.j2`` writes the markup, so every label (run ids, series and
object names) is autoescaped like any other value. Every chart carries ``role="img"``, a
``<title>`` and per-mark ``<title>`` tooltips with the numbers, so the values are readable
without colour and without hovering a legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PALETTE = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#be185d",
           "#65a30d", "#475569", "#ea580c")
STATUS_COLORS = {"new": "#dc2626", "persisting": "#d97706", "pending": "#2563eb",
                 "resolved": "#059669"}


def _fmt(v: float | int | None) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and abs(v) >= 10:
        v = round(v)
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}"
    return f"{int(v):,}"


@dataclass(frozen=True)
class Spark:
    """A sparkline: one polyline, the last point marked."""

    width: int
    height: int
    title: str
    points: str
    last_x: str
    last_y: str


@dataclass(frozen=True)
class Mark:
    """One element of a chart, in drawing order. ``kind``: rect (x, y, w, h, fill, title),
    dot (x, y, fill, title), line (points, fill = stroke), text (x, y, title = its text)."""

    kind: str
    x: str = ""
    y: str = ""
    w: str = ""
    h: str = ""
    fill: str = ""
    title: str = ""
    points: str = ""


@dataclass(frozen=True)
class GridLine:
    y: str
    label_y: str
    label: str


@dataclass(frozen=True)
class Chart:
    """A bar or line chart: axes, marks in drawing order, a legend (series → colour).
    ``marks`` is empty when there are no runs (the template then says so)."""

    title: str
    width: int
    height: int
    left: int
    right_x: int
    label_x: int
    grid: tuple[GridLine, ...]
    marks: tuple[Mark, ...]
    legend: tuple[tuple[str, str], ...]
    empty: bool = False


def sparkline(values: Sequence[int | float], *, width: int = 120, height: int = 26,
              label: str = "") -> Spark | None:
    """A polyline of ``values`` (oldest first) with the last point marked; None: no history."""
    if not values:
        return None
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1
    n = len(values)
    step = (width - 6) / max(n - 1, 1)
    pts = [(3 + i * step, height - 3 - (v - lo) / span * (height - 6)) for i, v in
           enumerate(values)]
    lx, ly = pts[-1]
    title = f"{label}: " if label else ""
    title += " → ".join(_fmt(v) for v in values[-14:])
    return Spark(width=width, height=height, title=title,
                 points=" ".join(f"{x:.1f},{y:.1f}" for x, y in pts),
                 last_x=f"{lx:.1f}", last_y=f"{ly:.1f}")


def _grid(left: int, head: float, plot_h: float, top: float,
          unit: str = "") -> tuple[GridLine, ...]:
    """Three horizontal grid lines (0, half, top) with their values."""
    out = []
    for frac in (0, 0.5, 1):
        y = head + plot_h * (1 - frac)
        out.append(GridLine(y=f"{y:.1f}", label_y=f"{y + 4:.1f}",
                            label=f"{_fmt(top * frac)}{unit}"))
    return tuple(out)


def stacked_bars(labels: Sequence[str], series: dict[str, Sequence[float | None]], *,
                 title: str, colors: dict[str, str] | None = None, width: int = 760,
                 height: int = 220, unit: str = "") -> Chart:
    """One bar per label, stacked by series (missing values count as 0 and are marked)."""
    colors = colors or {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(series)}
    legend = tuple((k, colors[k]) for k in series)
    left, bottom, right, head = 56, 40, 10, 14
    if not labels:
        return Chart(title, width, height, left, width - right, left - 6, (), (), legend, True)
    totals = [sum((series[k][i] or 0) for k in series) for i in range(len(labels))]
    top = max(totals) or 1
    plot_w, plot_h = width - left - right, height - bottom - head
    bw = plot_w / len(labels)
    marks: list[Mark] = []
    for i, lab in enumerate(labels):
        x = left + i * bw + bw * 0.15
        y = head + plot_h
        for k, vals in series.items():
            v = vals[i] or 0
            h = v / top * plot_h
            if h <= 0:
                continue
            y -= h
            marks.append(Mark("rect", x=f"{x:.1f}", y=f"{y:.1f}", w=f"{bw * 0.7:.1f}",
                              h=f"{h:.1f}", fill=colors[k],
                              title=f"{lab} — {k}: {_fmt(v)}{unit}"))
        if all(vals[i] is None for vals in series.values()):
            marks.append(Mark("text", x=f"{x + bw * 0.35:.1f}", y=f"{head + plot_h - 4:.1f}",
                              title="n/a"))
        if len(labels) <= 16 or i % max(1, len(labels) // 8) == 0:
            marks.append(Mark("text", x=f"{x + bw * 0.35:.1f}", y=f"{height - bottom + 14}",
                              title=lab))
    return Chart(title, width, height, left, width - right, left - 6,
                 _grid(left, head, plot_h, top, unit), tuple(marks), legend)


def lines(labels: Sequence[str], series: dict[str, Sequence[float | None]], *, title: str,
          width: int = 760, height: int = 220) -> Chart:
    """One line per series; gaps where a value is missing (a failed run)."""
    colors = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(series)}
    legend = tuple((k, colors[k]) for k in series)
    left, bottom, right, head = 70, 40, 40, 14
    if not labels:
        return Chart(title, width, height, left, width - right, left - 6, (), (), legend, True)
    vals = [v for s in series.values() for v in s if v is not None]
    top = (max(vals) if vals else 1) or 1
    plot_w, plot_h = width - left - right, height - bottom - head
    step = plot_w / max(len(labels) - 1, 1)
    marks: list[Mark] = []
    for k, s in series.items():
        seg: list[str] = []
        for i, v in enumerate(s):
            x = left + i * step
            if v is None:
                if len(seg) > 1:
                    marks.append(Mark("line", fill=colors[k], points=" ".join(seg)))
                seg = []
                continue
            y = head + plot_h * (1 - v / top)
            seg.append(f"{x:.1f},{y:.1f}")
            marks.append(Mark("dot", x=f"{x:.1f}", y=f"{y:.1f}", fill=colors[k],
                              title=f"{labels[i]} — {k}: {_fmt(v)}"))
        if len(seg) > 1:
            marks.append(Mark("line", fill=colors[k], points=" ".join(seg)))
    for i, lab in enumerate(labels):
        if len(labels) <= 16 or i % max(1, len(labels) // 8) == 0:
            marks.append(Mark("text", x=f"{left + i * step:.1f}", y=f"{height - bottom + 14}",
                              title=lab))
    return Chart(title, width, height, left, width - right, left - 6,
                 _grid(left, head, plot_h, top), tuple(marks), legend)
