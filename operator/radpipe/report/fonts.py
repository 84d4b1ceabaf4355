"""Embedded TrueType fonts for the report (a PDF's standard 14 fonts are not embedded).

Liberation Sans (Arial metrics) from Debian's fonts-liberation is preferred, then DejaVu
Sans (fonts-dejavu-core), then the Bitstream Vera that ships inside reportlab, so the report
always embeds its fonts even on a bare machine.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

REGULAR, BOLD, ITALIC = "RadpipeSans", "RadpipeSans-Bold", "RadpipeSans-Italic"

_CANDIDATES: list[tuple[str, str, str]] = [
    (
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Italic.ttf",
    ),
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Oblique.ttf",
    ),
]


def _bundled() -> tuple[str, str, str]:
    import reportlab

    folder = Path(reportlab.__file__).parent / "fonts"
    return (str(folder / "Vera.ttf"), str(folder / "VeraBd.ttf"), str(folder / "VeraIt.ttf"))


@cache
def register_fonts() -> str:
    """Register the report's font family once; returns the path of the regular face used."""
    for regular, bold, italic in [*_CANDIDATES, _bundled()]:
        if all(Path(p).is_file() for p in (regular, bold, italic)):
            pdfmetrics.registerFont(TTFont(REGULAR, regular))
            pdfmetrics.registerFont(TTFont(BOLD, bold))
            pdfmetrics.registerFont(TTFont(ITALIC, italic))
            addMapping(REGULAR, 0, 0, REGULAR)
            addMapping(REGULAR, 1, 0, BOLD)
            addMapping(REGULAR, 0, 1, ITALIC)
            addMapping(REGULAR, 1, 1, BOLD)
            return regular
    raise RuntimeError("no TrueType font found for the report (reportlab's Vera is missing)")
