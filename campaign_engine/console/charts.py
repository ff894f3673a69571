"""The console's charts: pure functions from numbers to inline SVG markup (a `Markup` string).

No script, no inline style (the Content-Security-Policy forbids them): series are coloured by the
CSS classes c0..c9 of console.css, every text is escaped, and each chart says what it shows in its
<title> and aria-label, with each bar's value in its own <title> (a tooltip, and read by screen
readers). The geometry (`scale`) is a separate function so tests check values -> bar sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from markupsafe import Markup, escape

SERIES_CLASSES = tuple(f"c{i}" for i in range(10))


@dataclass(frozen=True)
class Series:
    """One stacked series: its label, its CSS class (c0..c9) and a value per day."""

    label: str
    values: Sequence[int]
    css: str = "c0"


def series_class(index: int) -> str:
    return SERIES_CLASSES[index % len(SERIES_CLASSES)]


def nice_max(value: float) -> int:
    """The axis top for a largest value: 1, 2 or 5 times a power of ten, at least the value (0 -> 1)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def scale(values: Sequence[float], top: float, length: float) -> list[float]:
    """Each value's bar length on an axis of `length` units whose end is worth `top` (negative -> 0)."""
    if top <= 0:
        return [0.0 for _ in values]
    return [round(max(0.0, v) / top * length, 2) for v in values]


def _fmt(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.2f}"


def stacked_bars(labels: Sequence[str], series: Sequence[Series], *, title: str, width: int = 760,
                 height: int = 260) -> Markup:
    """A stacked bar per label (a day), one segment per series, with a value axis and day labels."""
    left, right, top_pad, bottom = 48, 8, 12, 34
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top = nice_max(max(totals, default=0))
    slot = plot_w / max(1, len(labels))
    bar_w = round(max(2.0, slot * 0.64), 2)
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for tick in (0, top / 2, top):  # grid and value axis
        y = round(top_pad + plot_h - scale([tick], top, plot_h)[0], 2)
        parts.append(f'<line class="grid" x1="{left}" y1="{y}" x2="{width - right}" y2="{y}"/>'
                     f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{escape(_fmt(tick))}</text>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top_pad + plot_h}" x2="{width - right}" '
                 f'y2="{top_pad + plot_h}"/>')
    every = max(1, -(-len(labels) * 44 // plot_w)) if labels else 1  # day labels that fit
    for i, label in enumerate(labels):
        x = round(left + i * slot + (slot - bar_w) / 2, 2)
        base: float = top_pad + plot_h
        segments = []
        for s in series:
            h = scale([s.values[i]], top, plot_h)[0]
            if h <= 0:
                continue
            base = round(base - h, 2)
            segments.append(f'<rect class="{escape(s.css)}" x="{x}" y="{base}" width="{bar_w}" height="{h}">'
                            f'<title>{escape(label)} · {escape(s.label)}: {escape(_fmt(s.values[i]))}</title></rect>')
        parts.append(f'<g class="bar" data-total="{totals[i]}">{"".join(segments)}</g>')
        if (len(labels) - 1 - i) % every == 0:  # counted from the last day: today always has its label
            parts.append(f'<text x="{round(x + bar_w / 2, 2)}" y="{height - bottom + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: its label, value and CSS class; `indent` marks a sub-step (a reason)."""

    label: str
    value: int
    css: str = "c0"
    indent: bool = False


def horizontal_bars(bars: Sequence[Bar], *, title: str, width: int = 760, row: int = 26,
                    label_width: int = 210) -> Markup:
    """A funnel or ranking: one horizontal bar per step, its label at the left, its value at its end;
    bars are scaled to the largest value (the funnel's first step)."""
    right, pad = 70, 6
    plot_w = width - label_width - right
    height = pad * 2 + row * max(1, len(bars))
    top = max((b.value for b in bars), default=0)
    lengths = scale([b.value for b in bars], top, plot_w)
    parts = [f'<svg class="chart funnel" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for i, (bar, length) in enumerate(zip(bars, lengths)):
        y = pad + i * row
        label_x = label_width - 8
        label = ("– " if bar.indent else "") + bar.label
        sub = ' class="sub"' if bar.indent else ""
        parts.append(f'<text x="{label_x}" y="{y + row / 2 + 4}" text-anchor="end"{sub}>{escape(label)}</text>')
        if length > 0:
            parts.append(f'<rect class="{escape(bar.css)}" x="{label_width}" y="{y + 4}" width="{length}" '
                         f'height="{row - 8}"><title>{escape(bar.label)}: {escape(_fmt(bar.value))}</title></rect>')
        parts.append(f'<text x="{label_width + length + 6}" y="{y + row / 2 + 4}">{escape(_fmt(bar.value))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def legend(series: Sequence[Series | Bar]) -> Markup:
    """The series' colours and names, as a list beside the chart (HTML, not SVG)."""
    items = "".join(f'<li><span class="swatch {escape(s.css)}" aria-hidden="true"></span>{escape(s.label)}</li>'
                    for s in series)
    return Markup(f'<ul class="legend">{items}</ul>')
