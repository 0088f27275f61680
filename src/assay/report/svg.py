"""Inline SVG charts, written as text: they render offline and need no JavaScript."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

FONT = 12
ROW = 18
BLUE = "#2563eb"
GREY = "#94a3b8"
GREEN = "#16a34a"
RED = "#dc2626"
PURPLE = "#7c3aed"
ORANGE = "#ea580c"


@dataclass
class Series:
    name: str
    values: list[float]
    color: str


def fmt(v: float | int | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _text(x: float, y: float, s: str, *, anchor: str = "start", cls: str = "", size: int = FONT) -> str:
    c = f' class="{cls}"' if cls else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{c}>'
            f"{escape(s)}</text>")


def _legend(series: list[Series], x: float, y: float) -> str:
    out = []
    for s in series:
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{s.color}"/>')
        out.append(_text(x + 14, y, s.name))
        x += 24 + 7 * len(s.name)
    return "".join(out)


def _clip(label: str, n: int) -> str:
    """Long labels lose their middle: both the start and the end (a file name) stay readable."""
    if len(label) <= n:
        return label
    head = (n - 1) // 2
    return label[:head] + "…" + label[-(n - 1 - head):]


def hbars(labels: list[str], series: list[Series], *, width: int = 720, label_width: int = 230,
          title: str = "", colors: list[str] | None = None) -> str:
    """Horizontal bars, one group per label, one bar per series; values written at the bar ends.
    `colors` (one per label) overrides the color of a single series bar by bar."""
    if not labels:
        return ""
    n = len(series)
    bar_h = 14 if n == 1 else 10
    group_h = n * bar_h + 8
    top = 22 if n > 1 else 6
    height = top + group_h * len(labels) + 4
    plot_w = width - label_width - 70
    peak = max((v for s in series for v in s.values), default=0) or 1
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img"'
             f' aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">']
    if n > 1:
        parts.append(_legend(series, label_width, 14))
    for i, label in enumerate(labels):
        y0 = top + i * group_h
        shown = _clip(label, int(label_width / 7))
        parts.append(f'<g><title>{escape(label)}</title>'
                     + _text(label_width - 6, y0 + group_h / 2 + 2, shown, anchor="end") + "</g>")
        for j, s in enumerate(series):
            v = s.values[i]
            w = max(0.0, plot_w * v / peak)
            y = y0 + 4 + j * bar_h
            color = colors[i] if colors and n == 1 else s.color
            parts.append(f'<rect x="{label_width}" y="{y:.1f}" width="{w:.1f}" height="{bar_h - 2}" fill="{color}">'
                         f"<title>{escape(f'{label} · {s.name}: {fmt(v)}')}</title></rect>")
            parts.append(_text(label_width + w + 4, y + bar_h - 3, fmt(v), size=10))
    parts.append("</svg>")
    return "".join(parts)


def histogram(edges: list[float], series: list[Series], *, stacked: bool = False, open_end: bool = False,
              width: int = 720, height: int = 190, xlabel: str = "", title: str = "") -> str:
    """Vertical bars over bins [edges[i], edges[i+1]); several series side by side or stacked."""
    bins = len(edges) - 1
    if bins <= 0 or not series:
        return ""
    left, right, top, bottom = 48, 12, 24, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    if stacked:
        peak = max((sum(s.values[i] for s in series) for i in range(bins)), default=0)
    else:
        peak = max((v for s in series for v in s.values), default=0)
    peak = peak or 1
    bw = plot_w / bins
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img"'
             f' aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">']
    if len(series) > 1:
        parts.append(_legend(series, left, 14))
    for frac in (0.0, 0.5, 1.0):  # y grid
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(_text(left - 4, y + 4, fmt(round(peak * frac, 2)), anchor="end", size=10))
    integral = all(float(e).is_integer() for e in edges) and all(edges[i + 1] - edges[i] == 1 for i in range(bins))
    for i in range(bins):
        x0 = left + i * bw
        label = _bin_label(edges, i, integral, open_end)
        base = top + plot_h
        for j, s in enumerate(series):
            v = s.values[i]
            h = plot_h * v / peak
            if stacked:
                x, w = x0 + 1, bw - 2
                base -= h
                y = base
            else:
                w = (bw - 2) / len(series)
                x, y = x0 + 1 + j * w, top + plot_h - h
            if v:
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{h:.1f}" '
                             f'fill="{s.color}"><title>{escape(f"{label} · {s.name}: {fmt(v)}")}</title></rect>')
    step = max(1, math.ceil(bins / 8))
    for i in range(0, bins, step):
        x = left + i * bw + (bw / 2 if integral else 0)
        tick = fmt(edges[i])
        if open_end and i == bins - 1:
            tick = "≥" + tick
        parts.append(_text(x, top + plot_h + 14, tick, anchor="middle" if integral else "start", size=10))
    if not integral:
        last = "≥" + fmt(edges[-2]) if open_end else fmt(edges[-1])
        if (bins - 1) % step or open_end:
            parts.append(_text(left + plot_w, top + plot_h + 14, last, anchor="end", size=10))
    if xlabel:
        parts.append(_text(left + plot_w / 2, height - 4, xlabel, anchor="middle", size=11, cls="muted"))
    parts.append("</svg>")
    return "".join(parts)


def _bin_label(edges: list[float], i: int, integral: bool, open_end: bool) -> str:
    if integral:
        return fmt(edges[i])
    if open_end and i == len(edges) - 2:
        return f"≥ {fmt(edges[i])}"
    return f"[{fmt(edges[i])}, {fmt(edges[i + 1])})"
