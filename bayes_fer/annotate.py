"""Annotated images: face boxes and per-class intensity bars with their posterior spread."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from bayes_fer.predictive import PredictionResult

PANEL_WIDTH = 260
BAR_COLOUR, SPREAD_COLOUR, BOX_COLOUR = (70, 130, 180), (20, 40, 90), (255, 64, 64)


def annotate(img: Image.Image, rows: list[tuple[dict, PredictionResult]], alpha: float | None = None) -> Image.Image:
    """Draw each face's box on ``img`` and, on a side panel, its intensity means as bars with
    +-1 standard deviation whiskers, its readout (from its conformal set at level ``alpha`` when
    the predictions carry a calibrator) and its uncertainty."""
    img = img.convert("RGB")
    font = ImageFont.load_default()
    line = 14
    K = len(rows[0][1].class_names) if rows else 0
    panel_h = max(img.height, len(rows) * (line * (K + 3)) + 10)
    canvas = Image.new("RGB", (img.width + PANEL_WIDTH, panel_h), "white")
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    y = 5
    for n, (src, res) in enumerate(rows, start=1):
        box = src.get("box")
        if box:
            draw.rectangle(box, outline=BOX_COLOUR, width=2)
            draw.text((box[0] + 3, box[1] + 2), str(n), fill=BOX_COLOUR, font=font)
        x0 = img.width + 8
        draw.text((x0, y), f"#{n} {res.compound(alpha)[0]}  H={float(res.entropy[0]):.2f} MI={float(res.mutual_information[0]):.3f}",
                  fill="black", font=font)
        y += line
        loc, scale = res.loc[0], res.scale[0]
        lo, hi = float((loc - scale).min().clamp(max=0)), float((loc + scale).max().clamp(min=0))
        span = max(hi - lo, 1e-6)
        bar_x, bar_w = x0 + 80, PANEL_WIDTH - 95
        zero = bar_x + bar_w * (0 - lo) / span
        for k, name in enumerate(res.class_names):
            draw.text((x0, y), name[:11], fill="black", font=font)
            end = bar_x + bar_w * (float(loc[k]) - lo) / span
            draw.rectangle([min(zero, end), y + 3, max(zero, end), y + line - 3], fill=BAR_COLOUR)
            if res.stochastic:
                a = bar_x + bar_w * (float(loc[k] - scale[k]) - lo) / span
                b = bar_x + bar_w * (float(loc[k] + scale[k]) - lo) / span
                draw.line([a, y + line // 2, b, y + line // 2], fill=SPREAD_COLOUR, width=1)
                draw.line([a, y + 3, a, y + line - 3], fill=SPREAD_COLOUR)
                draw.line([b, y + 3, b, y + line - 3], fill=SPREAD_COLOUR)
            y += line
        if not res.stochastic:
            draw.text((x0, y), "spread: zero (deterministic head)", fill="gray", font=font)
        y += line + 6
    return canvas
