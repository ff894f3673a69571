"""The console's SVG charts: values become bar sizes on a shared scale, text is escaped, and each
chart names itself for screen readers; no inline style (the CSP forbids it)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from campaign_engine.console import charts

SVG = "{http://www.w3.org/2000/svg}"


def _rects(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(SVG + "rect"))


def test_scale_maps_values_to_lengths_on_the_axis():
    assert charts.scale([0, 5, 10, 20], 20, 200) == [0, 50, 100, 200]
    assert charts.scale([-3, 4], 8, 100) == [0, 50]  # a negative value draws nothing
    assert charts.scale([1, 2], 0, 100) == [0, 0]  # an empty axis
    assert charts.nice_max(0) == 1 and charts.nice_max(7) == 10 and charts.nice_max(13) == 20
    assert charts.nice_max(41) == 50 and charts.nice_max(100) == 100 and charts.nice_max(101) == 200


def test_stacked_bars_stack_each_days_series_to_its_total():
    series = [charts.Series("已送达", [10, 0, 4], "c1"), charts.Series("失败", [10, 0, 1], "c3")]
    svg = charts.stacked_bars(["03-08", "03-09", "03-10"], series, title="消息", width=400, height=200)
    rects = _rects(svg)
    assert len(rects) == 4  # a zero draws no segment
    plot_h = 200 - 12 - 34
    heights = [float(r.get("height")) for r in rects]
    # the axis tops at nice_max(20) = 20: a 10 fills half the plot, 4 a fifth, 1 a twentieth
    assert heights == [plot_h / 2, plot_h / 2, round(plot_h * 4 / 20, 2), round(plot_h / 20, 2)]
    first_day = rects[:2]
    assert float(first_day[1].get("y")) + plot_h / 2 == float(first_day[0].get("y"))  # stacked, no gap
    assert [r.get("class") for r in rects] == ["c1", "c3", "c1", "c3"]
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("aria-label") == "消息" and root.find(SVG + "title").text == "消息"
    assert [g.get("data-total") for g in root.iter(SVG + "g")] == ["20", "0", "5"]
    assert "03-10 · 失败: 1" in svg


def test_charts_escape_every_text_and_use_no_inline_style():
    evil = '<script>alert("x")</script>&'
    svg = charts.stacked_bars([evil], [charts.Series(evil, [3], "c0")], title=evil)
    svg += charts.horizontal_bars([charts.Bar(evil, 2)], title=evil)
    svg += charts.legend([charts.Series(evil, [1], "c2")])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&amp;" in svg
    assert "style=" not in svg
    ET.fromstring(charts.horizontal_bars([charts.Bar(evil, 2)], title=evil))  # well-formed


def test_horizontal_bars_scale_to_the_first_step_with_values_and_sub_steps():
    bars = [charts.Bar("候选", 200, "c5"), charts.Bar("命中", 50, "c0"), charts.Bar("频次上限", 0, "c6", indent=True)]
    svg = charts.horizontal_bars(bars, title="漏斗", width=500, label_width=200)
    widths = [float(r.get("width")) for r in _rects(svg)]
    assert widths == [230, 57.5]  # plot 500-200-70 = 230 units for the largest value; zero draws no bar
    texts = [t.text for t in ET.fromstring(svg).iter(SVG + "text")]
    assert texts == ["候选", "200", "命中", "50", "– 频次上限", "0"]
    assert 'class="sub"' in svg
    assert re.search(r'aria-label="漏斗"', svg)


def test_empty_charts_still_render():
    assert _rects(charts.stacked_bars([], [], title="空")) == []
    assert _rects(charts.horizontal_bars([], title="空")) == []
    assert "legend" in charts.legend([])
