"""Draw the RadAssist app icon: resources/icons/radassist.svg and radassist-<N>.png.

The mark: the corner brackets of a detection box, in white, around an amber finding with a
faint halo (a heatmap's peak), on a deep blue rounded square. The SVG and the PNGs come from
the same geometry; the PNGs are drawn with Pillow at 8x and downsampled, and small sizes get
thicker strokes so that the brackets still read at 16 px.

    .venv/bin/python installer/make_icons.py            # rewrites resources/icons/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resources" / "icons"

# geometry on a unit square
INSET = 0.03
RADIUS = 0.22
TOP, BOTTOM = (0x22, 0x4B, 0x6B), (0x12, 0x24, 0x38)
INK = (0xEC, 0xF1, 0xF6)
AMBER = (0xF2, 0xA9, 0x3B)
BOX = (0.21, 0.21, 0.79, 0.79)
ARM = 0.18
DOT = (0.565, 0.445, 0.085)  # x, y, radius
HALO = (0.165, 0.032, 120)  # radius, stroke, alpha (0..255)


def stroke_width(size: int) -> float:
    """Bracket stroke on the unit square: thicker when the icon is small."""
    if size <= 24:
        return 0.10
    if size <= 48:
        return 0.08
    return 0.062


def brackets() -> list[list[tuple[float, float]]]:
    x0, y0, x1, y1 = BOX
    return [
        [(x0, y0 + ARM), (x0, y0), (x0 + ARM, y0)],
        [(x1 - ARM, y0), (x1, y0), (x1, y0 + ARM)],
        [(x1, y1 - ARM), (x1, y1), (x1 - ARM, y1)],
        [(x0 + ARM, y1), (x0, y1), (x0, y1 - ARM)],
    ]


def svg() -> str:
    w = stroke_width(512)
    paths = "\n".join(
        '    <polyline points="{}"/>'.format(" ".join(f"{x * 512:g},{y * 512:g}" for x, y in arm))
        for arm in brackets()
    )
    x, y, r = DOT
    hr, hw, ha = HALO
    inset, size, radius = INSET * 512, (1 - 2 * INSET) * 512, RADIUS * 512
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512" viewBox="0 0 512 512">
  <title>RadAssist</title>
  <defs>
    <linearGradient id="bg" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#{TOP[0]:02x}{TOP[1]:02x}{TOP[2]:02x}"/>
      <stop offset="1" stop-color="#{BOTTOM[0]:02x}{BOTTOM[1]:02x}{BOTTOM[2]:02x}"/>
    </linearGradient>
  </defs>
  <rect x="{inset:g}" y="{inset:g}" width="{size:g}" height="{size:g}" rx="{radius:g}" fill="url(#bg)"/>
  <g fill="none" stroke="#{INK[0]:02x}{INK[1]:02x}{INK[2]:02x}" stroke-width="{w * 512:g}" stroke-linecap="round" stroke-linejoin="round">
{paths}
  </g>
  <circle cx="{x * 512:g}" cy="{y * 512:g}" r="{hr * 512:g}" fill="none" stroke="#{AMBER[0]:02x}{AMBER[1]:02x}{AMBER[2]:02x}" stroke-opacity="{ha / 255:.2f}" stroke-width="{hw * 512:g}"/>
  <circle cx="{x * 512:g}" cy="{y * 512:g}" r="{r * 512:g}" fill="#{AMBER[0]:02x}{AMBER[1]:02x}{AMBER[2]:02x}"/>
</svg>
"""


def png(size: int, scale: int = 8) -> Image.Image:
    n = size * scale
    # background: vertical gradient through a rounded-rectangle mask
    gradient = Image.new("RGBA", (1, n))
    for row in range(n):
        t = row / max(n - 1, 1)
        gradient.putpixel(
            (0, row), (*tuple(round(a + (b - a) * t) for a, b in zip(TOP, BOTTOM)), 255)
        )
    gradient = gradient.resize((n, n))
    mask = Image.new("L", (n, n), 0)
    inset = INSET * n
    ImageDraw.Draw(mask).rounded_rectangle(
        (inset, inset, n - inset, n - inset), radius=RADIUS * n, fill=255
    )
    img = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    img.paste(gradient, (0, 0), mask)

    draw = ImageDraw.Draw(img)
    w = stroke_width(size) * n
    for arm in brackets():
        pts = [(x * n, y * n) for x, y in arm]
        draw.line(pts, fill=(*INK, 255), width=round(w), joint="curve")
        for px, py in pts:  # round caps and joins, as in the SVG
            draw.ellipse((px - w / 2, py - w / 2, px + w / 2, py + w / 2), fill=(*INK, 255))

    halo = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    x, y, r = DOT
    hr, hw, ha = HALO
    if size >= 32:  # a hairline at 16-24 px is noise
        ImageDraw.Draw(halo).ellipse(
            ((x - hr) * n, (y - hr) * n, (x + hr) * n, (y + hr) * n),
            outline=(*AMBER, ha),
            width=round(hw * n),
        )
    ImageDraw.Draw(halo).ellipse(
        ((x - r) * n, (y - r) * n, (x + r) * n, (y + r) * n), fill=(*AMBER, 255)
    )
    img = Image.alpha_composite(img, halo)
    return img.resize((size, size), Image.Resampling.BOX)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder (default resources/icons)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "radassist.svg").write_text(svg(), encoding="utf-8")
    for size in SIZES:
        png(size).save(args.out / f"radassist-{size}.png", optimize=True)
    print(f"wrote {args.out}/radassist.svg and {len(SIZES)} PNGs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
