#!/usr/bin/env bash
# Build RadAssist.app on macOS. UNTESTED: no Mac was available when this was written (see
# installer/README.md). Run from the repository root on the Mac that builds the release:
#
#   python3.11 -m venv .venv && .venv/bin/pip install -e '.[installer]'
#   installer/macos/build_app.sh
#
# It makes the icon set, runs PyInstaller on installer/macos/radassist-macos.spec (the Linux
# spec's Analysis plus a BUNDLE step), then, when SIGN_IDENTITY is set, signs with the hardened
# runtime and, when NOTARY_PROFILE is set, notarizes and staples. See the README for the steps.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
[ "$(uname -s)" = Darwin ] || { echo "build_app.sh: run this on macOS" >&2; exit 1; }

# resources/icons/radassist-*.png -> build/radassist.icns
iconset=build/radassist.iconset
rm -rf "$iconset" && mkdir -p "$iconset"
for s in 16 32 128 256 512; do
  cp "resources/icons/radassist-$s.png" "$iconset/icon_${s}x${s}.png"
  d=$((s * 2))
  if [ -f "resources/icons/radassist-$d.png" ]; then
    cp "resources/icons/radassist-$d.png" "$iconset/icon_${s}x${s}@2x.png"
  fi
done
iconutil -c icns "$iconset" -o build/radassist.icns

"$PYTHON" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
  installer/macos/radassist-macos.spec
app=dist/RadAssist.app

if [ -n "${SIGN_IDENTITY:-}" ]; then
  # Sign inside-out: every Mach-O first, then the app, hardened runtime, with the entitlements
  # that PyTorch's and Qt's libraries need under it.
  find "$app/Contents" -type f \( -name '*.dylib' -o -name '*.so' -o -perm -u+x \) -print0 |
    xargs -0 codesign --force --timestamp --options runtime \
      --entitlements installer/macos/entitlements.plist --sign "$SIGN_IDENTITY"
  codesign --force --timestamp --options runtime \
    --entitlements installer/macos/entitlements.plist --sign "$SIGN_IDENTITY" "$app"
  codesign --verify --deep --strict --verbose=2 "$app"
fi
if [ -n "${NOTARY_PROFILE:-}" ]; then
  ditto -c -k --keepParent "$app" dist/RadAssist.zip
  xcrun notarytool submit dist/RadAssist.zip --keychain-profile "$NOTARY_PROFILE" --wait
  xcrun stapler staple "$app"
  spctl --assess --type execute --verbose "$app"
fi
echo "build_app.sh: $app"
