"""Results that leave the app: DICOM SR, secondary captures, PDF report and JSON (Qt-free).

The one entry point is :func:`study_export.export_study` (the GUI's "Export…" and
``radassist export`` both call it); docs/exports.md describes the outputs.

Modules (one job each):
- content: findings merged with the reader's verdicts (ExportFinding: the model's decision and the reader's truth apart), the model summary.
- sources: the source study indexed; headers as exported (de-identified, consistent UIDs); key-image rendering.
- sr: the TID 1500 Comprehensive SR built through highdicom's templates.
- seg: DICOM SEG (BINARY, highdicom) of lesion masks on a series' grid, written atomically.
- lesion_sr: reviewed lesions as DICOM: the SEG of the kept lesions (one segment each) and the TID 1500 Comprehensive 3D SR of their measurements referencing it.
- sr_annotations: the reader's annotations (ROIs with area/mean/SD/min/max, angles, arrows, key images) as TID 1500 measurement groups.
- secondary_capture: key images with the overlay and notice burned in, as RGB Secondary Capture images.
- report_model: what the PDF says (header, key images, findings table with model and reader columns, missed findings, the reader's measurements and annotations, model card summary, disclaimer).
- report_pdf: the PDF layout with reportlab (notice and disclaimer on every page).
- json_export: the versioned export JSON (the model's findings schema fields, the reader's verdict beside each).
- study_export: ExportRequest / ExportResult / export_study: all four, atomically, into OUT/<h(study)>/.

Heavy imports (highdicom, reportlab) happen inside these modules, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from desktop_app.exports.study_export import (
        FORMATS,
        ExportRequest,
        ExportResult,
        export_study,
    )

__all__ = ["FORMATS", "ExportRequest", "ExportResult", "export_study"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from desktop_app.exports import study_export

        return getattr(study_export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
