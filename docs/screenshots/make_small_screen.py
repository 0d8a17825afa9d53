"""Screenshots of issue 17's "no surprises", export dialog and small-screen work.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_small_screen.py

Writes, for 1280x720 and 1600x1000: small-screen-<w>.png (the chest sample after a run; the
toolbar's » holds what does not fit), small-screen-overflow-<w>.png (the » pop-up open) and
export-dialog-<w>.png (File ▸ Export… over the window). Fresh temporary settings and data folder.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent


def main() -> int:
    tmp = tempfile.TemporaryDirectory(prefix="radassist-docs-")
    os.environ["RADASSIST_DATA_DIR"] = str(Path(tmp.name) / "data")
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication, QToolButton

    from desktop_app.infra.atomicio import atomic_write_bytes
    from desktop_app.pacs.nodes import NodeConfig, PacsNode
    from desktop_app.qt.export_dialog import ExportDialog, configured_nodes, load_choice
    from desktop_app.qt.main_window import MainWindow
    from desktop_app.qt.theme import apply_dark_theme

    app = QApplication(sys.argv[:1])
    apply_dark_theme(app)
    config = NodeConfig.load()
    config.add(PacsNode("archive", "ARCHIVE", "pacs.example.org", 104))
    config.save()

    def settle() -> None:
        loop = QEventLoop()
        QTimer.singleShot(300, loop.quit)
        loop.exec()

    def save(image: object, name: str) -> None:
        from PySide6.QtCore import QBuffer, QIODevice

        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")  # type: ignore[attr-defined]
        atomic_write_bytes(OUT / name, bytes(buffer.data().data()))
        print(OUT / name)

    for width, height in ((1280, 720), (1600, 1000)):
        settings = QSettings(str(Path(tmp.name) / f"s{width}.ini"), QSettings.Format.IniFormat)
        settings.setValue("review/reviewer", "Dr A. Reader")
        window = MainWindow(settings=settings, warm_up_ms=-1)
        window.resize(width, height)
        window.move(0, 0)
        window.show()
        loop = QEventLoop()
        window.studies.seriesShown.connect(lambda _k, lp=loop: lp.quit())
        window.studies.open_paths([ROOT / "resources" / "sample" / "chest_xr"])
        loop.exec()
        window.runs.run_inference_and_wait()
        settle()
        save(window.grab().toImage(), f"small-screen-{width}.png")
        (ext,) = window.toolbar.findChildren(QToolButton, "qt_toolbar_ext_button")
        if ext.isVisible():
            ext.click()
            settle()
            screen = QGuiApplication.primaryScreen()
            save(
                screen.grabWindow(0, 0, 0, width, height).toImage(),
                f"small-screen-overflow-{width}.png",
            )
            ext.click()
        dialog = ExportDialog(
            load_choice(settings), configured_nodes(), "Export “PA CHEST (synthetic)”", window
        )
        dialog.show()
        dialog.move(window.geometry().center() - dialog.rect().center())
        settle()
        screen = QGuiApplication.primaryScreen()
        save(screen.grabWindow(0, 0, 0, width, height).toImage(), f"export-dialog-{width}.png")
        dialog.close()
        window.close()
        window.deleteLater()
        settle()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
