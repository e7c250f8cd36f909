#!/bin/bash
# Re-creates recordings/*.vhsrec from the real peers: runs the end-to-end scenarios (DPDK
# testpmd, QEMU virtio-net with testpmd incl. a backend restart and a live migration, vhost-user-blk with
# qemu-storage-daemon and its live migration, vhost-user-fs with virtiofsd, and a QEMU 10 migration
# with the Rust virtiofsd's device state) and keeps each session's recording.
# Needs what `npm test` needs (root, scripts/install-deps.sh, npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p recordings
npx tsc -p tsconfig.json
VHS_SAVE_RECORDINGS="$PWD/recordings" npx vitest run test/e2e
ls -l recordings/*.vhsrec
