"""Which model runs on a series: the first catalog model whose intended input fits its headers.

With no model forced (no ``--model``, no model file in the GUI's settings), each series gets
one model: the catalog's usable models are tried in the catalog's order (bundled
``radassist-demo*`` first, then by file name; ``model.catalog``) with the engine's own check
(``inputcheck.check_input`` on the series' headers, no pixels), and the first applicable one
runs. One model per series, even when a classifier and a segmenter both fit: the others that
fit are named (``ModelChoice.also_fit``) so that the reader can force one. A series that no
model fits gets one line saying so and what each model is for (``ModelChoice.reason``).
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop_app.inference.inputcheck import InputCheck, SeriesHeaders, check_input
from desktop_app.model.catalog import CatalogEntry, ModelCatalog


@dataclass(frozen=True)
class ModelChoice:
    """The model chosen for one series, or None with the reason.

    ``check``: the chosen model's input check (applicable; its ``reasons`` may still name tags
    that could not be checked), handed to ``InferenceEngine.run(input_check=...)`` so the
    headers are not read twice. ``also_fit``: the file names of the other usable models that
    fit, in catalog order."""

    entry: CatalogEntry | None
    check: InputCheck | None
    reason: str = ""
    also_fit: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.entry is not None

    def describe(self) -> str:
        """One line: ``radassist-ct-nodule-lite0.safetensors (CT nodule 1, segmentation), for CT
        slices`` (plus the others that fit), or the reason none was chosen."""
        if self.entry is None:
            return self.reason
        text = f"{self.entry.title()}, for {self.entry.input_text}"
        if self.also_fit:
            text += f" (also fits: {', '.join(self.also_fit)}; force one to run it instead)"
        return text


def series_text(headers: SeriesHeaders) -> str:
    """ "this CT series (40 slices)", "this image (no DICOM headers)": the series in messages."""
    if headers.file_kind != "dicom":
        return "this image (no DICOM headers)"
    modality = headers.modality or "unknown-modality"
    kind = {"slice": "slices", "projection": "radiographs"}.get(headers.image_kind, "images")
    return f"this {modality} series ({headers.images} {kind if headers.images > 1 else 'image'})"


def choose_model(headers: SeriesHeaders, catalog: ModelCatalog) -> ModelChoice:
    """The first usable model of ``catalog`` whose intended input fits ``headers``."""
    chosen: CatalogEntry | None = None
    chosen_check: InputCheck | None = None
    also: list[str] = []
    for entry in catalog.usable:
        assert entry.intended_input is not None  # a usable entry has its manifest
        check = check_input(headers, entry.intended_input)
        if not check.applicable:
            continue
        if chosen is None:
            chosen, chosen_check = entry, check
        else:
            also.append(entry.file_name)
    if chosen is not None:
        return ModelChoice(chosen, chosen_check, also_fit=tuple(also))
    return ModelChoice(None, None, reason=_none_fits(headers, catalog))


def _none_fits(headers: SeriesHeaders, catalog: ModelCatalog) -> str:
    what = series_text(headers)
    usable = catalog.usable
    if not usable:
        folders = f"{catalog.bundled_dir} or {catalog.installed_dir}"
        broken = f" ({len(catalog.entries)} unusable)" if catalog.entries else ""
        return f"no model fits {what}: there is no usable model file in {folders}{broken}"
    models = "; ".join(f"{e.file_name} is for {e.input_text}" for e in usable)
    return f"no model fits {what}: {models}"


__all__ = ["ModelChoice", "choose_model", "series_text"]
