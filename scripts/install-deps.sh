#!/bin/bash
# Installs what vhostscope's build, demo and tests need on Debian 12 (run as root):
# the toolchain for the native addon, and the real vhost-user peers the tests run
# (DPDK testpmd, QEMU, qemu-storage-daemon, virtiofsd) with a guest kernel and busybox,
# tshark (the pcapng export is checked with it) and Chromium (the HTML report is rendered in it).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "install-deps.sh: run as root (apt-get)" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q \
    python3 make g++ cpio gzip coreutils util-linux \
    qemu-system-x86 qemu-utils linux-image-amd64 busybox-static \
    dpdk dpdk-dev librte-net-vhost23 librte-net-virtio23 \
    tshark chromium fonts-dejavu-core clang-14 libclang-rt-14-dev
