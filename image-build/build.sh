#!/bin/bash
# Build the edge SD card image (Raspberry Pi 3/4, arm64) from Debian bookworm packages alone.
#
#   image-build/build.sh [OUT_DIR]        (root; `make image` runs it)
#
# Steps: aarch64 wheels of edge and its dependencies (pip download) -> root file system with
# mmdebstrap under qemu-user (binfmt_misc) -> edge venv, config, units -> ext4 and FAT
# partition images made from directories (mkfs.ext4 -d, mkfs.vfat + mcopy: no loop devices,
# no mounts) -> MBR written by sfdisk into the image file -> partitions copied in with dd.
# Outputs in OUT_DIR (default image-build/out): edge-<version>-rpi-arm64.img, .img.zst,
# .manifest (Debian packages and Python wheels in the image) and build.log timings.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=$(mkdir -p "${1:-$HERE/out}" && cd "${1:-$HERE/out}" && pwd)
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PYTHON_HOST=${PYTHON_HOST:-$REPO/.venv/bin/python}
BOOT_MB=256
COMPRESS=${COMPRESS:-1}
# Fixed timestamps: the commit's time, so two builds of one commit differ as little as
# Debian's packages allow.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 1700000000)}
export SOURCE_DATE_EPOCH
VERSION=$("$PYTHON_HOST" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$REPO/pyproject.toml")
NAME=edge-$VERSION-rpi-arm64
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo +changes)
ROOT=$OUT/rootfs
WHEELS=$OUT/wheels
T0=$(date +%s)
# RAUC signing: the production key/cert/keyring from RAUC_KEY/RAUC_CERT/RAUC_KEYRING, else a
# development key made once in $OUT/keys (keys.sh); the image trusts that keyring.
. "$HERE/keys.sh"

step() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
die() { echo "image-build: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (chroot, binfmt_misc): sudo $0"
for tool in mmdebstrap mkfs.ext4 mkfs.vfat mcopy sfdisk zstd systemctl systemd-sysusers; do
    command -v "$tool" >/dev/null || die "$tool missing: run \`make image\` (it installs the build tools)"
done

# ---- qemu-user for arm64 binaries in the chroot --------------------------------------------
if [ "$(dpkg --print-architecture)" != arm64 ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
    grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
        || die "qemu-aarch64 binfmt is registered without the F flag (install qemu-user-static)"
fi

# aarch64 / CPython 3.11 wheels of edge's dependencies (edge's own wheel already in $WHEELS)
download_wheels() {
    "$PYTHON_HOST" -m pip download -q --disable-pip-version-check -d "$WHEELS" \
        --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
        --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --platform manylinux_2_34_aarch64 \
        --platform manylinux_2_36_aarch64 --platform any \
        -c "$REPO/constraints.txt" -r "$HERE/requirements-image.txt" "$(ls "$WHEELS"/edge-*.whl)" 2>&1 | grep -v '^WARNING: Location' || true
    ls "$WHEELS"/pydantic_core-*aarch64*.whl >/dev/null || die "no aarch64 wheels downloaded"
    cp "$HERE/requirements-image.txt" "$WHEELS/"
}

# REUSE_ROOTFS=1: keep a finished $ROOT from an earlier run and only redo the steps after
# mmdebstrap (for work on the partition/image steps; a real build starts from scratch).
if [ "${REUSE_ROOTFS:-0}" = 1 ] && [ -x "$ROOT/opt/edge/venv/bin/edge" ]; then
    step "reusing $ROOT"
    if [ -z "$(ls -A "$ROOT/boot/firmware")" ] && [ -d "$OUT/bootfs" ]; then
        cp -a "$OUT/bootfs/." "$ROOT/boot/firmware/"
    fi
    # the overlay, edge itself (a fresh wheel of the work tree, and any new dependency) and the
    # update settings again
    cp -r --no-preserve=ownership "$HERE/overlay/." "$ROOT/"
    install -D -m 0644 -t "$ROOT/usr/local/lib/systemd/system" "$REPO"/systemd/*.service
    rm -rf "$WHEELS/edge-"*.whl
    "$PYTHON_HOST" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$WHEELS" "$REPO"
    download_wheels
    rm -rf "$ROOT/tmp/edge-wheels" && cp -r "$WHEELS" "$ROOT/tmp/edge-wheels"
    chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /opt/edge/venv/bin/python \
        "/$(cd "$ROOT" && ls usr/share/python-wheels/pip-*.whl | head -1)/pip" install -q --no-index \
        --find-links /tmp/edge-wheels --disable-pip-version-check -r /tmp/edge-wheels/requirements-image.txt \
        /tmp/edge-wheels/$(cd "$WHEELS" && ls edge-*.whl)
    chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /opt/edge/venv/bin/python \
        "/$(cd "$ROOT" && ls usr/share/python-wheels/pip-*.whl | head -1)/pip" install -q --no-index \
        --find-links /tmp/edge-wheels --force-reinstall --no-deps --disable-pip-version-check \
        /tmp/edge-wheels/$(cd "$WHEELS" && ls edge-*.whl)
    rm -rf "$ROOT/tmp/edge-wheels"
    "$HERE/hooks/customize-updates.sh" "$ROOT" "$REPO" "$RAUC_KEYRING"
else
# ---- the application: edge's wheel + aarch64 wheels of its dependencies ---------------------
step "checking the appliance config"
"$REPO/.venv/bin/edge" check-config "$HERE/edge.toml"
step "wheels for aarch64 / CPython 3.11 -> $WHEELS"
rm -rf "$WHEELS" && mkdir -p "$WHEELS"
"$PYTHON_HOST" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$WHEELS" "$REPO"
download_wheels

# ---- root file system -----------------------------------------------------------------------
PACKAGES=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//g' "$HERE/packages.txt" | xargs | tr ' ' ',')
step "mmdebstrap $SUITE arm64 -> $ROOT"
rm -rf "$ROOT"
mmdebstrap --arch=arm64 --variant=apt --mode=root --format=directory \
    --components="main contrib non-free-firmware" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='force-confold' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --hook-directory=/usr/share/mmdebstrap/hooks/eatmydata \
    --essential-hook="\"$HERE/hooks/essential.sh\" \"\$1\"" \
    --customize-hook="\"$HERE/hooks/customize.sh\" \"\$1\" \"$REPO\" \"$WHEELS\"" \
    --customize-hook="\"$HERE/hooks/customize-updates.sh\" \"\$1\" \"$REPO\" \"$RAUC_KEYRING\"" \
    --include="$PACKAGES" \
    "$SUITE" "$ROOT" \
    "deb $MIRROR $SUITE main contrib non-free-firmware" \
    "deb $MIRROR $SUITE-updates main contrib non-free-firmware" \
    "deb $SECURITY_MIRROR $SUITE-security main contrib non-free-firmware"

fi

# mmdebstrap empties /etc/machine-id and puts back resolv.conf/hostname after the hooks.
step "final fixes: machine-id, hostname, resolv.conf"
echo uninitialized > "$ROOT/etc/machine-id"
echo edge > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tedge\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' > "$ROOT/etc/hosts"
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
rm -f "$ROOT"/etc/ssh/ssh_host_*
# Every device makes its own credentials on first start: none may ship in the image.
[ -z "$(ls -A "$ROOT/var/lib/edge")" ] || die "/var/lib/edge in the image is not empty: $(ls -A "$ROOT/var/lib/edge")"

grep -q 'root=LABEL=RASPIROOT' "$ROOT/boot/firmware/cmdline.txt" \
    || die "cmdline.txt does not boot LABEL=RASPIROOT: $(cat "$ROOT/boot/firmware/cmdline.txt")"
KERNEL=$(sed -n 's/^kernel=//p' "$ROOT/boot/firmware/config.txt")
INITRD=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$ROOT/boot/firmware/config.txt")
for f in "$KERNEL" "$INITRD" config.txt cmdline.txt start4.elf bootcode.bin bcm2711-rpi-4-b.dtb bcm2837-rpi-3-b.dtb; do
    [ -n "$f" ] && [ -s "$ROOT/boot/firmware/$f" ] || die "boot partition lacks ${f:-the kernel/initramfs named in config.txt}"
done

# ---- manifest -------------------------------------------------------------------------------
step "manifest"
{
    echo "# $NAME from commit $GIT_REV, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH ($(date -u -d "@$SOURCE_DATE_EPOCH" +%FT%TZ))"
    echo "# Debian packages (name version arch)"
    dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f '${Package} ${Version} ${Architecture}\n' | sort
    echo "# Python packages in /opt/edge/venv (name version)"
    for d in "$ROOT"/opt/edge/venv/lib/python3*/site-packages/*.dist-info; do
        sed -n -e 's/^Name: //p' -e 's/^Version: //p' "$d/METADATA" | head -2 | xargs
    done | sort -f
} > "$OUT/$NAME.manifest"

# ---- partitions and the image: A/B slots + data partition (ab-image.sh) ----------------------
step "A/B image: autoboot, boot slot A, root slot A, data"
IMG=$OUT/$NAME.img
"$HERE/ab-image.sh" "$ROOT" "$OUT" "$NAME"
echo "$VERSION $GIT_REV $SOURCE_DATE_EPOCH" > "$OUT/slot-images.version"

if [ "$COMPRESS" = 1 ]; then
    step "zstd"
    zstd -q -f -T0 -10 "$IMG" -o "$IMG.zst"
fi
( cd "$OUT" && sha256sum "$NAME.img" $( [ "$COMPRESS" = 1 ] && echo "$NAME.img.zst") > "$NAME.sha256" )
step "done: $IMG ($(( $(stat -c %s "$IMG") / 1048576 )) MiB; slot images for \`make bundle\` kept in $OUT)"
step "manifest: $(sed -n '/^# Debian/,/^# Python/p' "$OUT/$NAME.manifest" | grep -vc '^#') Debian packages, $(sed -n '/^# Python/,$p' "$OUT/$NAME.manifest" | grep -vc '^#') Python packages"
