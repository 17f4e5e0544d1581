#!/bin/sh
# /init of the rig's dom0 initramfs (built by `cargo xtask rig setup`).
# Brings up a minimal Xen dom0: xenfs, the evtchn/gntdev/gntalloc/privcmd devices,
# C xenstored, xen-init-dom0, xenconsoled, blkback/netback (+ Linux's own
# blkfront/netfront as the reference), the bridge xenbr0 (10.99.0.1/24); then runs
# /rig/cmd with bash, prints "XENPV-RIG-RESULT rc=N" and powers the machine off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=${TERM:-linux} LANG=C.UTF-8
XENBIN=/usr/lib/xen-4.17/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
# devtmpfs has no /dev/std*: without /dev/stdin the hotplug scripts' locking
# loops forever and `xl block-attach` times out.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/xen /run/xenstored /var/log/xen /var/lib/xen /var/lib/xenstored /run/lock
hostname dom0
ip link set lo up

# One modprobe per group: every fork+exec is expensive for a PV dom0 under TCG.
modprobe -a xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd \
    || echo "XENPV-RIG: modprobe failed: $(ls /sys/module | tr '\n' ' ')"
mount -t xenfs xenfs /proc/xen
# The backends (and Linux's frontends, the reference) load while xenstored starts.
modprobe -a xen-blkback xen-netback xen-blkfront xen-netfront loop bridge &
modprobe_pid=$!

$XENBIN/xenstored --pid-file /run/xen/xenstored.pid
i=0; while [ ! -S /run/xenstored/socket ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
$XENBIN/xen-init-dom0 || echo "XENPV-RIG: xen-init-dom0 failed"
$XENBIN/xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=none || echo "XENPV-RIG: xenconsoled failed"
wait $modprobe_pid || echo "XENPV-RIG: modprobe failed: $(ls /sys/module | tr '\n' ' ')"

# The in-VM bridge netback's vifs join (vif-bridge); nothing leaves the VM.
ip link add name xenbr0 type bridge stp_state 0 forward_delay 0
ip addr add 10.99.0.1/24 dev xenbr0
ip link set xenbr0 up

if [ -e /rig/share ]; then
    # virtio_pci before 9pnet_virtio, else 9p finds "no channels".
    modprobe -a virtio_pci 9pnet_virtio 9p
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hostshare /mnt/host \
        || echo "XENPV-RIG: 9p mount failed"
fi

echo "XENPV-RIG-READY uptime=$(cut -d' ' -f1 /proc/uptime)"

mode=$(cat /rig/mode 2>/dev/null || echo run)
if [ "$mode" = shell ]; then
    echo "XENPV-RIG: interactive shell; 'exit' powers the VM off (Ctrl-a x kills it)"
    setsid -c /bin/bash -l </dev/hvc0 >/dev/hvc0 2>&1
    rc=$?
else
    cd /tmp
    /bin/bash /rig/cmd </dev/null
    rc=$?
fi
echo "XENPV-RIG-RESULT rc=$rc"
sync
# dom0 poweroff -> ACPI S5 through Xen -> QEMU exits. Should that fail, /init
# exits, dom0 panics, Xen reboots and -no-reboot ends QEMU.
busybox poweroff -f
sleep 10
