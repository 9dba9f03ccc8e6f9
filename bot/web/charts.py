"""Charts for the operator console: SVG rendered on the server by pygal, served as images.

The console's Content-Security-Policy allows no inline styles or scripts, and pygal's SVG
carries both; an SVG loaded through ``<img>`` is a document of its own in which scripts never
run, so a chart is its own response (``svg_response``) with a policy that allows only its
inline styles, and the page shows it as ``<img src=… alt=…>`` beside a table of the same
figures (readable without the picture, and by screen readers).

Labels and titles arrive already in the page's language; the font list starts with the CJK
fonts a Chinese operator's machine has, so Chinese labels render everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pygal
from aiohttp import web
from pygal.style import Style

FONTS = ("'PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC', 'WenQuanYi Micro Hei', "
         "'Helvetica Neue', Arial, sans-serif")
_STYLE = Style(
    font_family=FONTS, background="#ffffff", plot_background="#ffffff",
    foreground="#333333", foreground_strong="#111111", foreground_subtle="#888888",
    colors=("#1f6feb", "#f0883e", "#2da44e", "#8250df", "#cf222e", "#6e7781"),
    title_font_size=16, label_font_size=12, major_label_font_size=12, legend_font_size=12,
    value_font_size=11,
)
Series = Mapping[str, Sequence[float | None]]


def _configure(chart: pygal.graph.graph.Graph, title: str, labels: Sequence[str],
               series: Series, *, percent: bool, target: str | None = None) -> bytes:
    chart.title = title
    chart.x_labels = list(labels)
    if percent:
        chart.value_formatter = lambda value: f"{value:.0%}" if value is not None else ""
        chart.range = (0, 1)
    for name, values in series.items():
        if name == target:
            chart.add(name, list(values), show_dots=False, stroke_style={"dasharray": "6, 4"})
        else:
            chart.add(name, list(values))
    svg: bytes = chart.render()
    return svg


def _options(width: int, height: int) -> dict[str, object]:
    return {"js": [], "style": _STYLE, "width": width, "height": height,
            "legend_at_bottom": True, "print_values": False, "x_label_rotation": 0,
            "truncate_label": -1, "no_data_text": "—"}


def bar(title: str, labels: Sequence[str], series: Series, *, percent: bool = False,
        width: int = 760, height: int = 340) -> bytes:
    """Bars per label, one colour per series (e.g. renewal rate per branch)."""
    return _configure(pygal.Bar(**_options(width, height)), title, labels, series,
                      percent=percent)


def line(title: str, labels: Sequence[str], series: Series, *, percent: bool = False,
         target: tuple[str, float] | None = None, width: int = 760,
         height: int = 340) -> bytes:
    """Lines over time; ``target`` (its name and value) is drawn as a dashed level line."""
    chart = pygal.Line(**_options(width, height), dots_size=3)
    if target is None:
        return _configure(chart, title, labels, series, percent=percent)
    name, value = target
    with_target = {**series, name: [value] * len(labels)}
    return _configure(chart, title, labels, with_target, percent=percent, target=name)


def svg_response(svg: bytes) -> web.Response:
    """A chart as its own image document: inline styles allowed, nothing else."""
    response = web.Response(body=svg, content_type="image/svg+xml")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
    response.headers["Cache-Control"] = "private, max-age=60"
    return response
