#!/bin/sh
# RAUC bundle hooks of the edge update (run by RAUC as root on the device, from the bundle).
#   install-check       before anything is written: the bundle is for this device, and its edge
#                       knows the schema of this device's database (no silent downgrade)
#   slot-post-install   after a slot was written: the boot slot gets its own root= and
#                       rauc.slot= on the kernel command line; the root slot gets this
#                       device's identity (machine id, host name, SSH host keys, Wi-Fi and
#                       network settings made on the device)
# EDGE_HOOK_ROOT (tests): the running system's root, default /.
set -eu
HOST=${EDGE_HOOK_ROOT:-}
DISK_ID=45444745

reject() { echo "$*" >&2; exit 10; }

db_schema() {
    db=$HOST/var/lib/edge/edge.db
    [ -s "$db" ] || { echo 0; return; }
    python3 - "$db" <<'PY'
import sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(conn.execute("PRAGMA user_version").fetchone()[0])
PY
}

case ${1:-} in
install-check)
    [ "${RAUC_MF_COMPATIBLE:-}" = "${RAUC_SYSTEM_COMPATIBLE:-}" ] \
        || reject "bundle is for '${RAUC_MF_COMPATIBLE:-?}', this device is '${RAUC_SYSTEM_COMPATIBLE:-?}'"
    # RAUC 1.8 runs this from the mounted bundle without telling where that is: beside us
    release=$(dirname "$0")/edge-release
    knows=$(sed -n 's/^schema=//p' "$release" 2>/dev/null || true)
    [ -n "$knows" ] || reject "bundle has no edge-release file with schema=: not an edge bundle"
    have=$(db_schema) || reject "cannot read the schema version of $HOST/var/lib/edge/edge.db"
    if [ "$have" -gt "$knows" ]; then
        reject "refusing the downgrade: this device's database is at schema version $have, and edge $(sed -n 's/^version=//p' "$release") in this bundle knows only up to $knows (it would not start). Install a bundle of the same or a newer edge."
    fi
    ;;
slot-post-install)
    # RAUC mounts the written slot for a post-install hook; mount it ourselves if it did not
    mnt=${RAUC_SLOT_MOUNT_POINT:-}
    if [ -z "$mnt" ]; then
        mnt=$(mktemp -d /run/edge-hook.XXXXXX)
        mount "${RAUC_SLOT_DEVICE:?no RAUC_SLOT_DEVICE}" "$mnt"
        trap 'umount "$mnt"; rmdir "$mnt"' EXIT
    elif [ -z "$HOST" ]; then
        mount -o remount,rw "$mnt" 2>/dev/null || true
    fi
    case ${RAUC_SLOT_NAME:-} in
    *.0) slot=A root=05 ;;
    *.1) slot=B root=06 ;;
    *) echo "hook: unknown slot ${RAUC_SLOT_NAME:-}" >&2; exit 1 ;;
    esac
    case ${RAUC_SLOT_CLASS:-} in
    boot)
        sed -i -e "s#root=PARTUUID=$DISK_ID-0[56]#root=PARTUUID=$DISK_ID-$root#" \
               -e "s#rauc\.slot=[AB]#rauc.slot=$slot#" "$mnt/cmdline.txt"
        grep -q "root=PARTUUID=$DISK_ID-$root .*rauc.slot=$slot" "$mnt/cmdline.txt" \
            || { echo "hook: cmdline.txt of slot $slot not rewritten: $(cat "$mnt/cmdline.txt")" >&2; exit 1; }
        ;;
    rootfs)
        # files made on this device; a directory entry copies what the new slot lacks
        for f in etc/machine-id etc/hostname etc/hosts root/.ssh/authorized_keys \
                 etc/wpa_supplicant/wpa_supplicant-wlan0.conf \
                 etc/systemd/system/multi-user.target.wants/wpa_supplicant@wlan0.service; do
            if [ -e "$HOST/$f" ] || [ -L "$HOST/$f" ]; then
                mkdir -p "$(dirname "$mnt/$f")"
                cp -a "$HOST/$f" "$mnt/$f"
            fi
        done
        for key in "$HOST"/etc/ssh/ssh_host_*; do
            [ -e "$key" ] && cp -a "$key" "$mnt/etc/ssh/"
        done
        if [ -d "$HOST/etc/systemd/network" ]; then
            for f in "$HOST"/etc/systemd/network/*; do
                [ -e "$f" ] && [ ! -e "$mnt/etc/systemd/network/$(basename "$f")" ] && cp -a "$f" "$mnt/etc/systemd/network/"
            done
        fi
        ;;
    esac
    ;;
*)
    ;;
esac
exit 0
