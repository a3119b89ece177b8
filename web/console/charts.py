"""Charts as inline SVG, drawn on the server: no chart library, nothing fetched by the browser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

PALETTE = ("#2f6f62", "#1f5fa8", "#c62828", "#b26a00", "#6a4fa3", "#00838f")


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]


def _ticks(top: float) -> list[float]:
    if top <= 0:
        return [0.0]
    step = 10 ** (len(str(int(top))) - 1)
    while top / step > 5:
        step *= 2
    return [i * step for i in range(int(top // step) + 1)]


def _short(value: float) -> str:
    for size, suffix in ((1e7, " Cr"), (1e5, " L"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:g}"


def line_chart(labels: Sequence[str], series: Sequence[Series], *, width: int = 640, height: int = 220,
               title: str = "") -> Markup:
    """One polyline per series over shared x labels (dates); y axis from zero."""
    left, right, top, bottom = 48, 12, 14, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for s in series for v in s.values), default=0) or 1
    ticks = _ticks(peak)
    peak = max(peak, ticks[-1])
    n = max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return left + plot_w * i / n

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">']
    for t in ticks:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eceff4"/>'
                     f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_short(t)}</text>')
    step = max(1, len(labels) // 8)
    for i in range(0, len(labels), step):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle">{escape(labels[i])}</text>')
    for colour, s in zip(PALETTE, series, strict=False):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
                     f"<title>{escape(s.label)}</title></polyline>")
        if len(s.values) == 1:
            parts.append(f'<circle cx="{x(0):.1f}" cy="{y(s.values[0]):.1f}" r="3" fill="{colour}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(labels: Sequence[str], values: Sequence[float], *, width: int = 640, bar: int = 22,
              colour: str = PALETTE[0], fmt: str = "{:,.0f}") -> Markup:
    """Horizontal bars, largest first as given: a funnel or a breakdown."""
    label_w, height = 150, bar * len(labels) + 8
    peak = max(values, default=0) or 1
    parts = [f'<svg class="chart" viewBox="0 0 {width} {max(height, bar)}" role="img">']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        w = (width - label_w - 90) * value / peak
        yy = 4 + i * bar
        parts.append(f'<text x="{label_w - 8}" y="{yy + bar * 0.65:.1f}" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{yy + 3}" width="{w:.1f}" height="{bar - 6}" rx="3" fill="{colour}"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{yy + bar * 0.65:.1f}">{escape(fmt.format(value))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def swatch(colour: str) -> Markup:
    """A colour square as SVG: presentation attributes pass a CSP without inline styles."""
    return Markup('<svg class="swatch" viewBox="0 0 1 1" aria-hidden="true">'
                  '<rect width="1" height="1" fill="{}"/></svg>').format(colour)


def meter(percent: float | None) -> Markup:
    """A progress bar's fill as SVG (no inline style: the console's CSP refuses those)."""
    value = max(0.0, min(100.0, float(percent or 0)))
    return Markup('<svg class="fill" viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true">'
                  '<rect width="{:.1f}" height="1"/></svg>').format(value)


def legend(series: Sequence[Series]) -> Markup:
    items = "".join(f'<span>{swatch(c)}{escape(s.label)}</span>' for c, s in zip(PALETTE, series, strict=False))
    return Markup(f'<div class="legend">{items}</div>')


@dataclass(frozen=True)
class Point:
    lat: float
    lng: float
    label: str
    kind: str  # 'therapist' or 'booking'


def distance_map(points: Sequence[Point], links: Sequence[tuple[int, int]], *, width: int = 640,
                 height: int = 420) -> Markup:
    """Therapists and bookings placed by latitude/longitude (equirectangular: fine at city scale),
    with a line from each assigned therapist to the booking. No map tiles: nothing is fetched."""
    if not points:
        return Markup('<p class="muted">Nothing to show.</p>')
    pad = 20
    lats, lngs = [p.lat for p in points], [p.lng for p in points]
    lat0, lat1, lng0, lng1 = min(lats), max(lats), min(lngs), max(lngs)
    span = max(lat1 - lat0, lng1 - lng0, 1e-3)

    def xy(p: Point) -> tuple[float, float]:
        x = pad + (p.lng - lng0) / span * (width - 2 * pad)
        return x, height - pad - (p.lat - lat0) / span * (height - 2 * pad)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="assignments">']
    for a, b in links:
        (x1, y1), (x2, y2) = xy(points[a]), xy(points[b])
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                     'stroke="#9bb" stroke-width="1.5"/>')
    for p in points:
        x, y = xy(p)
        colour, r = (PALETTE[0], 4) if p.kind == "therapist" else (PALETTE[2], 5)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{colour}">'
                     f"<title>{escape(p.label)}</title></circle>")
    parts.append("</svg>")
    return Markup("".join(parts))
