"""Screenshots of issue 17's "no surprises", export dialog and small-screen work.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_small_screen.py \
        [--out docs/screenshots]

Writes, for 1280x720 and 1600x1000: small-screen-<w>.png (the chest sample after a run; the
toolbar's » holds what does not fit), small-screen-overflow-<w>.png (the » pop-up open) and
export-dialog-<w>.png (File ▸ Export… over the window). Fresh temporary settings and data folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shots import HERE, SAMPLE, Session, grab, grab_screen, open_and_show, settle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    out = parser.parse_args().out
    session = Session()

    from PySide6.QtWidgets import QToolButton

    from desktop_app.pacs.nodes import NodeConfig, PacsNode
    from desktop_app.qt.export_dialog import ExportDialog, configured_nodes, load_choice

    config = NodeConfig.load()
    config.add(PacsNode("archive", "ARCHIVE", "pacs.example.org", 104))
    config.save()

    for width, height in ((1280, 720), (1600, 1000)):
        window = session.window(width, height, settings_name=f"s{width}.ini")
        if not open_and_show(window, [SAMPLE / "chest_xr"]):
            print("error: the chest sample did not open", file=sys.stderr)
            return 1
        window.runs.run_inference_and_wait()
        grab(window, out / f"small-screen-{width}.png", settle_ms=300)
        (ext,) = window.toolbar.findChildren(QToolButton, "qt_toolbar_ext_button")
        if ext.isVisible():
            ext.click()
            grab_screen(out / f"small-screen-overflow-{width}.png", width, height)
            ext.click()
        dialog = ExportDialog(
            load_choice(window.settings),
            configured_nodes(),
            "Export “PA CHEST (synthetic)”",
            window,
        )
        dialog.show()
        dialog.move(window.geometry().center() - dialog.rect().center())
        grab_screen(out / f"export-dialog-{width}.png", width, height)
        dialog.close()
        window.close()
        window.deleteLater()
        settle(300)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
