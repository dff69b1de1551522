"""Line charts as inline SVG (no JavaScript, no CDN): axes, nice ticks, one path per series."""

from __future__ import annotations

import math
from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
Series = tuple[str, list[tuple[float, float]]]  # (label, [(step, value)])
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 560, 260, 60, 16, 28, 36
_MAX_POINTS = 800


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def thin(points: list[tuple[float, float]], limit: int = _MAX_POINTS) -> list[tuple[float, float]]:
    """At most `limit` points, evenly strided, always keeping the last."""
    if len(points) <= limit:
        return points
    stride = math.ceil(len(points) / limit)
    return points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])


def _format(value: float) -> str:
    return f"{value:.3g}"


def line_chart(
    series: list[Series], *, title: str, log_y: bool = False, x_label: str = "step"
) -> str:
    """An SVG chart; `log_y` plots log10 of the values (losses span decades)."""
    clean = [
        (label, [(x, y) for x, y in pts if math.isfinite(y) and (y > 0 or not log_y)])
        for label, pts in series
    ]
    points = [p for _, pts in clean for p in pts]
    if not points:
        return f'<p class="empty">{escape(title)}: no finite values yet</p>'
    ty = (lambda y: math.log10(y)) if log_y else (lambda y: y)
    xs, ys = [p[0] for p in points], [ty(p[1]) for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    pad = (max(ys) - min(ys)) * 0.05 or abs(ys[0]) * 0.05 or 1.0
    y0, y1 = min(ys) - pad, max(ys) + pad
    sx = lambda x: _LEFT + (x - x0) / (x1 - x0) * (_W - _LEFT - _RIGHT)  # noqa: E731
    sy = lambda y: _H - _BOTTOM - (ty(y) - y0) / (y1 - y0) * (_H - _TOP - _BOTTOM)  # noqa: E731
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{_LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}'
        f"{' (log scale)' if log_y else ''}</text>",
    ]
    parts += _axes(x0, x1, y0, y1, sx, log_y, x_label)
    for k, (label, pts) in enumerate(clean):
        if not pts:
            continue
        color = COLORS[k % len(COLORS)]
        d = " ".join(
            f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(thin(pts))
        )
        parts.append(
            f'<path class="series" d="{d}" fill="none" stroke="{color}" '
            f'stroke-width="1.5"><title>{escape(label)}</title></path>'
        )
        if len(pts) == 1:
            x, y = pts[0]
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        parts.append(
            f'<text x="{_W - _RIGHT - 4}" y="{_TOP + 4 + 14 * k}" font-size="11" '
            f'text-anchor="end" fill="{color}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _axes(x0, x1, y0, y1, sx, log_y: bool, x_label: str) -> list[str]:
    bottom, height = _H - _BOTTOM, _H - _TOP - _BOTTOM
    out = [
        f'<line x1="{_LEFT}" y1="{bottom}" x2="{_W - _RIGHT}" y2="{bottom}" stroke="#888"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}" stroke="#888"/>',
    ]
    for x in nice_ticks(x0, x1):
        out.append(
            f'<text x="{sx(x):.1f}" y="{bottom + 16}" font-size="10" '
            f'text-anchor="middle">{_format(x)}</text>'
        )
    for y in nice_ticks(y0, y1):
        py = bottom - (y - y0) / (y1 - y0) * height
        label = _format(10**y) if log_y else _format(y)
        out.append(
            f'<line x1="{_LEFT}" y1="{py:.1f}" x2="{_W - _RIGHT}" y2="{py:.1f}" '
            f'stroke="#eee"/><text x="{_LEFT - 6}" y="{py + 3:.1f}" font-size="10" '
            f'text-anchor="end">{label}</text>'
        )
    out.append(
        f'<text x="{(_LEFT + _W - _RIGHT) / 2}" y="{_H - 4}" font-size="11" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    return out
