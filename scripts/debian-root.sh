#!/bin/bash
# Builds (or verifies) a Debian root that holds vhost-user peers newer than the Debian 12 host's,
# for the end-to-end tests to run next to Debian 12's:
#
#   trixie  Debian 13: QEMU 10.0 (qemu-system-x86, qemu-storage-daemon, /usr/lib/qemu/vhost-user-gpu
#           from qemu-system-gui, libblkio's driver in qemu-block-extra), DPDK 24.11 testpmd, the
#           Rust virtiofsd and passt, OVS-DPDK 3.5, cargo with rust-vmm's vhost and
#           vhost-user-backend crates (a test front-end and a test back-end are built on them
#           offline), libblkio-dev; and from sid (pinned: nothing else comes from it) rust-vmm's
#           vhost-device-vsock.
#   sid     Debian unstable: QEMU 11.1 (with qemu-storage-daemon, vhost-user-gpu and libblkio's
#           driver), DPDK 25.11 (testpmd comes with dpdk-dev), virtiofsd 1.14, passt. A root of its
#           own: sid's QEMU and DPDK need sid's libraries.
#
# The host stays Debian 12; only debootstrap is needed on it. Peers run inside a root through
# scripts/in-root.
#
#   scripts/debian-root.sh SUITE            build the root if needed, else verify it (seconds)
#   scripts/debian-root.sh SUITE --rebuild  remove it and build it again
#
# Environment: VHS_DEBIAN13_ROOT (default /var/cache/vhostscope/trixie-root), VHS_SID_ROOT
#   (default /var/cache/vhostscope/sid-root), VHS_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# debootstrap and apt run in a private mount namespace (unshare -m): nothing stays mounted
# on the host, and a half-built root is removed only when nothing is mounted in it.
set -u -o pipefail
SUITE="${1:-}"
MIRROR="${VHS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
case "$SUITE" in
trixie)
    ROOT="${VHS_DEBIAN13_ROOT:-/var/cache/vhostscope/trixie-root}"
    PKGS="qemu-system-x86 qemu-system-common qemu-system-data qemu-system-gui qemu-utils qemu-block-extra seabios
          dpdk dpdk-dev librte-net-vhost25 librte-net-virtio25 virtiofsd passt
          cargo rustc librust-vhost-dev librust-vhost-user-backend-dev librust-virtio-queue-dev librust-virtio-bindings-dev
          openvswitch-switch-dpdk libblkio-dev"
    SID_PKGS="vhost-device-vsock"
    BINS="/usr/lib/qemu/vhost-user-gpu /usr/bin/vhost-device-vsock /usr/bin/cargo /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
    VERSIONS="qemu-system-x86 qemu-system-gui dpdk virtiofsd passt vhost-device-vsock openvswitch-switch-dpdk librust-vhost-dev
              librust-vhost-user-backend-dev"
    ;;
sid)
    ROOT="${VHS_SID_ROOT:-/var/cache/vhostscope/sid-root}"
    PKGS="qemu-system-x86 qemu-system-common qemu-system-data qemu-system-gui qemu-utils qemu-block-extra seabios
          dpdk dpdk-dev virtiofsd passt"
    SID_PKGS=""
    BINS="/usr/lib/qemu/vhost-user-gpu"
    VERSIONS="qemu-system-x86 qemu-system-gui dpdk-dev virtiofsd passt libblkio1"
    ;;
*)
    sed -n '2,23p' "$0" >&2
    exit 2
    ;;
esac
BINS="/usr/bin/qemu-system-x86_64 /usr/bin/qemu-storage-daemon /usr/bin/qemu-io /usr/bin/dpdk-testpmd /usr/libexec/virtiofsd /usr/bin/passt $BINS"
T0=$(date +%s)
say()  { echo "[debian-root $SUITE +$(( $(date +%s) - T0 ))s] $*" >&2; }
fail() { echo "debian-root.sh $SUITE: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "run as root (debootstrap, chroot, mount)"
case "$ROOT" in /|/tmp|/tmp/|/var|/var/cache|"") fail "refusing root directory $ROOT" ;; esac

mounted_under() { findmnt -rn -o TARGET | awk -v r="$ROOT" 'index($0, r "/") == 1 || $0 == r'; }
wipe() {
    local m
    for m in $(mounted_under | sort -r); do umount -l "$m" 2>/dev/null; done
    [ -z "$(mounted_under)" ] || fail "still mounted under $ROOT"
    rm -rf --one-file-system "$ROOT" || fail "cannot remove $ROOT"
}
in_root() {  # in_root TIMEOUT cmd...: run inside the root with /proc, /sys, /dev
    local to="$1"; shift
    timeout --kill-after=10 "$to" unshare --mount --propagation private -- /bin/bash -c '
        set -e; R=$1; shift
        mount -t proc proc "$R/proc"; mount --rbind /sys "$R/sys"; mount --rbind /dev "$R/dev"
        exec chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"' in_root "$ROOT" "$@"
}

[ "${2:-}" = --rebuild ] && [ -d "$ROOT" ] && { say "removing $ROOT"; wipe; }
command -v debootstrap >/dev/null || fail "debootstrap is not installed (scripts/debian-packages.txt lists it)"
want="$(echo $PKGS) sid: $SID_PKGS"
if [ -f "$ROOT/.vhs-ready" ] && [ "$(cat "$ROOT/.vhs-pkgs" 2>/dev/null)" = "$want" ]; then
    say "present: $ROOT"
else
    if [ ! -f "$ROOT/.vhs-base" ]; then
        [ -e "$ROOT" ] && { say "removing incomplete $ROOT"; wipe; }
        mkdir -p "$ROOT"
        say "debootstrap --variant=minbase $SUITE $ROOT (a few minutes)"
        timeout --kill-after=10 1500 unshare --mount --propagation private -- \
            debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1 ||
            { tail -15 "$ROOT.debootstrap.log" >&2; fail "debootstrap failed (log: $ROOT.debootstrap.log)"; }
        touch "$ROOT/.vhs-base"
    fi
    rm -f "$ROOT/etc/apt/sources.list.d/debian.sources"
    if [ "$SUITE" = sid ]; then
        printf 'deb %s sid main\n' "$MIRROR" >"$ROOT/etc/apt/sources.list"
    else
        printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$ROOT/etc/apt/sources.list"
        printf 'deb %s sid main\n' "$MIRROR" >"$ROOT/etc/apt/sources.list.d/sid.list"
        printf 'Package: *\nPin: release n=sid\nPin-Priority: 100\n' >"$ROOT/etc/apt/preferences.d/sid"
    fi
    printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"; chmod 755 "$ROOT/usr/sbin/policy-rc.d"
    # a mirror's Release files may be older than their Valid-Until on a machine whose clock is ahead
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAcquire::Check-Valid-Until "false";\n' >"$ROOT/etc/apt/apt.conf.d/90vhostscope"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    say "apt-get install $want"
    in_root 600 apt-get update -q >"$ROOT.apt.log" 2>&1 || { tail -15 "$ROOT.apt.log" >&2; fail "apt-get update failed"; }
    # shellcheck disable=SC2086
    in_root 1500 apt-get install -y -q $PKGS >>"$ROOT.apt.log" 2>&1 || { tail -20 "$ROOT.apt.log" >&2; fail "apt-get install failed (log: $ROOT.apt.log)"; }
    if [ -n "$SID_PKGS" ]; then
        # shellcheck disable=SC2086
        in_root 600 apt-get install -y -q -t sid $SID_PKGS >>"$ROOT.apt.log" 2>&1 || { tail -20 "$ROOT.apt.log" >&2; fail "apt-get install -t sid failed (log: $ROOT.apt.log)"; }
    fi
    in_root 120 apt-get clean >/dev/null 2>&1 || true
    echo "$want" >"$ROOT/.vhs-pkgs"
fi
rm -f "$ROOT/.vhs-ready"
for b in $BINS; do
    [ -x "$ROOT$b" ] || fail "$b is missing in $ROOT"
done
# libblkio's virtio-blk-vhost-user driver for qemu-io/qemu-img (qemu-block-extra): a front-end without a VM
[ -f "$ROOT/usr/lib/x86_64-linux-gnu/qemu/block-blkio.so" ] || fail "qemu-block-extra's block-blkio.so is missing in $ROOT"
in_root 60 qemu-system-x86_64 --version >"$ROOT/.vhs-versions" 2>&1 || fail "qemu-system-x86_64 does not run in $ROOT"
# shellcheck disable=SC2086
in_root 60 dpkg-query -W -f='${Package} ${Version}\n' $VERSIONS >>"$ROOT/.vhs-versions" 2>&1
touch "$ROOT/.vhs-ready"
say "ready: $(head -1 "$ROOT/.vhs-versions")"
