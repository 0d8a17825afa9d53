"""The GUI's model choice: with no model file in the settings, each series runs the catalog
model whose intended input fits it (a CT series the CT segmenter), the findings panel's model
line says which; a series no model fits shows one line; a model file in the settings still
wins; Settings ▸ Models lists the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_app.model.catalog import load_catalog
from desktop_app.qt.dialogs import SettingsDialog
from desktop_app.qt.plaintext import plain_label
from tests.helpers.modelchoice import CLASSIFIER, SEGMENTER, ct_series, models_folder, mr_series
from tests.qt.conftest import FakeRunner, open_and_wait


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models_folder(tmp_path_factory.mktemp("bundled"))


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("series")
    return {"ct": ct_series(root / "ct", rows=48), "mr": mr_series(root / "mr", rows=48)}


def _window(qtbot, make_window, bundled: Path, **kw: object):  # type: ignore[no-untyped-def]
    """A window whose runner factory records the model path each runner was made for."""
    made: list[str | None] = []

    def factory(model_path: str | None, device: str) -> FakeRunner:
        made.append(model_path)
        return FakeRunner(model_path, device)

    window = make_window(runner=factory, **kw)
    window.inference.model_catalog = lambda: load_catalog(bundled, bundled / "installed")
    return window, made


def _model_line(window) -> str:  # type: ignore[no-untyped-def]
    return str(plain_label(window.findings.model_label).text())


def test_a_ct_series_runs_the_ct_model_and_the_panel_says_so(
    qtbot, make_window, bundled: Path, series: dict[str, Path]
) -> None:
    window, made = _window(qtbot, make_window, bundled)
    assert "chosen per series" in window.inference.model_text()
    open_and_wait(qtbot, window, [series["ct"]])
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.acts["run_inference"].trigger()
    assert made == [str(bundled / SEGMENTER)]
    qtbot.waitUntil(lambda: "chosen for CT slices" in _model_line(window), timeout=20_000)
    assert _model_line(window).startswith("Model: fake-model 0.1")
    # the same series again: the runner is kept, not loaded twice
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.acts["run_inference"].trigger()
    assert made == [str(bundled / SEGMENTER)]


def test_a_series_no_model_fits_shows_one_line(
    qtbot, make_window, bundled: Path, series: dict[str, Path]
) -> None:
    window, made = _window(qtbot, make_window, bundled)
    open_and_wait(qtbot, window, [series["mr"]])
    with qtbot.waitSignal(window.runs.inferenceRefused, timeout=20_000) as refused:
        window.acts["run_inference"].trigger()
    (reason,) = refused.args
    assert reason.startswith("no model fits this MR series (3 slices): ")
    assert f"{SEGMENTER} is for CT slices" in reason and "\n" not in reason
    assert made == []  # nothing was loaded
    panel = window.findings
    assert panel.scope_banner.text() == f"⚠ Not run: {reason}"
    assert panel.run_anyway_button.isVisibleTo(panel)


def test_a_model_file_in_the_settings_still_wins(
    qtbot, make_window, qsettings, bundled: Path, series: dict[str, Path]
) -> None:
    qsettings.setValue("inference/model_path", str(bundled / CLASSIFIER))
    window, made = _window(qtbot, make_window, bundled)
    open_and_wait(qtbot, window, [series["ct"]])
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.acts["run_inference"].trigger()
    assert made == [str(bundled / CLASSIFIER)]
    assert "chosen for" not in _model_line(window)


def test_the_real_engine_runs_the_segmenter_on_a_ct_series(
    qtbot, make_window, bundled: Path, series: dict[str, Path]
) -> None:
    window = make_window(real_engine=True)
    window.inference.model_catalog = lambda: load_catalog(bundled, bundled / "installed")
    open_and_wait(qtbot, window, [series["ct"]])
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=120_000):
        window.acts["run_inference"].trigger()
    outcome = window.runs.last_outcome
    assert outcome is not None and outcome.model.name == "ct test segmenter"
    assert "ct test segmenter" in _model_line(window)
    assert "chosen for CT slices" in _model_line(window)


class TestSettingsModelsTab:
    def test_lists_the_catalog_with_unusable_files_and_the_folder(
        self, qtbot, bundled: Path, tmp_path: Path
    ) -> None:
        installed = tmp_path / "installed"
        installed.mkdir()
        (installed / "broken.safetensors").write_bytes(b"")
        catalog = load_catalog(bundled, installed)
        dialog = SettingsDialog({}, {}, catalog=catalog)
        qtbot.addWidget(dialog)
        table = dialog.models_table
        rows = [
            [table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())
        ]
        assert rows[0][:5] == [
            "applicability test model 1", "classification", "chest CR/DX radiographs",
            "bundled", CLASSIFIER,
        ]  # fmt: skip
        assert rows[1][4] == "broken.safetensors" and rows[1][3] == "installed"
        assert rows[1][5].startswith("unusable: ")
        assert rows[2][1:3] == ["segmentation", "CT slices"]
        assert table.item(2, 4).toolTip() == str(bundled / SEGMENTER)
        assert str(installed) in dialog.models_folder.text()
        assert [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())][-1] == "Models"
