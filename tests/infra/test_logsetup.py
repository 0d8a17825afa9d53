"""infra.logsetup: everything to the log file, only the app's own one-line records on stderr."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_app.infra import logsetup


@pytest.fixture
def configured(data_dir: Path) -> Iterator[Path]:
    path = logsetup.configure_logging(0, "radassist test")
    assert path is not None
    yield path
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_radassist_handler", False)]:
        root.removeHandler(handler)
        handler.close()
    logging.captureWarnings(False)


class TestConfigureLogging:
    def test_third_party_records_reach_the_file_only(
        self, configured: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        logging.getLogger("pydicom").error("bad frame in Doe^John\x1b[2J")
        logging.getLogger("pylibjpeg").warning("libjpeg error")
        assert capsys.readouterr().err == ""
        text = configured.read_text(encoding="utf-8")
        assert "bad frame in Doe^John\\e[2J" in text and "\x1b" not in text
        assert "libjpeg error" in text

    def test_app_warnings_are_one_escaped_line_on_stderr(
        self, configured: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logging.getLogger("desktop_app.x").warning("odd\nvalue", exc_info=True)
        assert capsys.readouterr().err == "radassist test: WARNING: odd\\nvalue\n"
        text = configured.read_text(encoding="utf-8")
        assert "Traceback" in text and "ValueError: boom\\nsecond line" in text

    def test_the_file_is_owner_only_and_a_second_call_replaces_the_handlers(
        self, configured: Path
    ) -> None:
        logging.getLogger("desktop_app").warning("x")
        assert configured.stat().st_mode & 0o777 == 0o600
        before = len(logging.getLogger().handlers)
        logsetup.configure_logging(1, "again")
        assert len(logging.getLogger().handlers) == before

    def test_quoted_values_in_other_libraries_records_are_redacted(self, configured: Path) -> None:
        logging.getLogger("pydicom.valuerep").warning("Invalid value for VR PN: 'DOE^JOHN'")
        logging.getLogger("pydicom").warning('The value "%s" is odd', "MRN12345")
        logging.getLogger("desktop_app.y").warning("kept 'as written'")
        text = configured.read_text(encoding="utf-8")
        assert "DOE^JOHN" not in text and "MRN12345" not in text
        assert "Invalid value for VR PN: <value>" in text and "kept 'as written'" in text
