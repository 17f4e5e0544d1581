#!/bin/bash
# Runs in dom0 (`cargo xtask rig selftest`): proves the rig with Linux's own
# frontends against dom0's own backends. Exits non-zero at the first failure.
set -euo pipefail
step() { echo "=== SELFTEST: $*"; }
trap 'echo "SELFTEST FAILED (line $LINENO: $BASH_COMMAND)"' ERR

step "hypervisor: Xen $(cat /sys/hypervisor/version/major).$(cat /sys/hypervisor/version/minor), dom0 $(uname -r)"
xl info | grep -E '^(xen_version|total_memory|free_memory|nr_cpus)'
for d in evtchn gntalloc gntdev privcmd xenbus xenbus_backend; do
    test -c /dev/xen/$d || { echo "missing /dev/xen/$d"; exit 1; }
done
xenstore-write /rig/selftest hello
test "$(xenstore-read /rig/selftest)" = hello
xenstore-rm /rig/selftest

step "blkfront <-> blkback: xl block-attach 0 (64 MiB file on tmpfs)"
truncate -s 64M /tmp/disk.img
xl block-attach 0 'format=raw,vdev=xvdb,access=rw,target=/tmp/disk.img'
for _ in $(seq 1 150); do [ -b /dev/xvdb ] && break; sleep 0.1; done
test -b /dev/xvdb
test "$(xenstore-read /local/domain/0/device/vbd/51728/state)" = 4
test "$(xenstore-read /local/domain/0/backend/vbd/0/51728/state)" = 4

step "I/O through blkfront: 8 MiB random file on ext4, checksum after a cache drop"
mkfs.ext4 -q -F /dev/xvdb
mkdir -p /mnt/xvdb
mount /dev/xvdb /mnt/xvdb
dd if=/dev/urandom of=/mnt/xvdb/blob bs=1M count=8 status=none
sum1=$(sha256sum < /mnt/xvdb/blob)
umount /mnt/xvdb
echo 3 > /proc/sys/vm/drop_caches
mount /dev/xvdb /mnt/xvdb
sum2=$(sha256sum < /mnt/xvdb/blob)
umount /mnt/xvdb
echo "sha256 written ${sum1%% *}"
echo "sha256 read    ${sum2%% *}"
test "$sum1" = "$sum2"

step "block detach"
xl block-detach 0 xvdb
for _ in $(seq 1 100); do [ -b /dev/xvdb ] || break; sleep 0.1; done
test ! -b /dev/xvdb
rm -f /tmp/disk.img

step "netfront <-> netback: xl network-attach 0 bridge=xenbr0, ping across the bridge"
xl network-attach 0 bridge=xenbr0 mac=00:16:3e:00:00:02
for _ in $(seq 1 150); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
test -e /sys/class/net/eth0
test "$(xenstore-read /local/domain/0/device/vif/0/state)" = 4
test "$(xenstore-read /local/domain/0/backend/vif/0/0/state)" = 4
# The netfront NIC goes into its own namespace, so the ping really crosses
# netfront -> netback -> vif0.0 -> xenbr0.
ip netns add fe
ip link set eth0 netns fe
ip -n fe addr add 10.99.0.2/24 dev eth0
ip -n fe link set eth0 up
ip netns exec fe ping -c 3 -i 0.3 -W 3 10.99.0.1
ip netns exec fe ip link set eth0 netns 1
ip netns del fe
xl network-detach 0 0

echo "SELFTEST PASSED"
