#!/bin/sh
# Runs inside the arm32 dom0 (as /test.sh of the Xen-in-QEMU harness): starts our image with xl create as an
# ordinary guest (`--vchan`), connects vchan-socket-proxy to the vchan it offers, and runs the real Xenstore
# clients through it (XENSTORED_PATH = the proxy's socket): write/read/ls/list/rm, a watch,
# xenstore-control history (only our daemon has it) and upstream's test-xenstore; then restarts the image on the same virtual disk
# (blkback over a loop device) and checks that the store and its history are still there. rc 0 = pass.
rc=0
t() { echo "@@T $(cut -d' ' -f1 /proc/uptime) $*"; }
check() { # check <description> <command...>
    what=$1; shift
    # timeout: a hung client fails its check instead of the whole run
    if out=$(timeout 30 "$@" 2>&1); then echo "@@XS ok   $what: $out"; else echo "@@XS FAIL $what: $out"; rc=1; fi
}
log=/var/log/xen/console/guest-xenstore-arm.log
# The image's disk: blkback over a loop device. xl's disk= would need the hotplug scripts, which the
# harness's initramfs does not carry, so the vbd's nodes are written here as libxl would write them.
KV=$(uname -r)
insmod /lib/modules/$KV/loop.ko 2>/dev/null
insmod /lib/modules/$KV/xen-blkback.ko 2>/dev/null
dd if=/dev/zero of=/tmp/xs-disk.img bs=1M count=4 2>/dev/null
losetup /dev/loop0 /tmp/xs-disk.img
attach_disk() { # attach_disk <domid>: /dev/loop0 as the guest's xvda (51712)
    f=/local/domain/$1/device/vbd/51712
    b=/local/domain/0/backend/vbd/$1/51712
    xenstore-write $f/backend $b $f/backend-id 0 $f/state 1 $f/virtual-device 51712 $f/device-type disk &&
    xenstore-chmod -r $f n$1 r0 &&
    xenstore-write $b/frontend $f $b/frontend-id $1 $b/online 1 $b/removable 0 $b/state 1 $b/dev xvda \
        $b/type phy $b/mode w $b/device-type disk $b/params /dev/loop0 $b/physical-device 7:0 &&
    xenstore-chmod -r $b n0 r$1
}
t "xl create xenstore-arm"
xl create /etc/xen/xenstore-arm.cfg || rc=1
t "xl create returned"
attach_disk "$(xl domid xenstore-arm)" && echo "@@XS ok   attach the disk" || { echo "@@XS FAIL attach the disk"; rc=1; }
for i in $(seq 1 600); do grep -q 'vchan offered\|SELFTEST: FAIL\|CRASH\|exit [0-9]' $log 2>/dev/null && break; sleep 0.1; done
t "image ready (or timeout)"
check "self-test passed in the image" grep -q 'SELFTEST: PASS' $log
domid=$(xl domid xenstore-arm)
dir=/local/domain/$domid/data/xenstore-vchan
check "vchan published by the image" sh -c "xenstore-read $dir/ring-ref && xenstore-read $dir/event-channel"
show_logs() {
    for f in /var/log/xen/console/*; do
        [ -e "$f" ] || continue
        echo "---- $f"; cat "$f"
    done
}
[ $rc -eq 0 ] || { xl list; show_logs; exit 1; }   # no point driving clients at an image that is not serving
# the proxy talks to dom0's xenstored (to find the vchan) and listens on a socket for our clients
vchan-socket-proxy "$domid" "$dir" /run/xs-arm.sock > /tmp/proxy.log 2>&1 &
for i in $(seq 1 50); do [ -S /run/xs-arm.sock ] && break; sleep 0.1; done
export XENSTORED_PATH=/run/xs-arm.sock
t "clients start"
check "write" xenstore-write /test/key hello /test/other 42
check "read" sh -c '[ "$(xenstore-read /test/key)" = hello ]'
check "ls /test" xenstore-ls /test
check "list /test" sh -c '[ "$(xenstore-list /test | tr "\n" " ")" = "key other " ]'
check "rm" xenstore-rm /test/other
check "read after rm fails" sh -c '! xenstore-read /test/other'
# vchan-socket-proxy serves one socket connection at a time, so a watcher and a writer cannot overlap:
# the watch is checked by its registration event, which arrives over the vchan like any other event.
check "watch fires on registration" sh -c 'out=$(xenstore-watch -n 1 /test/key) && echo "$out" && [ "$out" = /test/key ]'
# xenstore-write/-rm wrap their requests in a transaction: 2 merges on top of the initial commit
check "history: our daemon answers CONTROL history" sh -c 'xenstore-control history 5 | tee /tmp/history; [ "$(grep -c "Domain 0: merging transaction" /tmp/history)" -ge 2 ]'
check "upstream test-xenstore through the vchan" sh -c 'timeout 25 test-xenstore'
xenstore-control history 1 > /tmp/head-before   # the head the restarted image must continue from
t "clients done"
unset XENSTORED_PATH
check "dom0's own xenstored does not have /test/key" sh -c '! xenstore-read /test/key'
# Restart: the image comes back on the same disk and resumes its history.
kill %1 2>/dev/null
t "restart: xl destroy + xl create"
old=$(xl domid xenstore-arm)
check "xl destroy" xl destroy xenstore-arm
xenstore-rm /local/domain/0/backend/vbd/$old
check "xl create again" xl create /etc/xen/xenstore-arm.cfg
attach_disk "$(xl domid xenstore-arm)" && echo "@@XS ok   attach the disk again" || { echo "@@XS FAIL attach the disk again"; rc=1; }
for i in $(seq 1 600); do [ "$(grep -c 'vchan offered' $log)" -ge 2 ] && break; sleep 0.1; done
check "the image resumed its history from the disk" grep -q 'history resumed from the disk' $log
domid=$(xl domid xenstore-arm)
dir=/local/domain/$domid/data/xenstore-vchan
vchan-socket-proxy "$domid" "$dir" /run/xs-arm2.sock >> /tmp/proxy.log 2>&1 &
for i in $(seq 1 50); do [ -S /run/xs-arm2.sock ] && break; sleep 0.1; done
export XENSTORED_PATH=/run/xs-arm2.sock
check "after the restart: /test/key is still there" sh -c '[ "$(xenstore-read /test/key)" = hello ]'
check "after the restart: the history goes on from the same head" sh -c \
    'xenstore-write /test/after restart && xenstore-control history 2 > /tmp/history2 && cat /tmp/history2 &&
     [ "$(sed -n 2p /tmp/history2 | cut -d" " -f1)" = "$(cut -d" " -f1 /tmp/head-before)" ]'
unset XENSTORED_PATH
t "restart checked"
xl list
kill %2 2>/dev/null
cat /tmp/proxy.log
show_logs
exit $rc
