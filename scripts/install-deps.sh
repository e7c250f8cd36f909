#!/bin/bash
# Installs what vhostscope's build, demo and tests need on Debian 12 (run as root): the toolchain
# for the native addon, the real vhost-user peers the tests run (DPDK testpmd, QEMU,
# qemu-storage-daemon, virtiofsd) with a guest kernel and busybox, tshark (the pcapng export is
# checked with it), Chromium (the HTML report is rendered in it), clang (the fuzzer), and a
# Debian 13 root holding the newer peers (scripts/debian13-root.sh, with debootstrap).
# The package list is scripts/debian-packages.txt, shared with .ci/run.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "install-deps.sh: run as root (apt-get)" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2046
apt-get install -y -q $(grep -v '^#' "$(dirname "$0")/debian-packages.txt")
# the Debian 13 peers (QEMU 10, vhost-user-gpu, DPDK 24.11, Rust virtiofsd, passt) in a root of their own
bash "$(dirname "$0")/debian13-root.sh"
