#!/bin/sh
# Put RadAssist in the desktop's application menu, pointing at this folder.
#   ./install-desktop-entry.sh            for the current user (~/.local/share)
#   sudo ./install-desktop-entry.sh --system   for every user (/usr/local/share)
#   ./install-desktop-entry.sh --uninstall [--system]
# Nothing else is installed: RadAssist runs from this folder as it is.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
scope=user
action=install
for arg in "$@"; do
  case "$arg" in
    --system) scope=system ;;
    --uninstall) action=uninstall ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install-desktop-entry.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$scope" = system ]; then
  share=/usr/local/share
else
  share=${XDG_DATA_HOME:-$HOME/.local/share}
fi
apps=$share/applications
icons=$share/icons/hicolor

if [ "$action" = uninstall ]; then
  rm -f "$apps/radassist.desktop"
  find "$icons" -path '*/apps/radassist.*' -type f -exec rm -f {} + 2>/dev/null || true
  echo "removed RadAssist's menu entry from $share"
  exit 0
fi

case "$here" in
  *'#'*|*'\'*|*'&'*|*'"'*|*'`'*|*'$'*)
    echo "install-desktop-entry.sh: move RadAssist to a folder whose path has none of # \\ & \" \` \$ ($here)" >&2
    exit 1 ;;
esac
[ -x "$here/radassist" ] || { echo "install-desktop-entry.sh: $here/radassist is missing" >&2; exit 1; }

mkdir -p "$apps"
sed "s#@BUNDLE_DIR@#$here#g" "$here/share/applications/radassist.desktop" > "$apps/radassist.desktop.tmp"
chmod 644 "$apps/radassist.desktop.tmp"
mv "$apps/radassist.desktop.tmp" "$apps/radassist.desktop"
(cd "$here/share/icons/hicolor" && find . -type f -name 'radassist.*') | while read -r icon; do
  mkdir -p "$icons/$(dirname "$icon")"
  cp "$here/share/icons/hicolor/$icon" "$icons/$icon"
done
if command -v update-desktop-database >/dev/null 2>&1; then update-desktop-database "$apps" || true; fi
if command -v gtk-update-icon-cache >/dev/null 2>&1; then gtk-update-icon-cache -q -t "$icons" || true; fi
echo "RadAssist is in the application menu ($apps/radassist.desktop -> $here/radassist)"
