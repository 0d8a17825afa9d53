"""Screenshots of Settings ▸ Models, the model catalog (models-*).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python \
        docs/screenshots/make_models.py --size 1600x1000   # and --size 1280x720

Opens the bundled samples on fresh temporary settings and data folder, with an installed-models
folder (``RADASSIST_MODELS_DIR``) that holds an interrupted download (the first 4 KiB of the
bundled demo model), then opens Settings on its Models tab and grabs the screen: every bundled
model with its task and intended input, and the broken file listed with its reason.
"""

from __future__ import annotations

import os
import sys

from shots import ROOT, SAMPLE, Session, grab_screen, open_and_show, parse_args, wait


def main() -> int:
    args = parse_args(__doc__)
    session = Session()
    installed = session.folder / "installed-models"
    installed.mkdir()
    demo = ROOT / "resources" / "models" / "radassist-demo-lite0.safetensors"
    (installed / "site-model-download.safetensors").write_bytes(demo.read_bytes()[:4096])
    os.environ["RADASSIST_MODELS_DIR"] = str(installed)
    window = session.window(args.width, args.height)
    if not open_and_show(window, [SAMPLE]):
        print("error: the samples did not open", file=sys.stderr)
        return 1
    window.preferences.open_settings()
    dialog = window.preferences.settings_dialog
    assert dialog is not None
    dialog.tabs.setCurrentIndex(dialog.tabs.count() - 1)
    dialog.resize(min(1100, args.width - 80), min(520, args.height - 80))
    dialog.move((args.width - dialog.width()) // 2, (args.height - dialog.height()) // 2)
    wait(lambda: dialog.isVisible())
    grab_screen(args.out / f"models-{args.width}.png", args.width, args.height)
    dialog.reject()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
