"""ForwardCapture: a forward hook on one module for the length of a ``with`` block, what the
out-of-distribution features are caught with (``networks.PenultimateFeatures``, a classifier
head's input; ``inference.fastpath.EncoderFeatures``, a segmentation UNet's pooled encoder).
Only torch: importing it costs no MONAI."""

from __future__ import annotations

from typing import Any, Self

import torch
from torch import nn


class ForwardCapture:
    """A forward hook on ``module`` for the length of a ``with`` block (``pre``: on its input,
    else on its output); a subclass's ``_hook`` keeps what it catches in ``value``."""

    def __init__(self, module: nn.Module, pre: bool) -> None:
        self._module, self._pre = module, pre
        self._handle: Any = None
        self.value: torch.Tensor | None = None

    def _hook(self, module: nn.Module, args: Any, out: Any = None) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        register = (
            self._module.register_forward_pre_hook
            if self._pre
            else self._module.register_forward_hook
        )
        self._handle = register(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


__all__ = ["ForwardCapture"]
