"""Regenerate the bundled sample studies in resources/sample/ (deterministic).

    python resources/make_samples.py

Writes a synthetic PA chest radiograph with one clear nodule (chest_xr/), a small CT
phantom series with one lung lesion (ct_phantom/), a truth.json beside each, and
README.md. Running it twice gives byte-identical files: every pixel, UID and date comes
from the seeds below. The studies are synthetic phantoms, never patient data.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from desktop_app.infra.atomicio import atomic_write_json, atomic_write_text  # noqa: E402
from desktop_app.phantoms.studies import Lesion, write_chest_xr, write_ct_series  # noqa: E402

SAMPLE = HERE / "sample"
XR_SEED = 2024
XR_SIZE = 1024
XR_NODULE = {"diameter_mm": 22.0, "contrast": 1.3, "side": -1}
CT_SEED = 7
CT_SLICES = 40
CT_SIZE = 256
CT_THICKNESS_MM = 5.0
CT_LESION = Lesion(center_mm=(-75.0, -15.0, 10.0), radius_mm=12.0, hu=50.0)  # right lung


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_chest(folder: Path) -> dict[str, object]:
    path, ann = write_chest_xr(
        folder / "chest_pa.dcm",
        XR_SEED,
        rows=XR_SIZE,
        findings=["nodule"],
        finding_params={"nodule": XR_NODULE},
        compression="rle",
    )
    box = ann.boxes["nodule"]
    truth = {
        "file": path.name,
        "seed": XR_SEED,
        "rows": ann.rows,
        "cols": ann.cols,
        "pixel_spacing_mm": ann.pixel_spacing_mm,
        "cardiothoracic_ratio": round(ann.cardiothoracic_ratio, 3),
        "findings": {"nodule": 1, "effusion": 0, "cardiomegaly": 0},
        "boxes": {"nodule": {"x": box.x, "y": box.y, "width": box.width, "height": box.height}},
        "nodule": {
            k: (round(v, 2) if isinstance(v, float) else v)
            for k, v in ann.details["nodule"].items()
        },
    }
    atomic_write_json(folder / "truth.json", truth)
    return truth


def make_ct(folder: Path) -> dict[str, object]:
    series = write_ct_series(
        folder,
        CT_SEED,
        slices=CT_SLICES,
        rows=CT_SIZE,
        slice_thickness_mm=CT_THICKNESS_MM,
        lesions=[CT_LESION],
        compression="rle",
    )
    lesion = series.lesions[0]
    truth = {
        "files": [p.name for p in series.paths],
        "seed": CT_SEED,
        "slices": CT_SLICES,
        "rows": CT_SIZE,
        "cols": CT_SIZE,
        "pixel_spacing_mm": series.geometry.pixel_spacing[0],
        "slice_thickness_mm": CT_THICKNESS_MM,
        "lesions": [
            {
                "center_mm": list(lesion.lesion.center_mm),
                "radius_mm": lesion.lesion.radius_mm,
                "volume_mm3": round(lesion.lesion.volume_mm3, 1),  # the sphere's, 4/3 pi r^3
                "hu": lesion.lesion.hu,
                "first_slice": lesion.first_slice,
                "last_slice": lesion.last_slice,
                "largest_slice": lesion.largest_slice,
                "box": {
                    "x": lesion.box.x,
                    "y": lesion.box.y,
                    "width": lesion.box.width,
                    "height": lesion.box.height,
                },
            }
        ],
    }
    atomic_write_json(folder / "truth.json", truth)
    return truth


README = """# Sample studies (synthetic)

Both studies are **synthetic phantoms** made by `desktop_app/phantoms/studies.py` from fixed
seeds. They contain no patient data; the names (`PHANTOM^…`) and UIDs are made up and
deterministic. Regenerate them with `python resources/make_samples.py` (byte-identical with
the same numpy version on the same kind of CPU; other platforms may differ by rounding).
Each folder has a `truth.json` with the ground truth below, for tests.

## chest_xr/ — one PA chest radiograph (DX, RLE Lossless)

- File: `chest_pa.dcm`, {xr_rows}x{xr_cols}, 12-bit MONOCHROME2, pixel spacing {xr_spacing:.3f} mm.
- Seed {xr_seed}; patient `PHANTOM^{xr_seed:04d}`.
- Finding: **nodule** (one clear nodule, {nodule_mm:.0f} mm, in the right lung — the image's left).
  Box (pixels, top-left x, y, width, height): **x={bx}, y={by}, width={bw}, height={bh}**.
- No effusion, no cardiomegaly (cardiothoracic ratio {ctr:.2f}).

## ct_phantom/ — chest CT phantom ({ct_slices} slices, RLE Lossless)

- Files `CT0001.dcm` … `CT{ct_slices:04d}.dcm`, {ct_rows}x{ct_cols} pixels, {ct_spacing:.3f} mm, slice
  thickness {ct_thickness:g} mm, axial, head first (Instance Number 1 is the top slice).
- Seed {ct_seed}. Values in HU through Rescale Intercept -1024: air -1000, fat -100, soft tissue
  40, lung about -820, bone 250-900.
- Lesion: a {lesion_mm:.1f} mm-radius sphere of {lesion_hu:g} HU in a lung, centre {lesion_c} mm (LPS),
  on slices {first}-{last} (0-based; Instance Numbers {first1}-{last1}), largest on slice {largest};
  box over its slices x={lx}, y={ly}, width={lw}, height={lh}.

## Sizes and checksums

{checksums}
"""


def main() -> int:
    for name in ("chest_xr", "ct_phantom"):
        shutil.rmtree(SAMPLE / name, ignore_errors=True)
    xr = make_chest(SAMPLE / "chest_xr")
    ct = make_ct(SAMPLE / "ct_phantom")
    files = sorted(p for p in SAMPLE.rglob("*.dcm"))
    total = sum(p.stat().st_size for p in files)
    lines = [
        f"- `chest_xr/chest_pa.dcm`: {(SAMPLE / 'chest_xr' / 'chest_pa.dcm').stat().st_size:,} bytes, "
        f"sha256 `{_sha256(SAMPLE / 'chest_xr' / 'chest_pa.dcm')[:16]}…`",
        f"- `ct_phantom/`: {sum(1 for p in files if p.parent.name == 'ct_phantom')} files, "
        f"{sum(p.stat().st_size for p in files if p.parent.name == 'ct_phantom'):,} bytes",
        f"- total: {total:,} bytes",
    ]
    xb = xr["boxes"]["nodule"]  # type: ignore[index]
    lesion = ct["lesions"][0]  # type: ignore[index]
    text = README.format(
        xr_rows=xr["rows"],
        xr_cols=xr["cols"],
        xr_spacing=xr["pixel_spacing_mm"],
        xr_seed=XR_SEED,
        nodule_mm=XR_NODULE["diameter_mm"],
        bx=xb["x"],
        by=xb["y"],
        bw=xb["width"],
        bh=xb["height"],
        ctr=xr["cardiothoracic_ratio"],
        ct_slices=CT_SLICES,
        ct_rows=CT_SIZE,
        ct_cols=CT_SIZE,
        ct_spacing=ct["pixel_spacing_mm"],
        ct_thickness=CT_THICKNESS_MM,
        ct_seed=CT_SEED,
        lesion_mm=lesion["radius_mm"],
        lesion_hu=lesion["hu"],
        lesion_c=", ".join(f"{v:g}" for v in lesion["center_mm"]),
        first=lesion["first_slice"],
        last=lesion["last_slice"],
        first1=lesion["first_slice"] + 1,
        last1=lesion["last_slice"] + 1,
        largest=lesion["largest_slice"],
        lx=lesion["box"]["x"],
        ly=lesion["box"]["y"],
        lw=lesion["box"]["width"],
        lh=lesion["box"]["height"],
        checksums="\n".join(lines),
    )
    atomic_write_text(SAMPLE / "README.md", text)
    print(f"wrote {len(files)} DICOM files ({total / 1e6:.1f} MB) under {SAMPLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
