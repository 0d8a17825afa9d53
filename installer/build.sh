#!/usr/bin/env bash
# Build the RadAssist desktop bundle (PyInstaller, one folder) into dist/radassist/, check it,
# add the Linux desktop entry and icons, and pack dist/radassist-<version>-linux-x86_64.tar.gz.
#
#   installer/build.sh                 the full bundle (CUDA build of PyTorch, as installed;
#                                      radassist and radassist-train)
#   CPU_ONLY=1 installer/build.sh      the CPU flavour: no PyTorch, MONAI or training stack,
#                                      radassist only, on ONNX Runtime (..-linux-x86_64-cpu.tar.gz)
#
# Both flavours ship each model of resources/models with its ONNX graphs stored in it (made
# here with `radassist-train export-onnx --embed`, into build/bundle-models/; same file name and
# tensor_sha256), so that no installation exports a graph at its first start, and the CPU
# flavour, which has no PyTorch to make one, can run the model at all.
#
# Environment: PYTHON (default .venv/bin/python, with `pip install -e '.[installer]'` done; the
# Makefile's `installer` target does that), KEEP_BUILD=1 keeps PyInstaller's work folder,
# NO_TAR=1 skips the tarball, GZIP_LEVEL (default 1) sets its compression, MIN_FREE_GB
# overrides the free-space check.
# Nothing is downloaded: PyInstaller's hooks come with pyinstaller-hooks-contrib from PyPI.
# The whole script is one block, read before it runs: editing it meanwhile can't derail it.
{
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT=$(pwd)
PYTHON=${PYTHON:-.venv/bin/python}
CPU_ONLY=${CPU_ONLY:-0}
[ "$CPU_ONLY" = 0 ] && CPU_ONLY=""
WORK=build/pyinstaller
MODELS=build/bundle-models
DIST=dist
start=$(date +%s)

log() { echo "installer: $*" >&2; }
die() { echo "installer: error: $*" >&2; exit 1; }

[ -x "$PYTHON" ] || die "$PYTHON not found (run \`make installer\`, which sets up .venv)"
"$PYTHON" -c "import PyInstaller" 2>/dev/null \
  || die "PyInstaller is not installed in $PYTHON's environment (pip install -e '.[installer]')"
version=$("$PYTHON" -c "from desktop_app import __version__; print(__version__)")
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) platform=linux-x86_64 ;;
  Linux-*) platform="linux-$(uname -m)" ;;
  *) die "this script builds the Linux bundle; see installer/README.md for Windows and macOS" ;;
esac
suffix=${CPU_ONLY:+-cpu}
tarball="$DIST/radassist-$version-$platform$suffix.tar.gz"

# A CUDA bundle is over 5 GB, its tarball about half that, plus PyInstaller's work folder.
min_free=${MIN_FREE_GB:-$([ -n "$CPU_ONLY" ] && echo 3 || echo 12)}
mkdir -p "$DIST"
free_gb=$(df -Pk "$DIST" | awk 'NR==2 {print int($4 / 1048576)}')
[ "$free_gb" -ge "$min_free" ] \
  || die "only ${free_gb} GB free on $(df -P "$DIST" | awk 'NR==2 {print $6}'); the build needs about ${min_free} GB (MIN_FREE_GB overrides)"

log "building radassist $version ($platform${CPU_ONLY:+, CPU only}) with $("$PYTHON" -m PyInstaller --version 2>/dev/null | tail -1)"
rm -rf "$DIST/radassist" "$WORK" "$tarball" "$MODELS"

# Every bundled model (the chest classifier and the CT nodule segmentation model), each with its
# forward and LayerCAM graphs stored in it (a segmentation model: its forward graph only; checked
# against PyTorch by export-onnx; the build venv has the training tools).
t0=$(date +%s)
mkdir -p "$MODELS"
for model in resources/models/*.safetensors; do
  [ -f "$model" ] || continue
  "$PYTHON" -m training.cli export-onnx --model "$model" --embed --out "$MODELS/$(basename "$model")" \
    || die "could not store the ONNX graphs in a copy of $model"
done
t_models=$(( $(date +%s) - t0 ))

t0=$(date +%s)
RADASSIST_CPU_ONLY=${CPU_ONLY:-0} RADASSIST_BUNDLE_MODELS="$REPO_ROOT/$MODELS" "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
  --workpath "$WORK" --distpath "$DIST" installer/radassist.spec
t_pyinstaller=$(( $(date +%s) - t0 ))
[ -n "${KEEP_BUILD:-}" ] || rm -rf "$WORK"

# The Linux desktop entry (Exec filled in by install-desktop-entry.sh) and the icons, laid out
# as under /usr/share so the script can copy them as they are.
bundle="$DIST/radassist"
mkdir -p "$bundle/share/applications"
cp installer/radassist.desktop "$bundle/share/applications/radassist.desktop"
for png in resources/icons/radassist-*.png; do
  n=${png##*-}; n=${n%.png}
  mkdir -p "$bundle/share/icons/hicolor/${n}x${n}/apps"
  cp "$png" "$bundle/share/icons/hicolor/${n}x${n}/apps/radassist.png"
done
mkdir -p "$bundle/share/icons/hicolor/scalable/apps"
cp resources/icons/radassist.svg "$bundle/share/icons/hicolor/scalable/apps/radassist.svg"
install -m 755 installer/linux/install-desktop-entry.sh "$bundle/install-desktop-entry.sh"

"$PYTHON" installer/check_bundle.py "$bundle" ${CPU_ONLY:+--cpu-only}

if [ -z "${NO_TAR:-}" ]; then
  t0=$(date +%s)
  # gzip -1 by default: on libtorch_cpu.so, -6 gives a 13% smaller file in 3.7 times the time.
  tar -C "$DIST" -cf - radassist | gzip "-${GZIP_LEVEL:-1}" > "$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
  log "packed $tarball ($(du -h "$tarball" | cut -f1)) in $(( $(date +%s) - t0 )) s"
fi
log "done in $(( $(date +%s) - start )) s (graphs ${t_models} s, PyInstaller ${t_pyinstaller} s): $bundle"
exit
}
