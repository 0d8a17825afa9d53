"""The argparse types every command shares (desktop_app/commands/_common.py)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

import pytest

from desktop_app.commands._common import (
    device_arg,
    fraction,
    int_between,
    label_list,
    non_negative_int,
    positive_float,
    positive_int,
)


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        (positive_int, "1", 1),
        (positive_int, "12", 12),
        (non_negative_int, "0", 0),
        (int_between(1, 256), "1", 1),
        (int_between(1, 256), "256", 256),
        (positive_float, "0.001", 0.001),
        (positive_float, "3e-4", 3e-4),
        (fraction, "0", 0.0),
        (fraction, "1", 1.0),
        (fraction, "0.25", 0.25),
        (device_arg, "auto", "auto"),
        (device_arg, " CUDA:1 ", "cuda:1"),
        (device_arg, "mps", "mps"),
        (label_list, "nodule", ["nodule"]),
        (label_list, " nodule , effusion ", ["nodule", "effusion"]),
    ],
)
def test_good_values_are_parsed(kind: Callable[[str], Any], text: str, expected: Any) -> None:
    assert kind(text) == expected


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (positive_int, "0", "0 should be at least 1"),
        (positive_int, "-3", "-3 should be at least 1"),
        (positive_int, "1.5", "'1.5' is not a whole number"),
        (positive_int, "x", "'x' is not a whole number"),
        (non_negative_int, "-1", "-1 should be 0 or more"),
        (int_between(1, 256), "0", "0 should be between 1 and 256"),
        (int_between(1, 256), "257", "257 should be between 1 and 256"),
        (int_between(1, 256), "two", "'two' is not a whole number"),
        (positive_float, "0", "0.0 should be above 0"),
        (positive_float, "nan", "nan should be above 0"),
        (positive_float, "lots", "'lots' is not a number"),
        (fraction, "1.01", "1.01 should be between 0 and 1"),
        (fraction, "-0.1", "-0.1 should be between 0 and 1"),
        (device_arg, "gpu", "'gpu' is not one of auto, cpu, cuda, mps (or cuda:N)"),
        (device_arg, "cuda:x", "'cuda:x' is not one of auto, cpu, cuda, mps (or cuda:N)"),
        (label_list, "", "'': give comma-separated label names"),
        (label_list, "a,,b", "'a,,b': give comma-separated label names"),
        (label_list, " , ", "' , ': give comma-separated label names"),
    ],
)
def test_bad_values_say_why(kind: Callable[[str], Any], text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=f"^{re.escape(message)}$"):
        kind(text)
