#!/bin/bash
# Installs what vhostscope's build, demo and tests need on Debian 12 (run as root): the toolchain
# for the native addon, the real vhost-user peers the tests run (DPDK testpmd, QEMU,
# qemu-storage-daemon, virtiofsd, OVS-DPDK) with a guest kernel and busybox, tshark (the pcapng
# export is checked with it), Chromium (the HTML report is rendered in it), clang (the fuzzer),
# and two Debian roots holding newer peers (scripts/debian-root.sh, with debootstrap): Debian 13
# and sid.
# Package lists: scripts/debian-packages.txt, and scripts/debian-packages-no-recommends.txt for
# the packages whose recommends would bring services (OVS, Prometheus, libvirt). .ci/run runs this script.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "install-deps.sh: run as root (apt-get)" >&2; exit 1; fi
here="$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2046
apt-get install -y -q $(grep -v '^#' "$here/debian-packages.txt")
# No service may start while packages install (OVS's would load a kernel module): the tests
# start OVS by hand. Keep an existing policy-rc.d; remove only the one made here.
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1; fi
# shellcheck disable=SC2046
apt-get install -y -q --no-install-recommends $(grep -v '^#' "$here/debian-packages-no-recommends.txt") || { [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
[ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
# the Debian 13 peers (QEMU 10, vhost-user-gpu, DPDK 24.11, Rust virtiofsd, passt) and sid's (QEMU 11.1,
# DPDK 25.11, virtiofsd 1.14), each release in a root of its own
bash "$here/debian-root.sh" trixie
bash "$here/debian-root.sh" sid
