"""The GUI's decode budget: Settings ▸ "Largest image to open" (issue 12)."""

from __future__ import annotations

from tests.qt.conftest import SAMPLE_CT, open_and_wait


def test_the_viewer_decodes_within_the_largest_image_setting(qtbot, make_window, qsettings) -> None:
    """Settings ▸ "Largest image to open" is the budget the viewer (and the model run on what
    it shows) decodes with: a hostile file's declared size is refused under it."""
    from desktop_app.dicom.limits import MIB

    qsettings.setValue("reading/max_object_mib", 64)
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    volume = window.shown.volume
    assert volume is not None
    assert volume.limits.max_object_bytes == 64 * MIB
    assert volume.limits.max_frame_bytes == 64 * MIB
