#!/usr/bin/env bash
# Smoke-test the built RadAssist bundle the way a reading-room workstation runs it: extracted
# from its tarball into a temporary folder outside the repository, started with an empty
# environment (env -i: HOME in the temp folder, PATH=/usr/bin:/bin, no venv, no PYTHONPATH,
# no user site) and, where this machine allows a private mount namespace (root), with the
# repository, and the .venv inside it, hidden under an empty tmpfs.
#
#   installer/smoke_test.sh [TARBALL|FOLDER]   default: the newest dist/radassist-*.tar.gz
#                                              (with CPU_ONLY=1: the newest *-cpu.tar.gz)
#
# Checks: --version of the executables; the CPU flavour has no radassist-train and no PyTorch,
# MONAI or CUDA in it; `inspect` of the bundled sample studies and of compressed files from
# pydicom's test set (JPEG 2000, JPEG-LS, RLE, JPEG extended 12-bit, which only
# pylibjpeg-libjpeg decodes, found through its entry points); `predict` on the sample
# radiograph writes findings.json (and, with the bundled model, finds the sample's nodule, with
# its heatmap PNG and the overlay); `predict --device cuda` on this GPU-less machine says in one
# line that it runs on the CPU; `radassist info` reports the CPU and a measured time per image,
# then the cached one; the GUI's --screenshot (offscreen, and under Xvfb where xvfb-run is
# installed, with the model run) is a non-empty PNG; full flavour only: `radassist-train
# make-demo-data` with worker processes (multiprocessing in a frozen program) and `tune`
# (Optuna's SQLite study, whose schema Alembic reads from .py files) ends with a model; the
# desktop entry installs for a user. If resources/models/ holds a model the bundle lacks, it fails.
#
# The dev venv's Python (PYTHON, default .venv/bin/python) is used only outside the clean
# environment: to find pydicom's test files, to make a stand-in model while resources/models/
# is empty (with its ONNX graphs stored, as the CPU flavour has no PyTorch to make them), and
# to read the JSON and PNG results.
# The whole script is one block, read before it runs: editing it meanwhile can't derail it.
{
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
start=$(date +%s)
passed=0

fail() { echo "installer-test: FAIL: $*" >&2; exit 1; }
ok() { passed=$((passed + 1)); echo "installer-test: ok   $* ($(( $(date +%s) - step_start )) s)"; }
step() { step_start=$(date +%s); echo "installer-test: ...  $*"; }

CPU_ONLY=${CPU_ONLY:-}
[ "$CPU_ONLY" = 0 ] && CPU_ONLY=""
if [ -n "${1:-}" ]; then
  tarball=$1
elif [ -n "$CPU_ONLY" ]; then
  tarball=$(ls -t dist/radassist-*-linux-*-cpu.tar.gz 2>/dev/null | head -1 || true)
else
  tarball=$(ls -t dist/radassist-*-linux-*.tar.gz 2>/dev/null | grep -v -- '-cpu\.tar\.gz$' | head -1 || true)
fi
[ -n "$tarball" ] && [ -e "$tarball" ] \
  || fail "no ${CPU_ONLY:+CPU-only }bundle tarball in dist/ (run \`make installer${CPU_ONLY:+ CPU_ONLY=1}\` first)"
[ -x "$PYTHON" ] || fail "$PYTHON not found (the dev venv reads the results)"

# the extracted bundle takes about 1.7 times the tarball (or the folder's own size)
if [ -d "$tarball" ]; then size_kb=$(du -sk "$tarball" | cut -f1); else size_kb=$(du -skL "$tarball" | cut -f1); fi
need_kb=$((size_kb * 2))
free_kb=$(df -Pk "${TMPDIR:-/tmp}" | awk 'NR==2 {print $4}')
[ "$free_kb" -ge "$need_kb" ] \
  || fail "only $((free_kb / 1048576)) GB free in ${TMPDIR:-/tmp}; the bundle needs about $((need_kb / 1048576)) GB (set TMPDIR)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/radassist-smoke.XXXXXX")
case "$tmp" in "$REPO"/*) fail "the temp folder $tmp is inside the repository" ;; esac
cleanup() { [ -n "${KEEP_SMOKE:-}" ] || rm -rf "$tmp"; }
trap cleanup EXIT
home="$tmp/home"
mkdir -p "$home" "$tmp/in/compressed" "$tmp/out"

if [ -d "$tarball" ]; then  # a bundle folder (CI skips the tarball): copy it out of the repo
  step "copy $tarball"
  cp -a "$tarball" "$tmp/radassist"
else
  step "extract $tarball"
  tar -C "$tmp" -xzf "$tarball"
fi
app="$tmp/radassist"
expected_flavour=$("$PYTHON" -c "import json, sys; print(json.load(open(sys.argv[1]))['flavour'])" "$app/_internal/bundle-info.json")
case "$tarball" in
  *-cpu.tar.gz) [ "$expected_flavour" = cpu-only ] || fail "$tarball holds a $expected_flavour bundle" ;;
  *.tar.gz) [ "$expected_flavour" = full ] || fail "$tarball holds a $expected_flavour bundle" ;;
esac
[ -x "$app/radassist" ] || fail "$tarball has no radassist/radassist"
if [ "$expected_flavour" = full ]; then
  [ -x "$app/radassist-train" ] || fail "$tarball has no radassist/radassist-train"
else  # the CPU flavour: ONNX Runtime only, no PyTorch, MONAI, CUDA or training tools
  [ ! -e "$app/radassist-train" ] || fail "the CPU flavour holds radassist-train (it needs PyTorch)"
  for folder in torch torchvision monai nvidia triton; do
    [ ! -e "$app/_internal/$folder" ] || fail "the CPU flavour holds _internal/$folder"
  done
fi
ok "bundle ($expected_flavour) at $app ($(du -sh "$app" | cut -f1))"

# The clean environment, and the repository hidden where a private mount namespace is allowed.
HIDE=()
if [ "$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; then
  HIDE=(unshare --mount --propagation private /bin/sh -c
    'mount -t tmpfs -o size=1m,mode=000 none "$0" && exec "$@"' "$REPO")
  echo "installer-test: the repository ($REPO) is hidden from the bundle"
else
  echo "installer-test: note: no private mount namespace here; the repository stays visible"
fi
run() {  # run a bundle command in the clean environment, from the temp folder
  (cd "$tmp" && env -i HOME="$home" PATH=/usr/bin:/bin ${HIDE[@]+"${HIDE[@]}"} "$@")
}
run_env() {  # run_env VAR=value ... -- command ...: the same, with a few variables set
  local vars=()
  while [ "$1" != "--" ]; do vars+=("$1"); shift; done
  shift
  (cd "$tmp" && env -i HOME="$home" PATH=/usr/bin:/bin "${vars[@]}" ${HIDE[@]+"${HIDE[@]}"} "$@")
}

# ---------------------------------------------------------------- inputs (outside the clean env)
version=$("$PYTHON" -c "from desktop_app import __version__; print(__version__)")
sample="$app/_internal/resources/sample"
testfiles=$("$PYTHON" -c "import pathlib, pydicom; print(pathlib.Path(pydicom.__file__).parent / 'data' / 'test_files')")
COMPRESSED=(JPEG2000.dcm MR_small_jpeg_ls_lossless.dcm JPEGLSNearLossless_16.dcm MR_small_RLE.dcm
  SC_rgb_rle.dcm JPGExtended.dcm SC_rgb_jpeg_dcmtk.dcm image_dfl.dcm)
for f in "${COMPRESSED[@]}"; do cp "$testfiles/$f" "$tmp/in/compressed/"; done

shipped=()
for m in resources/models/*.safetensors; do [ -f "$m" ] && shipped+=("$m"); done
MODEL_ARGS=()
if [ ${#shipped[@]} -gt 0 ]; then
  for m in "${shipped[@]}"; do
    [ -f "$app/_internal/resources/models/$(basename "$m")" ] \
      || fail "resources/models/$(basename "$m") is not in the bundle: rebuild it (make installer)"
  done
  expect_nodule=1
  echo "installer-test: using the bundled models ($(for m in "${shipped[@]}"; do basename "$m"; done | paste -sd, -))"
else
  mkdir -p "$tmp/model"
  "$PYTHON" - "$tmp/model/smoke-test.safetensors" <<'EOF'
import sys
from desktop_app.model.modelfile import default_manifest, save_model_file
from desktop_app.model.networks import build_network

labels = ("nodule", "effusion", "cardiomegaly")
net = build_network("efficientnet-lite0", len(labels), pretrained=False, in_channels=1)
manifest = default_manifest(
    name="smoke-test", architecture="efficientnet-lite0", labels=labels, channels=1
)
save_model_file(sys.argv[1], net, manifest)
from training.cli import main  # store the ONNX graphs: the CPU flavour can't make them

sys.exit(main(["export-onnx", "--model", sys.argv[1], "--embed", "--force"]))
EOF
  MODEL_ARGS=(--model "$tmp/model/smoke-test.safetensors")
  expect_nodule=0
  echo "installer-test: resources/models/ is empty: a random-weight stand-in model is used"
fi

# ---------------------------------------------------------------- checks
step "--version"
out=$(run "$app/radassist" --version) || fail "radassist --version exited $?"
[ "$out" = "radassist $version" ] || fail "radassist --version printed '$out', not 'radassist $version'"
if [ "$expected_flavour" = full ]; then
  out=$(run "$app/radassist-train" --version) || fail "radassist-train --version exited $?"
  [ "$out" = "radassist-train $version" ] || fail "radassist-train --version printed '$out'"
  ok "--version: radassist $version, radassist-train $version"
else
  ok "--version: radassist $version"
fi

step "inspect the bundled sample studies"
run "$app/radassist" inspect "$sample/chest_xr" "$sample/ct_phantom" > "$tmp/out/inspect.txt" 2>&1 \
  || { cat "$tmp/out/inspect.txt"; fail "inspect of the sample studies exited non-zero"; }
grep -q "0 problem file(s)" "$tmp/out/inspect.txt" || { cat "$tmp/out/inspect.txt"; fail "inspect reported problem files"; }
ok "inspect: sample studies ($(tail -1 "$tmp/out/inspect.txt"))"

step "inspect compressed files (JPEG 2000, JPEG-LS, RLE, JPEG extended, deflate)"
run "$app/radassist" inspect "$tmp/in/compressed" > "$tmp/out/compressed.txt" 2>&1 \
  || { cat "$tmp/out/compressed.txt"; fail "inspect of the compressed files exited non-zero"; }
grep -q "${#COMPRESSED[@]} of ${#COMPRESSED[@]} image(s) decoded; 0 problem file(s)" "$tmp/out/compressed.txt" \
  || { cat "$tmp/out/compressed.txt"; fail "not every compressed file decoded in the bundle"; }
ok "inspect: ${#COMPRESSED[@]} compressed files decoded"

step "info (first start: device and measured time per image)"
run "$app/radassist" info --json ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} > "$tmp/out/info1.json" 2> "$tmp/out/info1.err" \
  || { cat "$tmp/out/info1.err"; fail "radassist info exited non-zero"; }
run "$app/radassist" info ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} > "$tmp/out/info2.txt" 2>&1 \
  || { cat "$tmp/out/info2.txt"; fail "radassist info (second run) exited non-zero"; }
"$PYTHON" - "$tmp/out/info1.json" "$tmp/out/info2.txt" "$home" "$expected_flavour" <<'EOF' || fail "radassist info reported the wrong thing"
import json, sys
from pathlib import Path
report = json.loads(Path(sys.argv[1]).read_text())
text = Path(sys.argv[2]).read_text()
assert report["device"]["chosen"] == "cpu", report["device"]
assert report["bundle"] and report["bundle"]["flavour"] == sys.argv[4], report["bundle"]
est = report["estimate"]
assert est and est["ms_per_image"] > 0 and not est["from_cache"], est
assert report["data_dir"].startswith(sys.argv[3]), report["data_dir"]
assert "cached from first start" in text and "device:      CPU" in text, text
print(f"installer-test: info: {est['text']}")
EOF
ok "info: CPU, time per image measured once, then cached"

step "predict on the sample radiograph"
run "$app/radassist" predict "$sample/chest_xr" --out "$tmp/out/predict" --quiet ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} \
  > "$tmp/out/predict.txt" 2>&1 || { cat "$tmp/out/predict.txt"; fail "predict exited non-zero"; }
"$PYTHON" - "$tmp/out/predict" "$expect_nodule" <<'EOF' || { cat "$tmp/out/predict.txt"; fail "predict's findings are wrong"; }
import json, sys
from pathlib import Path
from PIL import Image
found = sorted(Path(sys.argv[1]).glob("*/findings.json"))
assert len(found) == 1, f"expected one findings.json, found {found}"
doc = json.loads(found[0].read_text())
assert doc["schema"] == "radassist-findings" and doc["device"] == "cpu", doc.get("device")
by_label = {f["label"]: f for f in doc["findings"]}
if sys.argv[2] == "1":
    nodule = by_label["nodule"]
    assert nodule["positive"], f"the sample's nodule was missed: {nodule}"
    # a positive finding comes with its heatmap (a grey PNG the size of the image) and the
    # series' overlay PNG
    heatmap = nodule["heatmap"]
    with Image.open(found[0].parent / heatmap["file"]) as img:
        img.load()
        assert img.size == (heatmap["columns"], heatmap["rows"]), (img.size, heatmap)
        lo, hi = img.convert("L").getextrema()
        assert hi - lo > 50, f"flat heatmap (grey levels {lo}..{hi})"
    with Image.open(found[0].parent / "overlay.png") as img:
        img.load()
    print(f"installer-test: predict: heatmap {heatmap['file']} ({nodule['heatmap_method']}), overlay.png")
summary = ", ".join(f"{k} {v['probability']:.2f}" for k, v in by_label.items())
print(f"installer-test: predict: {summary} (backend {doc.get('backend')})")
EOF
if [ "$expect_nodule" = 1 ]; then ok "predict: findings.json written, nodule positive, with heatmap and overlay"
else ok "predict: findings.json written (stand-in model: findings not checked)"; fi

step "predict --device cuda on a machine without a usable GPU"
run "$app/radassist" predict "$sample/chest_xr" --out "$tmp/out/predict-gpu" --quiet --device cuda \
  ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} > "$tmp/out/predict-cuda.txt" 2> "$tmp/out/predict-cuda.err" \
  || { cat "$tmp/out/predict-cuda.err"; fail "predict --device cuda exited non-zero"; }
cuda_lines=$(grep -ci cuda "$tmp/out/predict-cuda.err" || true)
[ "$cuda_lines" = 1 ] && grep -i cuda "$tmp/out/predict-cuda.err" | grep -qi "cpu" \
  || { cat "$tmp/out/predict-cuda.err"; fail "predict --device cuda did not say in one line that it runs on the CPU"; }
grep -q '"device": "cpu"' "$tmp/out/predict-gpu"/*/findings.json || fail "predict --device cuda did not run on the CPU"
ok "predict --device cuda: $(grep -i cuda "$tmp/out/predict-cuda.err")"

if [ "$expect_nodule" = 1 ] && [ -f "$app/_internal/resources/models/radassist-ct-nodule-lite0.safetensors" ]; then
  step "predict on the CT sample: the CT nodule model chosen for it, a lesion and a SEG"
  run "$app/radassist" predict "$sample/ct_phantom" --out "$tmp/out/predict-ct" --quiet \
    > "$tmp/out/predict-ct.txt" 2>&1 || { cat "$tmp/out/predict-ct.txt"; fail "predict on the CT exited non-zero"; }
  "$PYTHON" - "$tmp/out/predict-ct" "$tmp/out/predict-ct.txt" <<'EOF' || { cat "$tmp/out/predict-ct.txt"; fail "the CT sample's segmentation is wrong"; }
import json, sys
from pathlib import Path
import highdicom as hd
found = sorted(Path(sys.argv[1]).glob("*/findings.json"))
assert len(found) == 1, f"expected one findings.json, found {found}"
doc = json.loads(found[0].read_text())
assert doc["model"]["name"] == "radassist-ct-nodule-lite0", doc["model"]
lesions = doc["lesions"]["lesions"]
assert len(lesions) == 1 and 16 <= lesions[0]["first_slice"] <= lesions[0]["last_slice"] <= 19, lesions
volume = lesions[0]["volume_mm3"]
assert 0.75 * 7238 < volume < 1.25 * 7238, volume  # the sample's 12 mm sphere
seg = hd.seg.segread(found[0].parent / "segmentation.dcm")
assert len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == 40
assert "radassist-ct-nodule-lite0" in Path(sys.argv[2]).read_text()
first, last = lesions[0]["first_instance_number"], lesions[0]["last_instance_number"]
assert (first, last) == (lesions[0]["first_slice"] + 1, lesions[0]["last_slice"] + 1), lesions
print(f"installer-test: predict CT: 1 lesion, {volume:.0f} mm³, Im {first}–{last}, SEG over 40 images")
EOF
  ok "predict CT: the CT model chosen, the nodule found and measured, a SEG referencing every image"
fi

step "GUI screenshot, offscreen, with the model run"
run_env QT_QPA_PLATFORM=offscreen -- "$app/radassist" "$sample/chest_xr" --screenshot "$tmp/out/shot.png" \
  --run-inference ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} > "$tmp/out/shot.txt" 2>&1 \
  || { cat "$tmp/out/shot.txt"; fail "the GUI screenshot exited non-zero"; }
"$PYTHON" - "$tmp/out/shot.png" <<'EOF' || fail "the screenshot is not a proper PNG"
import sys
from PIL import Image
img = Image.open(sys.argv[1])
img.load()
assert img.size[0] >= 320 and img.size[1] >= 240, img.size
lo, hi = img.convert("L").getextrema()
assert hi - lo > 50, f"blank screenshot (grey levels {lo}..{hi})"
print(f"installer-test: screenshot {img.size[0]}x{img.size[1]}")
EOF
ok "GUI: screenshot rendered"

if command -v xvfb-run >/dev/null; then
  step "GUI screenshot under Xvfb (Qt's xcb platform), with the model run"
  run xvfb-run -a "$app/radassist" "$sample/chest_xr" --screenshot "$tmp/out/shot-x11.png" \
    --run-inference ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"} > "$tmp/out/shot-x11.txt" 2>&1 \
    || { cat "$tmp/out/shot-x11.txt"; fail "the GUI screenshot under Xvfb exited non-zero"; }
  "$PYTHON" -c "from PIL import Image; import sys; img = Image.open(sys.argv[1]); img.load(); lo, hi = img.convert('L').getextrema(); assert hi - lo > 50" \
    "$tmp/out/shot-x11.png" || fail "the screenshot under Xvfb is blank or not a PNG"
  ok "GUI: screenshot rendered under Xvfb"
else
  echo "installer-test: note: xvfb-run not installed: the X11 (xcb) screenshot is skipped"
fi

if [ "$expected_flavour" = full ]; then
step "radassist-train make-demo-data with 2 worker processes"
run "$app/radassist-train" make-demo-data "$tmp/out/demo" --n 24 --size 96 --workers 2 --quiet \
  > "$tmp/out/demo.txt" 2>&1 || { cat "$tmp/out/demo.txt"; fail "make-demo-data exited non-zero"; }
[ "$(ls "$tmp/out/demo" | grep -c .)" -gt 1 ] && [ -f "$tmp/out/demo/manifest.csv" ] \
  || fail "make-demo-data wrote no manifest"
ok "radassist-train: demo data written by worker processes"

step "radassist-train tune: one trial (Optuna, SQLite study), then a fit of the best"
run "$app/radassist-train" tune --data "$tmp/out/demo/manifest.csv" --out "$tmp/out/tune" \
  --budget 2 --trials 1 --epochs 1 --image-sizes 64 --set model.pretrained=false --quiet \
  > "$tmp/out/tune.txt" 2>&1 || { cat "$tmp/out/tune.txt"; fail "tune exited non-zero"; }
[ -f "$tmp/out/tune/tune.db" ] && [ -f "$tmp/out/tune/trials.csv" ] \
  && [ -f "$tmp/out/tune/best/model.safetensors" ] || { cat "$tmp/out/tune.txt"; fail "tune wrote no study, trials table or model"; }
ok "radassist-train: tune ran a trial and fitted the best config"
fi

step "desktop entry"
run "$app/install-desktop-entry.sh" > "$tmp/out/desktop.txt" 2>&1 || { cat "$tmp/out/desktop.txt"; fail "install-desktop-entry.sh failed"; }
entry="$home/.local/share/applications/radassist.desktop"
grep -qx "Exec=\"$app/radassist\" %F" "$entry" || fail "$entry does not start $app/radassist"
[ -f "$home/.local/share/icons/hicolor/256x256/apps/radassist.png" ] || fail "the 256 px icon was not installed"
if command -v desktop-file-validate >/dev/null; then desktop-file-validate "$entry" || fail "$entry is not valid"; fi
ok "desktop entry and icons installed for the user"

echo "installer-test: all $passed checks passed in $(( $(date +%s) - start )) s ($tarball)"
exit
}
