#!/bin/sh
# xl-guest-nodes.sh: sourced; populate_guest N writes the nodes `xl create` leaves for a PV guest
# with a disk, a NIC and a console (about 109: its /local/domain/N, the backend directories in
# dom0, /vm/<uuid> and /libxl/N), and remove_guest N takes them away as `xl destroy` would.
# Shared by the dom0 test under Xen (scripts/test-xen-dom0.sh) and the host memory bench
# (scripts/bench.sh, section memory), so both count the same nodes. POSIX sh (busybox in dom0).

# guest_uuid N: the guest's (made-up, unique per N) /vm uuid
guest_uuid() { printf '00000000-0000-0000-0000-%012d' "$1"; }

# populate_guest N: one xenstore-write with every node of guest N
populate_guest() {
    n=$1; d=/local/domain/$n; b=/local/domain/0/backend; u=$(guest_uuid "$n")
    xenstore-write $d/name guest$n $d/domid $n $d/vm /vm/$u $d/cpu/0/availability online \
        $d/memory/static-max 262144 $d/memory/target 262144 $d/memory/videoram 8192 \
        $d/store/port 1 $d/store/ring-ref 1 $d/console/port 2 $d/console/ring-ref 2 $d/console/limit 1048576 \
        $d/console/type xenconsoled $d/console/output pty $d/console/tty /dev/pts/$n \
        $d/control/shutdown "" $d/control/feature-poweroff 1 $d/control/feature-reboot 1 $d/control/feature-suspend 1 \
        $d/control/sysrq "" $d/control/platform-feature-multiprocessor-suspend 1 $d/control/platform-feature-xs_reset_watches 1 \
        $d/data/updated 1 $d/drivers/0 linux $d/attr/os-type linux $d/error "" \
        $d/device/vbd/51712/backend $b/vbd/$n/51712 $d/device/vbd/51712/backend-id 0 $d/device/vbd/51712/state 4 \
        $d/device/vbd/51712/virtual-device 51712 $d/device/vbd/51712/device-type disk $d/device/vbd/51712/protocol x86_64-abi \
        $d/device/vbd/51712/ring-ref 8 $d/device/vbd/51712/event-channel 3 $d/device/vbd/51712/feature-persistent 1 \
        $d/device/vif/0/backend $b/vif/$n/0 $d/device/vif/0/backend-id 0 $d/device/vif/0/state 4 $d/device/vif/0/handle 0 \
        $d/device/vif/0/mac 00:16:3e:00:00:$(printf %02x $((n % 256))) $d/device/vif/0/tx-ring-ref 9 $d/device/vif/0/rx-ring-ref 10 \
        $d/device/vif/0/event-channel 4 $d/device/vif/0/request-rx-copy 1 $d/device/vif/0/feature-rx-notify 1 \
        $d/device/vif/0/feature-sg 1 $d/device/vif/0/feature-gso-tcpv4 1 \
        $b/vbd/$n/51712/frontend $d/device/vbd/51712 $b/vbd/$n/51712/frontend-id $n $b/vbd/$n/51712/state 4 \
        $b/vbd/$n/51712/params /dev/vg/guest$n $b/vbd/$n/51712/type phy $b/vbd/$n/51712/mode w \
        $b/vbd/$n/51712/online 1 $b/vbd/$n/51712/removable 0 $b/vbd/$n/51712/bootable 1 \
        $b/vbd/$n/51712/dev xvda $b/vbd/$n/51712/sectors 20971520 $b/vbd/$n/51712/sector-size 512 \
        $b/vbd/$n/51712/feature-flush-cache 1 $b/vbd/$n/51712/hotplug-status connected \
        $b/vif/$n/0/frontend $d/device/vif/0 $b/vif/$n/0/frontend-id $n $b/vif/$n/0/state 4 $b/vif/$n/0/online 1 \
        $b/vif/$n/0/script /etc/xen/scripts/vif-bridge $b/vif/$n/0/mac 00:16:3e:00:00:01 $b/vif/$n/0/bridge xenbr0 \
        $b/vif/$n/0/handle 0 $b/vif/$n/0/type vif $b/vif/$n/0/hotplug-status connected \
        $b/console/$n/0/frontend $d/console $b/console/$n/0/frontend-id $n $b/console/$n/0/state 1 \
        /vm/$u/name guest$n /vm/$u/uuid $u /vm/$u/start_time 1700000000.00 \
        /libxl/$n/type pv /libxl/$n/dm-version qemu_xen /libxl/$n/device/vbd/51712/frontend $d/device/vbd/51712 \
        /libxl/$n/device/vif/0/frontend $d/device/vif/0
}

# remove_guest N: removes what populate_guest N wrote
remove_guest() {
    xenstore-rm /local/domain/$1 /local/domain/0/backend/vbd/$1 /local/domain/0/backend/vif/$1 \
        /local/domain/0/backend/console/$1 /vm/$(guest_uuid "$1") /libxl/$1 2>/dev/null
}
