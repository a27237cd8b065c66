#!/bin/bash
# The A/B card image from a finished root directory (build.sh runs this after mmdebstrap).
#
#   image-build/ab-image.sh ROOT OUT NAME
#
# MBR, disk id 0x45444745 (partitions are named by PARTUUID 45444745-0N):
#   p1  RASPIFIRM  FAT16   16 MiB  autoboot.txt (the firmware's A/B switch), authorized_keys
#   p2  EDGEBOOT   FAT32  256 MiB  boot slot A: firmware, kernel, initrd, config.txt, cmdline.txt
#   p3             FAT32  256 MiB  boot slot B (empty until the first update)
#   p4  extended
#   p5  RASPIROOT  ext4   ROOT_SLOT_MB   root slot A
#   p6             ext4   ROOT_SLOT_MB   root slot B (empty until the first update)
#   p7  EDGEDATA   ext4   grows to the end of the card at first boot: /data (edge's config and
#                         data, the broker's queue, RAUC's status): kept across updates
# The slot images are kept in OUT for `make bundle` (slot-boot.vfat, slot-root.ext4): an
# update bundle carries exactly what went into slot A. No loop devices, no mounts.
set -euo pipefail
ROOT=$1 OUT=$2 NAME=$3
DISK_ID=45444745
AUTOBOOT_MB=16
BOOT_MB=256
ROOT_SLOT_MB=${ROOT_SLOT_MB:-2048}   # fixed for the life of a card: every later bundle must fit
DATA_MB=128
GAP=2048                              # 1 MiB before each logical partition (its EBR), alignment
die() { echo "ab-image: $*" >&2; exit 1; }

# ---- the data partition: what updates keep ---------------------------------------------------
uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "$ROOT/etc/passwd"; }
gid_of() { awk -F: -v g="$1" '$1 == g { print $3 }' "$ROOT/etc/group"; }
DATA=$OUT/datafs
rm -rf "$DATA" && mkdir -p "$DATA/edge/etc" "$DATA/edge/lib" "$DATA/mosquitto" "$DATA/rauc"
cp -a "$ROOT/etc/edge/." "$DATA/edge/etc/"
chown root:"$(gid_of edge)" "$DATA/edge/etc" && chmod 0770 "$DATA/edge/etc"
chown "$(uid_of edge):$(gid_of edge)" "$DATA/edge/lib" && chmod 0700 "$DATA/edge/lib"
chown "$(uid_of mosquitto):$(gid_of mosquitto)" "$DATA/mosquitto" && chmod 0700 "$DATA/mosquitto"
[ -z "$(ls -A "$ROOT/var/lib/edge")" ] || die "/var/lib/edge in the image is not empty"
mkdir -p "$ROOT/data"

# ---- boot slot A and the firmware's switch ---------------------------------------------------
# $OUT/bootfs: the boot files as Debian made them (REUSE_ROOTFS=1 puts them back); bootfs-A: slot A's
rm -rf "$OUT/bootfs" && mkdir "$OUT/bootfs"
cp -a "$ROOT/boot/firmware/." "$OUT/bootfs/"
find "$ROOT/boot/firmware" -mindepth 1 -delete
BOOTFS=$OUT/bootfs-A
rm -rf "$BOOTFS" && cp -a "$OUT/bootfs" "$BOOTFS"
# slot A's kernel command line: its root by PARTUUID, its name for RAUC, root mount options
# (the root fs has no fstab line), reboot 10 s after a panic (the firmware then boots the
# default slot: a trial that panics is rolled back)
grep -q 'root=LABEL=RASPIROOT' "$BOOTFS/cmdline.txt" || die "cmdline.txt: no root=LABEL=RASPIROOT: $(cat "$BOOTFS/cmdline.txt")"
sed -i "s#root=LABEL=RASPIROOT#root=PARTUUID=$DISK_ID-05 rootfstype=ext4 rootflags=noatime,commit=30,errors=remount-ro rauc.slot=A panic=10#" "$BOOTFS/cmdline.txt"
rm -f "$OUT/slot-boot.vfat"
mkfs.vfat -C -F 32 -n EDGEBOOT "$OUT/slot-boot.vfat" $((BOOT_MB * 1024)) >/dev/null
mcopy -s -p -m -i "$OUT/slot-boot.vfat" "$BOOTFS"/* ::/

AUTOFS=$OUT/autobootfs
rm -rf "$AUTOFS" && mkdir "$AUTOFS"
printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n' > "$AUTOFS/autoboot.txt"
cat > "$AUTOFS/README.txt" <<'TXT'
edge appliance card. autoboot.txt tells the Raspberry Pi firmware which slot to boot (A = partition 2,
B = partition 3); updates change it: do not edit it by hand. Put an authorized_keys file here
to turn SSH on (see the image's README).
TXT
rm -f "$OUT/autoboot.vfat"
mkfs.vfat -C -F 16 -n RASPIFIRM -i "$DISK_ID" "$OUT/autoboot.vfat" $((AUTOBOOT_MB * 1024)) >/dev/null
mcopy -p -m -i "$OUT/autoboot.vfat" "$AUTOFS"/* ::/

# ---- root slot A and the data partition ------------------------------------------------------
used_mb=$(du -sm --apparent-size "$ROOT" | cut -f1)
ROOT_FS_MB=$(( used_mb * 5 / 4 + 256 ))
[ "$ROOT_FS_MB" -le $(( ROOT_SLOT_MB * 9 / 10 )) ] \
    || die "root fs ${ROOT_FS_MB} MiB does not fit a ${ROOT_SLOT_MB} MiB slot with 10% to spare"
rm -f "$OUT/slot-root.ext4" "$OUT/data.ext4"
mkfs.ext4 -q -F -L RASPIROOT -m 1 -E lazy_itable_init=0 -d "$ROOT" "$OUT/slot-root.ext4" "${ROOT_FS_MB}M"
mkfs.ext4 -q -F -L EDGEDATA -m 1 -E lazy_itable_init=0 -d "$DATA" "$OUT/data.ext4" "${DATA_MB}M"

# ---- the image -------------------------------------------------------------------------------
IMG=$OUT/$NAME.img
MB=2048  # sectors
P1=8192
P2=$(( P1 + AUTOBOOT_MB * MB ))
P3=$(( P2 + BOOT_MB * MB ))
P4=$(( P3 + BOOT_MB * MB ))
P5=$(( P4 + GAP ))
P6=$(( P5 + ROOT_SLOT_MB * MB + GAP ))
P7=$(( P6 + ROOT_SLOT_MB * MB + GAP ))
END=$(( P7 + DATA_MB * MB ))
rm -f "$IMG"
truncate -s $(( END * 512 )) "$IMG"
sfdisk --quiet --no-reread --no-tell-kernel "$IMG" <<EOF2
label: dos
label-id: 0x$DISK_ID
unit: sectors

start=$P1, size=$(( AUTOBOOT_MB * MB )), type=e, bootable
start=$P2, size=$(( BOOT_MB * MB )), type=c
start=$P3, size=$(( BOOT_MB * MB )), type=c
start=$P4, size=$(( END - P4 )), type=5
start=$P5, size=$(( ROOT_SLOT_MB * MB )), type=83
start=$P6, size=$(( ROOT_SLOT_MB * MB )), type=83
start=$P7, size=$(( DATA_MB * MB )), type=83
EOF2
dd if="$OUT/autoboot.vfat" of="$IMG" bs=512 seek=$P1 conv=notrunc,sparse status=none
dd if="$OUT/slot-boot.vfat" of="$IMG" bs=512 seek=$P2 conv=notrunc,sparse status=none
dd if="$OUT/slot-root.ext4" of="$IMG" bs=512 seek=$P5 conv=notrunc,sparse status=none
dd if="$OUT/data.ext4" of="$IMG" bs=512 seek=$P7 conv=notrunc,sparse status=none
rm -f "$OUT/autoboot.vfat" "$OUT/data.ext4"
echo "ab-image: $IMG: root fs ${ROOT_FS_MB} MiB in ${ROOT_SLOT_MB} MiB slots, data ${DATA_MB} MiB (grows at first boot)"
