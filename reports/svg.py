"""Inline SVG charts, drawn server-side so they show with JavaScript off and need no library.

Every chart carries ``role="img"``, a ``<title>`` and per-mark ``<title>`` tooltips with the
numbers, so the values are readable without colour and without hovering a legend.

Charts are returned as :class:`markupsafe.Markup` for the templates: every text in them (run
labels, series names, titles) goes through :func:`_e` first, and the numbers are formatted
here, so nothing from data reaches the page unescaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#be185d",
           "#65a30d", "#475569", "#ea580c")
STATUS_COLORS = {"new": "#dc2626", "persisting": "#d97706", "pending": "#2563eb",
                 "resolved": "#059669"}


def _e(v: object) -> str:
    return escape(str(v), quote=True)


def _fmt(v: float | int | None) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and abs(v) >= 10:
        v = round(v)
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}"
    return f"{int(v):,}"


def sparkline(values: Sequence[int | float], *, width: int = 120, height: int = 26,
              label: str = "") -> Markup:
    """A polyline of ``values`` (oldest first) with the last point marked."""
    if not values:
        return Markup('<span class="muted">no history</span>')
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1
    n = len(values)
    step = (width - 6) / max(n - 1, 1)
    pts = [(3 + i * step, height - 3 - (v - lo) / span * (height - 6)) for i, v in
           enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    lx, ly = pts[-1]
    title = f"{label}: " if label else ""
    title += " → ".join(_fmt(v) for v in values[-14:])
    return Markup(f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} '
            f'{height}" role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>'
            f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{path}"/>'
            f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="2.5" fill="#dc2626"/></svg>')


def stacked_bars(labels: Sequence[str], series: dict[str, Sequence[float | None]], *,
                 title: str, colors: dict[str, str] | None = None, width: int = 760,
                 height: int = 220, unit: str = "") -> Markup:
    """One bar per label, stacked by series (missing values count as 0 and are marked)."""
    if not labels:
        return Markup(f'<p class="muted">{_e(title)}: no runs yet.</p>')
    colors = colors or {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(series)}
    totals = [sum((series[k][i] or 0) for k in series) for i in range(len(labels))]
    top = max(totals) or 1
    left, bottom, right, head = 56, 40, 10, 14
    plot_w, plot_h = width - left - right, height - bottom - head
    bw = plot_w / len(labels)
    out = _axes(title, width, height, left, right, head, plot_h, top, unit)
    for i, lab in enumerate(labels):
        x = left + i * bw + bw * 0.15
        y = head + plot_h
        for k, vals in series.items():
            v = vals[i] or 0
            h = v / top * plot_h
            if h <= 0:
                continue
            y -= h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw * 0.7:.1f}" '
                       f'height="{h:.1f}" fill="{colors[k]}"><title>{_e(lab)} — {_e(k)}: '
                       f'{_e(_fmt(v))}{_e(unit)}</title></rect>')
        if all(vals[i] is None for vals in series.values()):
            out.append(f'<text x="{x + bw * 0.35:.1f}" y="{head + plot_h - 4:.1f}" '
                       f'text-anchor="middle" class="axis">n/a</text>')
        if len(labels) <= 16 or i % max(1, len(labels) // 8) == 0:
            out.append(f'<text x="{x + bw * 0.35:.1f}" y="{height - bottom + 14}" '
                       f'text-anchor="middle" class="axis">{_e(lab)}</text>')
    return _figure(title, out, {k: colors[k] for k in series})


def _axes(title: str, width: int, height: int, left: float, right: float, head: float,
          plot_h: float, top: float, unit: str = "") -> list[str]:
    """The opening of a chart's SVG: its title and three horizontal grid lines with labels."""
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} '
           f'{height}" role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>']
    for frac in (0, 0.5, 1):
        y = head + plot_h * (1 - frac)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'class="grid"/><text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'class="axis">{_e(_fmt(top * frac))}{_e(unit)}</text>')
    return out


def _figure(title: str, svg: list[str], colors: dict[str, str]) -> Markup:
    """Close the chart's SVG and wrap it with its caption and legend (one key per series)."""
    legend = "".join(f'<span class="key"><i style="background:{c}"></i>{_e(k)}</span>'
                     for k, c in colors.items())
    return Markup(f'<figure><figcaption>{_e(title)}</figcaption>{"".join(svg)}</svg>'
                  f'<div class="legend">{legend}</div></figure>')


def lines(labels: Sequence[str], series: dict[str, Sequence[float | None]], *, title: str,
          width: int = 760, height: int = 220) -> Markup:
    """One line per series; gaps where a value is missing (a failed run)."""
    if not labels:
        return Markup(f'<p class="muted">{_e(title)}: no runs yet.</p>')
    vals = [v for s in series.values() for v in s if v is not None]
    top = max(vals) if vals else 1
    top = top or 1
    left, bottom, right, head = 70, 40, 40, 14
    plot_w, plot_h = width - left - right, height - bottom - head
    step = plot_w / max(len(labels) - 1, 1)
    colors = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(series)}
    out = _axes(title, width, height, left, right, head, plot_h, top)
    for k, s in series.items():
        seg: list[str] = []
        for i, v in enumerate(s):
            x = left + i * step
            if v is None:
                if len(seg) > 1:
                    out.append(f'<polyline fill="none" stroke="{colors[k]}" stroke-width="2" '
                               f'points="{" ".join(seg)}"/>')
                seg = []
                continue
            y = head + plot_h * (1 - v / top)
            seg.append(f"{x:.1f},{y:.1f}")
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colors[k]}">'
                       f'<title>{_e(labels[i])} — {_e(k)}: {_e(_fmt(v))}</title></circle>')
        if len(seg) > 1:
            out.append(f'<polyline fill="none" stroke="{colors[k]}" stroke-width="2" '
                       f'points="{" ".join(seg)}"/>')
    for i, lab in enumerate(labels):
        if len(labels) <= 16 or i % max(1, len(labels) // 8) == 0:
            out.append(f'<text x="{left + i * step:.1f}" y="{height - bottom + 14}" '
                       f'text-anchor="middle" class="axis">{_e(lab)}</text>')
    return _figure(title, out, {k: colors[k] for k in series})
