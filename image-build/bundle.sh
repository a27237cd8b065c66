#!/bin/bash
# A signed RAUC update bundle from the slot images of the last `make image` (same recipe, same
# build: the root fs and boot files that went into slot A of that image).
#
#   image-build/bundle.sh [OUT_DIR]        (`make bundle` runs it)
#
# Signing: keys.sh (production key from RAUC_KEY/RAUC_CERT/RAUC_KEYRING, else the build's
# development key). Writes OUT/edge-<version>-rpi-arm64.raucb and checks it against the
# keyring the image trusts. SLOT_ROOT / SLOT_BOOT / BUNDLE name other slot images and the
# output (tests, image-test's deliberately broken bundle); MKSQUASHFS_ARGS passes options to
# mksquashfs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=$(mkdir -p "${1:-$HERE/out}" && cd "${1:-$HERE/out}" && pwd)
PYTHON_HOST=${PYTHON_HOST:-$REPO/.venv/bin/python}
die() { echo "bundle: $*" >&2; exit 1; }
command -v rauc >/dev/null || die "rauc missing (apt-get install rauc squashfs-tools)"
command -v mksquashfs >/dev/null || die "mksquashfs missing (apt-get install squashfs-tools)"
. "$HERE/keys.sh"

SLOT_ROOT=${SLOT_ROOT:-$OUT/slot-root.ext4}
SLOT_BOOT=${SLOT_BOOT:-$OUT/slot-boot.vfat}
[ -s "$SLOT_ROOT" ] && [ -s "$SLOT_BOOT" ] || die "no slot images in $OUT: run \`make image\` first"
VERSION=$("$PYTHON_HOST" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$REPO/pyproject.toml")
SCHEMA=$(cd "$REPO" && "$PYTHON_HOST" -c 'from edge.store.schema import SCHEMA_VERSION; print(SCHEMA_VERSION)')
if [ -s "$OUT/slot-images.version" ]; then
    read -r _ GIT_REV EPOCH < "$OUT/slot-images.version"
else
    GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown) EPOCH=$(date +%s)
fi
BUNDLE=${BUNDLE:-$OUT/edge-$VERSION-rpi-arm64.raucb}

SRC=$(mktemp -d "$OUT/bundle-src.XXXXXX")
trap 'rm -rf "$SRC"' EXIT
# hard links where possible (same file system): no copy of the ~1.5 GB root image
ln "$SLOT_ROOT" "$SRC/root.ext4" 2>/dev/null || cp --sparse=always "$SLOT_ROOT" "$SRC/root.ext4"
ln "$SLOT_BOOT" "$SRC/boot.vfat" 2>/dev/null || cp --sparse=always "$SLOT_BOOT" "$SRC/boot.vfat"
install -m 0755 "$HERE/bundle/hook.sh" "$SRC/hook.sh"
printf 'version=%s\ngit=%s\nschema=%s\nbuilt=%s\n' "$VERSION" "$GIT_REV" "$SCHEMA" "$EPOCH" > "$SRC/edge-release"
cat > "$SRC/manifest.raucm" <<MF
[update]
compatible=edge-rpi-arm64
version=$VERSION+$GIT_REV
description=edge $VERSION ($GIT_REV), store schema $SCHEMA, $RAUC_KEY_KIND key
build=$EPOCH

[bundle]
format=verity

[hooks]
filename=hook.sh
hooks=install-check

[image.rootfs]
filename=root.ext4
hooks=post-install

[image.boot]
filename=boot.vfat
hooks=post-install
MF
rm -f "$BUNDLE"
t0=$(date +%s)
# MKSQUASHFS_ARGS: e.g. "-comp lz4" for a throwaway test bundle (faster, larger)
rauc bundle --cert="$RAUC_CERT" --key="$RAUC_KEY" --keyring="$RAUC_KEYRING" \
    ${MKSQUASHFS_ARGS:+--mksquashfs-args="$MKSQUASHFS_ARGS"} "$SRC" "$BUNDLE" >/dev/null
rauc info --keyring="$RAUC_KEYRING" "$BUNDLE" > "$BUNDLE.info" 2>&1 || { cat "$BUNDLE.info" >&2; die "bundle does not verify"; }
echo "bundle: $BUNDLE ($(( $(stat -c %s "$BUNDLE") / 1048576 )) MiB, $RAUC_KEY_KIND key, $(( $(date +%s) - t0 )) s)"
