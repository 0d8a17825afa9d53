"""Screenshots of the export dialog listing a CT series' reviewed lesions (issue 18 item 6).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_export_lesions.py \
        [--out docs/screenshots]

Writes export-lesions-1280.png and export-lesions-1600.png: File ▸ Export… over the CT sample,
with the line saying which reviewed lesions go out as a DICOM SEG and an SR of their
measurements (two accepted, one drawn by the reader, one rejected left out) and the PACS choice
that sends the SEG too. Fresh temporary settings and data folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shots import HERE, SAMPLE, Session, grab_screen, open_and_show, settle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    out = parser.parse_args().out
    session = Session()
    import numpy as np

    from desktop_app.exports.lesion_sr import LesionRecord, ReviewedLesions, lesions_line
    from desktop_app.pacs.nodes import NodeConfig, PacsNode
    from desktop_app.qt.export_dialog import ExportDialog, configured_nodes, load_choice

    config = NodeConfig.load()
    config.add(PacsNode("archive", "ARCHIVE", "pacs.example.org", 104))
    config.save()
    lesions = ReviewedLesions(
        "1.2.3#1",
        np.zeros((1, 1, 1), np.uint16),
        (
            LesionRecord(1, verdict="accepted"),
            LesionRecord(2, verdict="accepted", edited=True),
            LesionRecord(3, verdict="rejected", reason="fp_artefact"),
            LesionRecord(4, source="reader", verdict="accepted"),
        ),
    )
    for width, height in ((1280, 720), (1600, 1000)):
        window = session.window(width, height, settings_name=f"s{width}.ini")
        if not open_and_show(window, [SAMPLE / "ct_phantom"]):
            print("error: the CT sample did not open", file=sys.stderr)
            return 1
        dialog = ExportDialog(
            load_choice(window.settings),
            configured_nodes(),
            "Export “CT CHEST PHANTOM (synthetic)”",
            window,
            lesions_text=lesions_line([lesions]),
        )
        dialog.node.setCurrentIndex(1)
        dialog.show()
        dialog.move(window.geometry().center() - dialog.rect().center())
        grab_screen(out / f"export-lesions-{width}.png", width, height)
        dialog.close()
        window.close()
        window.deleteLater()
        settle(300)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
