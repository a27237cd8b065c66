#!/bin/bash
# mmdebstrap customize hook (after customize.sh): A/B updates with RAUC and the fleet uplink's
# broker bridge, into root dir $1. Also run by build.sh on a reused root dir (idempotent).
#   customize-updates.sh ROOT REPO KEYRING
set -euo pipefail
R=$1 REPO=$2 KEYRING=$3

echo "customize-updates: RAUC keyring, update units, data partition mount points"
install -D -m 0644 "$KEYRING" "$R/etc/rauc/keyring.pem"
install -D -m 0644 -t "$R/usr/local/lib/systemd/system" \
    "$REPO"/systemd/edge-update-boot.service "$REPO"/systemd/edge-update-trial.service "$REPO"/systemd/edge-update-good.service
systemctl --root="$R" enable edge-update-boot.service edge-update-trial.service edge-update-good.service
mkdir -p "$R/data" "$R/boot/firmware"
# the broker's queue on /data (bind-mounted over /var/lib/mosquitto, see /etc/fstab): its
# owner is fixed at every boot, as a new root fs may give the mosquitto user another uid
install -D -m 0644 /dev/stdin "$R/usr/local/lib/tmpfiles.d/edge-data.conf" <<'TMP'
# edge: directories on the data partition (/data), owners fixed after an update
d /data/rauc 0755 root root -
d /data/update 0700 root root -
Z /var/lib/mosquitto - mosquitto mosquitto -
TMP
# `edge update ...`, `edge credentials` for root on the appliance
ln -sfn /opt/edge/venv/bin/edge "$R/usr/local/bin/edge"
