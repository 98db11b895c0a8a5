"""Server-side SVG for the outcomes page: bars drawn as numbers in a template, no script (docs/DECISIONS.md,
"Outcomes"). Each bar carries its count as text, so the chart reads without colour and a test can read it."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    x: float = 0
    y: float = 0
    width: float = 0
    height: float = 0
    text: str = ""


FUNNEL_ROW = 28  # px per funnel row
FUNNEL_LABEL = 170  # px for the stage names
FUNNEL_WIDTH = 640
HOURS_WIDTH, HOURS_HEIGHT = 640, 180


def funnel_bars(rows: list[tuple[str, int]], top: int | None = None) -> list[Bar]:
    """Horizontal bars, widest = ``top`` (the conversations opened); each ends with its count and share."""
    top = top if top is not None else max((v for _, v in rows), default=0)
    room = FUNNEL_WIDTH - FUNNEL_LABEL - 90
    bars = []
    for i, (label, value) in enumerate(rows):
        width = room * value / top if top else 0
        share = f" ({value / top:.0%})" if top else ""
        bars.append(
            Bar(
                label,
                value,
                x=FUNNEL_LABEL,
                y=i * FUNNEL_ROW,
                width=round(width, 1),
                height=FUNNEL_ROW - 8,
                text=f"{value}{share}",
            )
        )
    return bars


def hour_bars(counts: list[int]) -> list[Bar]:
    """24 vertical bars, midnight to 11 PM on the clinic's clock."""
    top = max(counts, default=0)
    chart = HOURS_HEIGHT - 30
    step = (HOURS_WIDTH - 10) / 24
    bars = []
    for hour, n in enumerate(counts):
        height = chart * n / top if top else 0
        label = f"{(hour % 12) or 12}{'a' if hour < 12 else 'p'}"
        bars.append(
            Bar(
                label,
                n,
                x=round(5 + hour * step, 1),
                y=round(chart - height + 12, 1),
                width=round(step - 4, 1),
                height=round(height, 1),
                text=str(n),
            )
        )
    return bars
