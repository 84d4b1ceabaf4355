"""The branded PDF report (reportlab): one to two A4 pages per job.

Layout, top to bottom: a header band in the institution's colour (name, department, logo),
the patient/study block, an automated impression, 3-plane overlay figures with a legend,
the findings table, the comparison with priors (table and trend plot) when there are
priors, methods (series, models, preprocessing), quality flags and the research-use
disclaimer. Every page has the branding footer and "page x of y". Text is real text in
embedded TrueType fonts, so it can be selected and searched.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    Image,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from radpipe.config import BrandingConfig
from radpipe.report.fonts import BOLD, ITALIC, REGULAR, register_fonts
from radpipe.results.schema import ResultsDocument

PAGE_W, PAGE_H = A4
MARGIN = 15 * mm
HEADER_H = 22 * mm
FOOTER_H = 12 * mm
INK = colors.HexColor("#1d1d1f")
MUTED = colors.HexColor("#5f6368")
RULE = colors.HexColor("#d0d4da")
ZEBRA = colors.HexColor("#f4f6f8")

DISCLAIMER = (
    "This report was produced automatically by software for research use. It is not a "
    "medical device and has not been validated for clinical decisions at this institution "
    "unless stated by the local validation programme. Results must be reviewed by a "
    "qualified radiologist together with the images."
)


@dataclass
class FigureImage:
    """One overlay figure as image bytes (JPEG or PNG) with its caption."""

    data: bytes
    caption: str


@dataclass
class LegendItem:
    """A colour swatch and what it means."""

    colour: tuple[int, int, int]
    label: str


@dataclass
class ReportContent:
    """Everything the PDF shows besides the results document itself."""

    doc: ResultsDocument
    branding: BrandingConfig
    figures: list[FigureImage] = field(default_factory=list)
    legend: list[LegendItem] = field(default_factory=list)
    generated_at: datetime | None = None
    title: str = ""


def _hex(colour: str) -> colors.Color:
    return colors.HexColor(colour)


def _styles(primary: colors.Color) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=REGULAR, fontSize=8.6, leading=11, textColor=INK)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.4, leading=9.2, textColor=MUTED),
        "h2": ParagraphStyle(
            "h2",
            parent=base,
            fontName=BOLD,
            fontSize=10.5,
            leading=13,
            textColor=primary,
            spaceBefore=7,
            spaceAfter=3,
        ),
        "label": ParagraphStyle(
            "label", parent=base, fontSize=6.8, leading=8, textColor=MUTED, fontName=REGULAR
        ),
        "value": ParagraphStyle("value", parent=base, fontName=BOLD, fontSize=8.8, leading=11),
        "impression": ParagraphStyle("impression", parent=base, fontSize=9.4, leading=12.5),
        "caption": ParagraphStyle(
            "caption", parent=base, fontSize=7.2, leading=9, alignment=TA_CENTER, textColor=MUTED
        ),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10),
        "cellr": ParagraphStyle("cellr", parent=base, fontSize=8, leading=10, alignment=TA_RIGHT),
        "disclaimer": ParagraphStyle(
            "disclaimer", parent=base, fontName=ITALIC, fontSize=7.2, leading=9, textColor=MUTED
        ),
    }


def _fmt_date(value: str) -> str:
    """DICOM DA (YYYYMMDD) → YYYY-MM-DD; anything else unchanged."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value or "—"


def _fmt_name(value: str) -> str:
    """DICOM PN (Family^Given^Middle) → 'FAMILY, Given Middle'."""
    parts = [p for p in value.split("^")]
    if len(parts) >= 2:
        given = " ".join(p.title() for p in parts[1:3] if p)
        return f"{parts[0].upper()}, {given}".strip(", ")
    return value or "—"


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


class _NumberedCanvas(Canvas):
    """A canvas that knows the page count when it draws each footer ("page x of y")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initialFontName", REGULAR)  # never fall back to unembedded Helvetica
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self.setFont(REGULAR, 7)
            self.setFillColor(MUTED)
            self.drawRightString(PAGE_W - MARGIN, 8 * mm, f"Page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


class _Swatch(Flowable):
    """A small filled square for the figure legend."""

    def __init__(self, colour: tuple[int, int, int], size: float = 3 * mm) -> None:
        super().__init__()
        self.colour = colors.Color(*(c / 255 for c in colour))
        self.size = size
        self.width = self.height = size

    def draw(self) -> None:
        self.canv.setFillColor(self.colour)
        self.canv.setStrokeColor(self.colour)
        self.canv.rect(0, 0, self.size, self.size, fill=1, stroke=0)


class ReportBuilder:
    """Lays out one report."""

    def __init__(self, content: ReportContent) -> None:
        register_fonts()
        self.content = content
        self.doc = content.doc
        self.branding = content.branding
        self.primary = _hex(self.branding.primary_color)
        self.s = _styles(self.primary)
        self.width = PAGE_W - 2 * MARGIN

    # -- page furniture ------------------------------------------------------------------

    def _header(self, canvas: Canvas, _doc: Any) -> None:
        b = self.branding
        canvas.saveState()
        canvas.setFillColor(self.primary)
        canvas.rect(0, PAGE_H - HEADER_H, PAGE_W, HEADER_H, fill=1, stroke=0)
        canvas.setFillColor(colors.white)
        canvas.setFont(BOLD, 14)
        canvas.drawString(MARGIN, PAGE_H - 10 * mm, b.institution)
        canvas.setFont(REGULAR, 8.5)
        canvas.drawString(MARGIN, PAGE_H - 15 * mm, b.department)
        right = PAGE_W - MARGIN
        if b.logo is not None and b.logo.is_file():
            logo = ImageReader(str(b.logo))
            w, h = logo.getSize()
            height = 14 * mm
            width = height * w / max(h, 1)
            right -= width
            canvas.drawImage(
                logo, right, PAGE_H - 18 * mm, width, height, mask="auto", preserveAspectRatio=True
            )
            right -= 5 * mm
        canvas.setFont(BOLD, 11)
        canvas.drawRightString(right, PAGE_H - 10 * mm, self.content.title)
        canvas.setFont(REGULAR, 7.5)
        canvas.drawRightString(right, PAGE_H - 15 * mm, "Automated image analysis report")
        # footer
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN, FOOTER_H, PAGE_W - MARGIN, FOOTER_H)
        canvas.setFont(REGULAR, 7)
        canvas.setFillColor(MUTED)
        canvas.drawString(MARGIN, 8 * mm, b.footer[:140])
        generated = self.content.generated_at
        stamp = generated.strftime("%Y-%m-%d %H:%M UTC") if generated else ""
        canvas.drawCentredString(PAGE_W / 2, 4.5 * mm, f"radpipe job {self.doc.job}  ·  {stamp}")
        canvas.restoreState()

    # -- sections ------------------------------------------------------------------------

    def _patient_block(self) -> Flowable:
        st = self.doc.study
        options = ", ".join(f"{k}={v}" for k, v in sorted(self.doc.options.items())) or "defaults"
        birth = _fmt_date(st.patient_birth_date)
        if st.patient_sex:
            birth = f"{birth} ({st.patient_sex})"
        cells = [
            ("Patient", _fmt_name(st.patient_name)),
            ("MRN", st.patient_id or "—"),
            ("Born", birth),
            ("Accession", st.accession or "—"),
            ("Study date", _fmt_date(st.study_date)),
            ("Study", st.study_description or "—"),
            ("Analysis", self.doc.app_title or self.doc.app),
            ("Options", options),
        ]
        rows = []
        for i in range(0, len(cells), 4):
            chunk = cells[i : i + 4]
            rows.append([Paragraph(label.upper(), self.s["label"]) for label, _ in chunk])
            rows.append([Paragraph(_escape(value), self.s["value"]) for _, value in chunk])
        table = Table(rows, colWidths=[self.width / 4] * 4)
        table.setStyle(
            TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, -1), REGULAR),
                    ("BACKGROUND", (0, 0), (-1, -1), ZEBRA),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 6),
                    ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                    ("TOPPADDING", (0, 0), (-1, 0), 5),
                    ("BOTTOMPADDING", (0, -1), (-1, -1), 5),
                    ("LINEBELOW", (0, 1), (-1, 1), 0.4, RULE),
                    ("TOPPADDING", (0, 2), (-1, 2), 5),
                ]
            )
        )
        return table

    def _impression(self) -> Flowable:
        shown = self.doc.findings
        if self.doc.app == "hemorrhage":  # the table lists every subtype; say what was seen
            shown = [f for f in shown if f.present or f.code == "any"]
        lines = [f"• {_escape(f.text)}" for f in shown] or ["• No findings."]
        if len(shown) < len(self.doc.findings):
            lines.append("• No other hemorrhage type detected.")
        if not self.doc.qc.passed:
            lines.append(
                "• <font color='#b3261e'><b>Quality check:</b> "
                + _escape("; ".join(self.doc.qc.flags))
                + " — review the images carefully.</font>"
            )
        body = Paragraph("<br/>".join(lines), self.s["impression"])
        title = Paragraph("Impression (automated)", self.s["h2"])
        box = Table([[title], [body]], colWidths=[self.width])
        box.setStyle(
            TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, -1), REGULAR),
                    ("LINEBEFORE", (0, 0), (0, -1), 2.5, self.primary),
                    ("LEFTPADDING", (0, 0), (-1, -1), 8),
                    ("TOPPADDING", (0, 0), (-1, 0), 0),
                    ("BOTTOMPADDING", (0, -1), (-1, -1), 4),
                ]
            )
        )
        return box

    def _figures(self) -> list[Flowable]:
        figs = self.content.figures
        if not figs:
            return []
        gap = 3 * mm
        size = (self.width - gap * (len(figs) - 1)) / len(figs)
        size = min(size, 56 * mm)
        images = [Image(io.BytesIO(f.data), width=size, height=size) for f in figs]
        captions = [Paragraph(_escape(f.caption), self.s["caption"]) for f in figs]
        table = Table([images, captions], colWidths=[size + gap] * len(figs))
        table.setStyle(
            TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, -1), REGULAR),
                    ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                    ("TOPPADDING", (0, 0), (-1, -1), 1),
                ]
            )
        )
        out: list[Flowable] = [table]
        if self.content.legend:
            cells: list[Any] = []
            for item in self.content.legend:
                cells += [_Swatch(item.colour), Paragraph(_escape(item.label), self.s["small"])]
            widths = [4.5 * mm, 40 * mm] * len(self.content.legend)
            legend = Table([cells], colWidths=widths, hAlign="CENTER")
            legend.setStyle(
                TableStyle(
                    [
                        ("FONTNAME", (0, 0), (-1, -1), REGULAR),
                        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                        ("LEFTPADDING", (0, 0), (-1, -1), 1),
                        ("TOPPADDING", (0, 0), (-1, -1), 1),
                    ]
                )
            )
            out.append(legend)
        return [KeepTogether(out)]

    def _table(
        self,
        header: Sequence[str],
        rows: list[list[str]],
        widths: list[float],
        right: Sequence[int] = (),
    ) -> Table:
        """A findings-style table; columns in ``right`` (numbers) are right-aligned."""
        data: list[list[Any]] = [
            [Paragraph(f"<b>{_escape(h)}</b>", self.s["cellr" if i in right else "cell"])]
            for i, h in enumerate(header)
        ]
        data = [[cell[0] for cell in data]]
        for row in rows:
            data.append(
                [
                    Paragraph(_escape(v), self.s["cellr" if i in right else "cell"])
                    for i, v in enumerate(row)
                ]
            )
        table = Table(data, colWidths=widths, repeatRows=1)
        style: list[Any] = [
            ("LINEBELOW", (0, 0), (-1, 0), 0.8, self.primary),
            ("LINEBELOW", (0, -1), (-1, -1), 0.4, RULE),
            ("TOPPADDING", (0, 0), (-1, -1), 2.2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2.2),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ]
        for r in range(2, len(data), 2):
            style.append(("BACKGROUND", (0, r), (-1, r), ZEBRA))
        table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), REGULAR), *style]))
        return table

    def _findings_table(self) -> list[Flowable]:
        doc = self.doc
        w = self.width
        prior = {c.name: c for c in doc.prior.changes} if doc.prior else {}
        out: list[Flowable] = [Paragraph("Findings", self.s["h2"])]
        if doc.app == "metastasis" and doc.lesions:
            rows = [
                [
                    str(les.id),
                    les.location,
                    _num(les.longest_diameter_mm),
                    _num(les.volume_cm3, 2),
                    str(les.slice_index + 1),
                ]
                for les in doc.lesions
            ]
            out.append(
                self._table(
                    [
                        "#",
                        "Location (approximate)",
                        "Longest diameter (mm)",
                        "Volume (cm³)",
                        "Slice",
                    ],
                    rows,
                    [0.07 * w, 0.41 * w, 0.2 * w, 0.18 * w, 0.14 * w],
                    right=(0, 2, 3, 4),
                )
            )
            total = doc.measurement("totalVolume")
            if total is not None:
                out.append(Spacer(1, 1.5 * mm))
                out.append(
                    Paragraph(
                        f"Total lesion volume <b>{total.value:.2f} cm³</b> in "
                        f"{len(doc.lesions)} lesion{'s' if len(doc.lesions) != 1 else ''}"
                        f"{_change_text(prior.get('totalVolume'))}.",
                        self.s["body"],
                    )
                )
            return out
        if doc.app == "hemorrhage":
            rows = [
                [
                    m.label,
                    f"{m.value:.2f}",
                    "likely" if m.value >= 0.5 else "not detected",
                    _change(prior.get(m.name), 2),
                ]
                for m in doc.measurements
                if m.unit == "1"
            ]
            out.append(
                self._table(
                    ["Hemorrhage type", "p", "Call", "Change vs prior"],
                    rows,
                    [0.42 * w, 0.14 * w, 0.2 * w, 0.24 * w],
                    right=(1,),
                )
            )
            volume = doc.measurement("bleedVolume")
            slices = ", ".join(
                str(s.instance_number if s.instance_number is not None else s.index + 1)
                for s in doc.key_slices
            )
            extra = []
            if volume is not None:
                extra.append(f"Estimated bleed volume: <b>{volume.value:.1f} cm³</b> (HU-based).")
            if slices:
                extra.append(f"Key images (instance numbers): <b>{_escape(slices)}</b>.")
            if extra:
                out += [Spacer(1, 2 * mm), Paragraph(" ".join(extra), self.s["body"])]
            return out
        rows = []
        for m in doc.measurements:
            if doc.app == "metastasis" and m.name == "lesionCount":
                value = f"{int(m.value)}"
            else:
                value = _num(m.value, 2 if m.unit == "cm3" else 1)
            rows.append(
                [
                    m.label,
                    value,
                    _unit(m.unit),
                    _num(m.percent_of_brain, 2) if m.percent_of_brain is not None else "—",
                    _change(prior.get(m.name), 2),
                ]
            )
        out.append(
            self._table(
                ["Measurement", "Value", "Unit", "% of brain", "Change vs prior"],
                rows,
                [0.36 * w, 0.14 * w, 0.1 * w, 0.14 * w, 0.26 * w],
                right=(1, 3),
            )
        )
        if doc.brain_volume_cm3:
            out.append(
                Paragraph(
                    f"Brain volume {doc.brain_volume_cm3:,.0f} cm³ (from the brain mask).",
                    self.s["small"],
                )
            )
        return out

    def _priors(self) -> list[Flowable]:
        prior = self.doc.prior
        if prior is None:
            return []
        out: list[Flowable] = [Paragraph("Comparison with prior", self.s["h2"])]
        head = (
            f"Most recent prior: study of {_fmt_date(prior.prior_study_date or '')}"
            f" (accession {_escape(prior.prior_accession or '—')})."
        )
        out.append(Paragraph(head, self.s["body"]))
        rows = [
            [
                c.name,
                _num(c.prior, 2),
                _num(c.current, 2),
                f"{c.absolute:+.2f}",
                "—" if c.percent is None else f"{c.percent:+.1f} %",
            ]
            for c in prior.changes
        ]
        w = self.width
        table = self._table(
            ["Measure", "Prior", "Current", "Change (abs)", "Change (%)"],
            rows,
            [0.13 * w, 0.11 * w, 0.11 * w, 0.12 * w, 0.12 * w],
            right=(1, 2, 3, 4),
        )
        plot = self._trend(prior.trend)
        if plot is not None:
            side = Table([[table, plot]], colWidths=[0.62 * w, 0.38 * w])
            side.setStyle(
                TableStyle(
                    [
                        ("FONTNAME", (0, 0), (-1, -1), REGULAR),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                        ("LEFTPADDING", (0, 0), (0, -1), 0),
                    ]
                )
            )
            out.append(side)
        else:
            out.append(table)
        return [KeepTogether(out)]

    def _trend(self, trend: list[dict[str, Any]]) -> Drawing | None:
        points = [(i, float(p["value"])) for i, p in enumerate(trend) if "value" in p]
        if len(points) < 2:
            return None
        name = str(trend[-1].get("name", ""))
        drawing = Drawing(62 * mm, 38 * mm, initialFontName=REGULAR)  # no Helvetica
        plot = LinePlot()
        plot.x, plot.y = 10 * mm, 8 * mm
        plot.width, plot.height = 48 * mm, 24 * mm
        plot.data = [points]
        plot.lines[0].strokeColor = self.primary
        plot.lines[0].strokeWidth = 1.4
        plot.lines[0].symbol = makeMarker("FilledCircle", size=3.5)
        plot.lines[0].symbol.fillColor = self.primary
        plot.xValueAxis.valueMin = -0.3
        plot.xValueAxis.valueMax = len(points) - 0.7
        plot.xValueAxis.valueSteps = [p[0] for p in points]
        labels = [_fmt_date(str(p.get("date", "")))[2:] for p in trend]
        plot.xValueAxis.labelTextFormat = lambda v: labels[round(v)] if 0 <= v < len(labels) else ""
        plot.xValueAxis.labels.fontName = REGULAR
        plot.xValueAxis.labels.fontSize = 6
        plot.yValueAxis.labels.fontName = REGULAR
        plot.yValueAxis.labels.fontSize = 6
        top = max(v for _, v in points)
        plot.yValueAxis.valueMin = 0
        plot.yValueAxis.valueMax = top * 1.25 if top > 0 else 1
        plot.xValueAxis.strokeColor = plot.yValueAxis.strokeColor = RULE
        drawing.add(plot)
        drawing.add(
            String(
                10 * mm,
                34 * mm,
                f"{name} (cm³) over time",
                fontName=BOLD,
                fontSize=7,
                fillColor=INK,
            )
        )
        return drawing

    def _methods(self) -> list[Flowable]:
        doc = self.doc
        out: list[Flowable] = [Paragraph("Methods", self.s["h2"])]
        series = "; ".join(
            f"<b>{_escape(s.role)}</b>: {_escape(s.description or '(no description)')}"
            for s in doc.series
        )
        models = ", ".join(f"{_escape(k)} {_escape(v)}" for k, v in doc.model_versions.items())
        pre = doc.preprocessing
        pre_text = _escape(
            pre.get("summary")
            or ", ".join(f"{k}: {v}" for k, v in pre.items() if isinstance(v, str | int | float))
            or "model grid 240 × 240 × 155, 1 mm, MNI152"
        )
        text = [
            f"<b>Series used.</b> {series or '—'}",
            f"<b>Model.</b> {models or '—'}",
            f"<b>Preprocessing.</b> {pre_text}",
            _MEASUREMENT_NOTE.get(doc.app, _MEASUREMENT_NOTE["glioma"]),
        ]
        out.append(Paragraph("<br/>".join(text), self.s["body"]))
        return out

    def _disclaimer(self) -> Flowable:
        box = Table([[Paragraph(DISCLAIMER, self.s["disclaimer"])]], colWidths=[self.width])
        box.setStyle(
            TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, -1), REGULAR),
                    ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                    ("BACKGROUND", (0, 0), (-1, -1), ZEBRA),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 6),
                    ("TOPPADDING", (0, 0), (-1, -1), 4),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
                ]
            )
        )
        return KeepTogether([Spacer(1, 4 * mm), box])

    # -- the document --------------------------------------------------------------------

    def build(self) -> bytes:
        """The PDF bytes."""
        buffer = io.BytesIO()
        template = BaseDocTemplate(
            buffer,
            pagesize=A4,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=HEADER_H + 5 * mm,
            bottomMargin=FOOTER_H + 4 * mm,
            title=f"{self.content.title} — {self.doc.study.accession}",
            author=self.branding.institution,
            subject=f"radpipe {self.doc.app} report",
            creator="radpipe",
            invariant=1,  # same input, same bytes: reruns make identical reports
            initialFontName=REGULAR,  # never fall back to the unembedded Helvetica
        )
        frame = Frame(
            MARGIN,
            FOOTER_H + 4 * mm,
            self.width,
            PAGE_H - HEADER_H - FOOTER_H - 9 * mm,
            id="body",
            leftPadding=0,
            rightPadding=0,
            topPadding=0,
            bottomPadding=0,
        )
        template.addPageTemplates([PageTemplate("page", [frame], onPage=self._header)])
        story: list[Flowable] = [
            self._patient_block(),
            Spacer(1, 4 * mm),
            self._impression(),
            Spacer(1, 3 * mm),
            *self._figures(),
            *self._findings_table(),
            *self._priors(),
            *self._methods(),
            self._disclaimer(),
        ]
        template.build(story, canvasmaker=_NumberedCanvas)
        return buffer.getvalue()


_MEASUREMENT_NOTE = {
    "glioma": "<b>Measurement.</b> Volumes are counted on the model grid and scaled to the "
    "patient's anatomy by the registration; overlays are drawn on the original images.",
    "metastasis": "<b>Measurement.</b> Lesions are connected components of the model output; "
    "volumes are scaled to the patient's anatomy by the registration, diameters measured in "
    "the patient's space; locations are approximate (MNI152 coordinate boxes).",
    "hemorrhage": "<b>Measurement.</b> Study probabilities are the highest slice "
    "probabilities; the bleed volume is estimated from Hounsfield units (50–95 HU) on the "
    "slices the model flagged and is approximate.",
}


def _unit(unit: str) -> str:
    return {"cm3": "cm³", "count": "", "1": ""}.get(unit, unit)


def _change(change: Any, digits: int) -> str:
    if change is None:
        return "—"
    pct = "" if change.percent is None else f" ({change.percent:+.0f} %)"
    return f"{change.absolute:+.{digits}f}{pct}"


def _change_text(change: Any) -> str:
    if change is None:
        return ""
    return f" (change vs prior {_change(change, 2)} cm³)"


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_report(content: ReportContent) -> bytes:
    """Render the report of ``content`` as PDF bytes."""
    return ReportBuilder(content).build()
