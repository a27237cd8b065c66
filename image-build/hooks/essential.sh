#!/bin/sh
# mmdebstrap essential hook: runs after the Essential packages, before the kernel and
# raspi-firmware are installed, so their postinst hooks see these settings (dpkg keeps them:
# --dpkgopt=force-confold).
set -eu
R=$1

# initramfs: only the modules needed to find the root fs (Pi 3/4 SD and USB boot, and qemu's
# virt machine for `make image-test`). MODULES=most takes ~10 min per initrd under qemu-user.
mkdir -p "$R/etc/initramfs-tools/conf.d"
echo "MODULES=list" > "$R/etc/initramfs-tools/conf.d/edge.conf"
cat > "$R/etc/initramfs-tools/modules" <<'MODS'
# edge: modules in the initramfs (MODULES=list, see conf.d/edge.conf)
ext4
crc32c_generic
vfat
nls_cp437
nls_ascii
overlay
mmc_block
sdhci_iproc
bcm2835
dwc2
pcie_brcmstb
reset_raspberrypi
xhci_pci
usb_storage
uas
virtio_pci
virtio_mmio
virtio_blk
virtio_scsi
MODS

# raspi-firmware writes cmdline.txt from this: root by label (the card may be mmcblk0 or
# mmcblk1, or a USB disk), the console on HDMI only: the GPIO UART (ttyS1/ttyAMA0 on pins
# 14/15) is left to an RS485 Modbus adapter, so no kernel console or login shell talks there.
mkdir -p "$R/etc/default" "$R/boot/firmware"
cat > "$R/etc/default/raspi-firmware" <<'RF'
# edge: see raspi-firmware(7); cmdline.txt and config.txt are generated from this.
KERNEL_ARCH="arm64"
ROOTPART=LABEL=RASPIROOT
CONSOLES="tty0"
RF
