"""Pure: an interval chart as inline SVG, for the effect screen.

One row per item: a point (the estimate) and a bar (its 95 % interval) on a shared horizontal axis
in percent (a rate) or percentage points (a lift), with a dashed line at zero. Coloured by the
console's classes c0..c9 (no inline style: the Content-Security-Policy forbids it). Every text is
escaped; the caller passes the translated words. No Flask, no database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Sequence

LABEL_WIDTH = 230
VALUE_WIDTH = 220
ROW_HEIGHT = 34
TOP = 12
AXIS_HEIGHT = 40
MAX_LABEL = 20


@dataclass(frozen=True)
class Row:
    """One line of the chart: fractions (0.031 is 3.1 %), None where there is nothing to draw."""

    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    tone: int = 0  # the colour class c0..c9
    note: str = ""  # shown after the value (e.g. "not yet readable")


def nice_step(span: float, ticks: int = 5) -> float:
    """A 1, 2 or 5 times a power of ten step giving about `ticks` intervals over `span` (> 0)."""
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if raw <= factor * power:
            return factor * power
    return 10.0 * power  # pragma: no cover (the loop always returns)


def axis_range(rows: Sequence[Row], *, include_zero: bool = True) -> tuple[float, float, float]:
    """(low, high, step) in the display unit (percent), covering every finite value and interval."""
    values = [v * 100 for r in rows for v in (r.value, r.low, r.high) if v is not None and math.isfinite(v)]
    if include_zero:
        values.append(0.0)
    if not values:
        return -1.0, 1.0, 0.5
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 1.0, high + 1.0
    step = nice_step(high - low)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def _number(value: float, step: float) -> str:
    digits = 0 if step >= 1 else min(4, -math.floor(math.log10(step)))
    text = f"{value:.{digits}f}"
    return "0" if text.strip("-0.") == "" else text


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 1] + "…"


def interval_chart(rows: Sequence[Row], *, title: str, unit: str = "%", width: int = 900,
                   include_zero: bool = True, empty: str = "—", signed: bool = False,
                   tick_unit: str | None = None) -> str:
    """The SVG text of the chart (a complete <svg> element): rows top to bottom in the given order.

    `unit` follows each value ("%" for a rate, " pp" for a lift), `tick_unit` each axis number
    (default `unit`); `signed` shows a value's sign (+2.00, a lift); `empty` stands for a missing value.
    """
    tick_unit = unit if tick_unit is None else tick_unit
    low, high, step = axis_range(rows, include_zero=include_zero)
    plot_left, plot_right = LABEL_WIDTH, width - VALUE_WIDTH
    plot_width = plot_right - plot_left
    height = TOP + ROW_HEIGHT * max(len(rows), 1) + AXIS_HEIGHT

    def x(value: float) -> float:
        return round(plot_left + (value * 100 - low) / (high - low) * plot_width, 1)

    def xp(percent: float) -> float:
        return round(plot_left + (percent - low) / (high - low) * plot_width, 1)

    parts = [f'<svg class="chart interval-chart" role="img" aria-label="{escape(title)}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    bottom = TOP + ROW_HEIGHT * max(len(rows), 1)
    count = int(round((high - low) / step))
    for i in range(count + 1):
        tick = low + i * step
        tx = xp(tick)
        parts.append(f'<line class="grid" x1="{tx}" y1="{TOP}" x2="{tx}" y2="{bottom}"/>')
        parts.append(f'<text x="{tx}" y="{bottom + 16}" text-anchor="middle">{_number(tick, step)}{escape(tick_unit)}'
                     "</text>")
    parts.append(f'<line class="axis" x1="{plot_left}" y1="{bottom}" x2="{plot_right}" y2="{bottom}"/>')
    if include_zero and low <= 0 <= high:
        zx = xp(0.0)
        parts.append(f'<line class="zero" x1="{zx}" y1="{TOP}" x2="{zx}" y2="{bottom}"/>')
    for n, row in enumerate(rows):
        cy = TOP + ROW_HEIGHT * n + ROW_HEIGHT / 2
        tone = f"c{row.tone % 10}"
        shown = empty if row.value is None else f"{row.value * 100:{'+' if signed else ''}.2f}{unit}"
        interval = ""
        if row.low is not None and row.high is not None:
            interval = f" [{row.low * 100:.2f}, {row.high * 100:.2f}]"
        described = f"{row.label}: {shown}{interval}" + (f" ({row.note})" if row.note else "")
        parts.append(f'<g class="row"><title>{escape(described)}</title>')
        parts.append(f'<text x="{plot_left - 10}" y="{cy + 4}" text-anchor="end">{escape(_short(row.label))}</text>')
        if row.low is not None and row.high is not None:
            left, right = x(min(row.low, row.high)), x(max(row.low, row.high))
            parts.append(f'<rect class="{tone}" x="{left}" y="{cy - 2}" width="{max(round(right - left, 1), 1)}" '
                         'height="4"/>')
            for edge in (left, right):
                parts.append(f'<rect class="{tone}" x="{round(edge - 1, 1)}" y="{cy - 8}" width="2" height="16"/>')
        if row.value is not None:
            parts.append(f'<circle class="{tone}" cx="{x(row.value)}" cy="{cy}" r="6"/>')
        note = f" · {row.note}" if row.note else ""
        parts.append(f'<text x="{plot_right + 10}" y="{cy + 4}">{escape(shown + note)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
