#!/bin/bash
# mmdebstrap customize hook: the application and the appliance settings, into root dir $1.
# Runs on the build host; commands that must run arm64 code use chroot (qemu-user).
set -euo pipefail
R=$1 REPO=$2 WHEELS=$3
HERE=$REPO/image-build
inroot() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

echo "customize: overlay files and units"
cp -r --no-preserve=ownership "$HERE/overlay/." "$R/"
install -D -m 0644 -t "$R/usr/local/lib/systemd/system" \
    "$REPO"/systemd/edge.service "$REPO"/systemd/edge-growroot.service "$REPO"/systemd/edge-hostname.service \
    "$REPO"/systemd/edge-sshkeys.service "$REPO"/systemd/edge-ssh-from-boot.service \
    "$REPO"/systemd/edge-broker-setup.service "$REPO"/systemd/edge-ctl.service "$REPO"/systemd/edge-ctl.path
install -D -m 0644 "$REPO/systemd/edge.sysusers" "$R/usr/local/lib/sysusers.d/edge.conf"
install -D -m 0644 "$REPO/systemd/edge.tmpfiles" "$R/usr/local/lib/tmpfiles.d/edge.conf"
install -D -m 0644 "$REPO/systemd/60-edge-hw.rules" "$R/etc/udev/rules.d/60-edge-hw.rules"
systemd-sysusers --root="$R"
install -D -m 0640 "$HERE/edge.toml" "$R/etc/edge/edge.toml"
install -D -m 0664 "$HERE/overlay/usr/local/share/edge/10-edge.network" "$R/etc/edge/network/10-edge.network"
install -D -m 0644 "$HERE/overlay/usr/local/share/edge/10-edge.network" "$R/etc/systemd/network/10-edge.network"
systemd-tmpfiles --root="$R" --create --prefix=/var/lib/edge --prefix=/etc/edge

echo "customize: /opt/edge/venv from the aarch64 wheels"
inroot /usr/bin/python3 -m venv --without-pip --system-site-packages /opt/edge/venv
rm -rf "$R/tmp/edge-wheels" && cp -r "$WHEELS" "$R/tmp/edge-wheels"
pipwhl=$(cd "$R" && ls usr/share/python-wheels/pip-*.whl | head -1)
edgewhl=$(cd "$R/tmp/edge-wheels" && ls edge-*.whl)
inroot /opt/edge/venv/bin/python "/$pipwhl/pip" install --no-index --no-cache-dir --disable-pip-version-check \
    --find-links /tmp/edge-wheels -r /tmp/edge-wheels/requirements-image.txt "/tmp/edge-wheels/$edgewhl"
rm -rf "$R/tmp/edge-wheels"
# The app must import and load its config in the image (arm64 wheels, gi from Debian).
inroot /opt/edge/venv/bin/edge check-config /etc/edge/edge.toml
inroot /opt/edge/venv/bin/python -c 'import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0"); from gi.repository import Gst, GstRtspServer; import lgpio, gpiozero, pydantic_core, lxml.etree, PIL.Image'

echo "customize: services"
systemctl --root="$R" enable edge.service edge-growroot.service edge-hostname.service edge-sshkeys.service \
    edge-ssh-from-boot.service edge-broker-setup.service edge-ctl.path systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
# SSH off by default (edge-ssh-from-boot.service turns it on when asked); Wi-Fi only when
# configured (wpa_supplicant@wlan0).
systemctl --root="$R" disable ssh.service ssh.socket wpa_supplicant.service 2>/dev/null || true
# With machine-id "uninitialized" systemd-firstboot would wait for keyboard input.
systemctl --root="$R" mask systemd-firstboot.service
rm -f "$R"/etc/ssh/ssh_host_*
