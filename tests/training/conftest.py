"""Fixtures for the training tests: every module trains on one torch thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.tinydata import single_thread


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread per module, restored after (why: ``single_thread``'s docstring)."""
    with single_thread():
        yield
