"""The export dialog says what it writes of the reviewed lesions (a DICOM SEG and an SR of
their measurements, with the DICOM SR) and offers to send the SEG with the SR and images."""

from __future__ import annotations

from typing import Any

import numpy as np

from desktop_app.exports.lesion_sr import LesionRecord, ReviewedLesions, lesions_line
from desktop_app.qt.export_dialog import ExportChoice, ExportDialog

LESIONS = ReviewedLesions(
    "1.2.3#1",
    np.zeros((2, 4, 4), np.uint16),
    (
        LesionRecord(1, verdict="accepted"),
        LesionRecord(2, verdict="rejected", reason="fp_artefact"),
        LesionRecord(3, source="reader", verdict="accepted"),
    ),
)


def _dialog(qtbot: Any, lesions_text: str, nodes: list[str] | None = None) -> ExportDialog:
    dialog = ExportDialog(ExportChoice(), nodes or [], lesions_text=lesions_text)
    qtbot.addWidget(dialog)
    return dialog


class TestLesionsLine:
    def test_counts_kept_and_left_out(self) -> None:
        line = lesions_line([LESIONS])
        assert line == (
            "Reviewed lesions: 2 of 3 in 1 series go out as a DICOM SEG + SR of their "
            "measurements (1 accepted, 1 drawn by the reader; 1 rejected or not reviewed, "
            "left out)"
        )

    def test_none_kept_says_no_seg(self) -> None:
        only = ReviewedLesions("1.2.3#1", LESIONS.labels, (LesionRecord(1, verdict="rejected"),))
        assert lesions_line([only]).endswith("no DICOM SEG (accept or draw a lesion first)")
        assert lesions_line([LESIONS, LESIONS]).startswith("Reviewed lesions: 4 of 6 in 2 series")
        assert "2 DICOM SEGs + SRs" in lesions_line([LESIONS, LESIONS])
        assert lesions_line([]) == ""


class TestDialog:
    def test_the_lesions_are_listed_under_the_formats(self, qtbot: Any) -> None:
        line = lesions_line([LESIONS])
        dialog = _dialog(qtbot, line, nodes=["archive"])
        assert not dialog.lesions_note.isHidden() and dialog.lesions_note.text() == line
        assert dialog.node.itemText(1) == "Send SR, SEG and images to archive"
        dialog.format_boxes["sr"].setChecked(False)
        assert "tick DICOM SR" in dialog.lesions_note.text()
        assert not dialog.lesions_note.isEnabled()
        dialog.format_boxes["sr"].setChecked(True)
        assert dialog.lesions_note.text() == line

    def test_no_lesions_no_line(self, qtbot: Any) -> None:
        dialog = _dialog(qtbot, "", nodes=["archive"])
        assert dialog.lesions_note.isHidden()
        assert dialog.node.itemText(1) == "Send SR and images to archive"
