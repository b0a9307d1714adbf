#!/bin/sh
# Runs inside dom0 (as /test.sh of the Xen-in-QEMU harness) once our stub domain serves Xenstore:
# client operations through dom0's ring, xl create of a tiny PV guest (ownership before INTRODUCE,
# @releaseDomain, no zombie, its nodes cleaned up), Xen's own test-xenstore (all tests, then its
# random mode), the PVH guest after that load, then the console logs. rc 0 = pass.
rc=0
check() { # check <description> <command...>
    what=$1; shift
    if out=$("$@" 2>&1); then echo "@@XS ok   $what: $out"; else echo "@@XS FAIL $what: $out"; rc=1; fi
    printf '%s\n' "$out" > /tmp/last-check.log   # the last check's output, read by later checks
}
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }   # busybox date has no %N

# The stub's console (xenconsoled's log) copied to dom0's console as it grows, "@@STUB " before each
# line: if the stub stops (an exit, a trap), its last words reach the host's log even when this test
# then blocks on a Xenstore request that will never be answered.
( seen=0; f=/var/log/xen/console/guest-Xenstore.log
  while :; do
      sleep 5
      [ -e "$f" ] || continue
      lines=$(wc -l < "$f")
      [ "$lines" -gt "$seen" ] && { tail -n +$((seen + 1)) "$f" | head -n $((lines - seen)) | sed 's/^/@@STUB /'; seen=$lines; }
  done ) &
follower=$!

# With XSTEST_DISK=1 (and the image booted with --block): dom0 gives the stub domain its disk the
# operator's way (xenstore-stubdom-disk), before anything else; the stub runs the handshake on its
# own store and writes its history there from then on.
stub=$(xl domid Xenstore 2>/dev/null || echo 1)
# the stub domain's console so far: Xen's console for the PVH image (port 0xE9), xenconsoled's log for both
stub_log() { { xl dmesg 2>/dev/null | grep "^(d$stub)"; cat /var/log/xen/console/* 2>/dev/null; } > /tmp/stub.log; }
# bench <label>: xsbench (bench/xsbench.c, libxenstore over /dev/xen/xenbus) through the stub: one
# writer, then vmstart (transactions of 40 writes) with 1 and 8 clients; one CSV line each.
bench() {
    [ -x /usr/bin/xsbench ] || return 0
    for spec in "write -n 1 -d 3" "vmstart -n 1 -w 40 -d 4" "vmstart -n 8 -w 40 -d 4"; do
        line=$(/usr/bin/xsbench -P "stub-$1" -m $spec 2>/tmp/xsbench.err | tail -1)
        [ -n "$line" ] || line="xsbench -m $spec failed: $(tail -2 /tmp/xsbench.err | tr '\n' ' ')"
        echo "@@XS bench $1 $line"
    done
}
# restarts in place so far, counted in xenconsoled's log of the stub only (the PVH image also writes to Xen's console)
xslog=/var/log/xen/console/guest-Xenstore.log
restarts() { n=$(grep -c '^\*\*\* restarting in place' $xslog 2>/dev/null); echo "${n:-0}"; }
# wait_restarts <n>: waits (up to 10 s) until the log shows n restarts
wait_restarts() { for i in $(seq 1 50); do [ "$(restarts)" -ge "$1" ] && break; sleep 0.2; done; }
if [ -n "${XSTEST_DISK:-}" ]; then
    bench memory   # before the disk: the boot store, in memory
    # Before the disk connects, the boot branch is in kept memory and restart in place is armed:
    # a crash keeps what dom0 wrote, and the merge onto the disk keeps it too (checked below).
    if [ -n "${XSTEST_CRASH:-}" ]; then
        stub_log
        check "restart in place is armed before the disk connects" \
            grep -m1 'restart in place armed (history in kept memory until the disk connects)' /tmp/stub.log
        before=$(restarts)
        check "a write before the disk" xenstore-write /crash/before-disk written-before-disk
        check "CONTROL test-crash before the disk" xenstore-control test-crash
        check "a write after that crash is answered" xenstore-write /crash/after-crash-before-disk yes
        wait_restarts $((before + 1))
        check "the stub restarted in place before its disk connected" test "$(restarts)" = $((before + 1))
        check "the write before that crash is there" test "$(xenstore-read /crash/before-disk)" = written-before-disk
    fi
    if [ "$XSTEST_DISK" = vda ]; then   # the host's file, through virtio: the history outlives this boot
        for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do   # dependencies first
            insmod /lib/modules/$(uname -r)/$m.ko 2>/dev/null
        done
        for i in $(seq 1 50); do [ -b /dev/vda ] && break; sleep 0.1; done
        disk=/dev/vda
    else
        dd if=/dev/zero of=/tmp/xs-disk.img bs=1M count=${XSTEST_DISK_MIB:-16} 2>/dev/null
        disk=/tmp/xs-disk.img
    fi
    start=$(now_ms)
    check "give the stub domain its disk (xenstore-stubdom-disk $disk)" xenstore-stubdom-disk $disk "$stub"
    for i in $(seq 1 150); do [ "$(xenstore-read /local/domain/$stub/device/vbd/51712/state 2>/dev/null)" = 4 ] && break; sleep 0.2; done
    check "the stub's disk connected (frontend state 4)" test "$(xenstore-read /local/domain/$stub/device/vbd/51712/state)" = 4
    echo "@@XS info disk offered to connected: $(( $(now_ms) - start )) ms"
    for i in $(seq 1 50); do stub_log; grep -q 'history on the disk\|history resumed\|memory only' /tmp/stub.log && break; sleep 0.2; done
    if [ -n "${XSTEST_CRASH:-}" ]; then
        # --test-crash-handshake: the stub crashed once with its half of the handshake published
        # (not yet durable) and once with the disk's history adopted, before restart in place moved
        # to the disk; each time the handshake went on from where blkfront got
        for i in $(seq 1 50); do stub_log; grep -q 'restart in place now resumes from the disk' /tmp/stub.log && break; sleep 0.2; done
        check "a crash with the handshake half done" grep -m1 "crashing on purpose (our disk's handshake published" /tmp/stub.log
        check "the handshake went on from the granted ring" grep -m1 "handshake goes on after the restart (blkfront phase 1)" /tmp/stub.log
        check "a crash with the disk's history adopted" grep -m1 "crashing on purpose (the disk's history adopted" /tmp/stub.log
        check "the handshake went on from the connected disk" grep -m1 "handshake goes on after the restart (blkfront phase 4)" /tmp/stub.log
        check "restart in place moved to the disk" grep -m1 'restart in place now resumes from the disk' /tmp/stub.log
        check "the write from before the disk and its crash is on the disk's history" test "$(xenstore-read /crash/before-disk)" = written-before-disk
        check "the same Xenstore domain ($stub) after three restarts" test "$(xl domid Xenstore)" = "$stub"
    fi
    if [ -n "${XSTEST_DISK_RESUME:-}" ]; then   # the disk holds an earlier boot's history
        check "the stub resumed the disk's history and merged its boot branch onto it" grep 'history resumed from the disk, the boot branch merged' /tmp/stub.log
        check "a node the earlier boot wrote is back" xenstore-read /test-disk/earlier-boot
    else
        check "the stub started a new history on the blank disk" grep 'new history on the disk' /tmp/stub.log
    fi
    check "a node for the next boot on the same disk" xenstore-write /test-disk/earlier-boot "written by the $(uname -r) dom0 at $(date +%s)"
    check "xenstore-control history lists the stub's commits" sh -c "xenstore-control history | grep -m3 'Domain 0: '"
    # The live head (acknowledged, so already on the disk), for the host: scripts/test-xen.sh
    # exports the disk while this test goes on and looks for this commit, by this id, in it.
    echo "@@XS live-head $(xenstore-control history 1 | awk 'NR == 1 { print $1 }')"
    bench disk     # every round on the disk before its replies
fi

# Restart in place (XSTEST_CRASH=1, the image booted with --test-hooks): with a watch set, a guest
# writing through its ring and dom0 writing in a loop, CONTROL test-crash makes the stub crash at its
# next round with input. It must restart in place: same domain, every acknowledged write there, the
# watch and the guest served, and everything after this (guests, test-xenstore) runs on it.
crash_test() {
    stub_log
    restarts_before=$(restarts)
    check "restart in place is armed" grep -m1 'restart in place armed' /tmp/stub.log
    xenstore-write /crash/watched before
    xenstore-watch /crash/watched > /tmp/crash-watch 2>&1 &
    watcher=$!
    check "xl create xsguest-tick (a guest writing through its ring every 50 ms)" xl create /etc/xen/xsguest-tick.cfg
    guest=$(xl domid xsguest-tick 2>/dev/null)
    for i in $(seq 1 150); do [ "$(xenstore-read /local/domain/$guest/data/tick 2>/dev/null || echo 0)" -gt 0 ] && break; sleep 0.2; done
    check "the guest is writing" test "$(xenstore-read /local/domain/$guest/data/tick)" -gt 0
    rm -f /tmp/storm-stop /tmp/storm-acked /tmp/storm-failed /tmp/storm-nostart
    # A write "failed" when the store answered it with an error (or the connection broke). Exit 127 is
    # the dynamic loader failing to start xenstore-write at all (seen once in CI, 2026-12-07:
    # "libxenstore.so.4: cannot open shared object file" in dom0, the emulated machine's corruption of
    # docs/stubdom.md, issue 15): the store was never asked; it is reported, not counted as a failure.
    ( i=0; while [ ! -e /tmp/storm-stop ]; do
          i=$((i + 1))
          xenstore-write /crash/storm $i 2>>/tmp/storm-errors; status=$?
          if [ $status -eq 0 ]; then echo $i > /tmp/storm-acked
          elif [ $status -eq 127 ]; then echo $i >> /tmp/storm-nostart
          else echo $i >> /tmp/storm-failed; fi
      done ) &
    storm=$!
    sleep 2
    echo "@@XS info dom0 memory before the crash: $(grep -E '^(MemFree|MemAvailable):' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
    start=$(now_ms)
    check "CONTROL test-crash accepted" xenstore-control test-crash
    check "a write after the crash is answered" xenstore-write /crash/after-crash yes
    echo "@@XS info crash to serving again: $(( $(now_ms) - start )) ms (test-crash sent to the next write answered)"
    sleep 2
    touch /tmp/storm-stop; wait $storm
    stub_log
    check "the stub crashed and restarted in place once" test "$(restarts)" = $((restarts_before + 1))
    check "it resumed its rings (once per restart)" test "$(grep -c 'xenstored: resumed [0-9]* rings' $xslog)" = "$(restarts)"
    [ -e /tmp/storm-nostart ] && echo "@@XS info xenstore-write did not start (exit 127) for storm writes $(tr '\n' ' ' < /tmp/storm-nostart): $(sort -u /tmp/storm-errors | head -2 | tr '\n' ' ')"
    check "no dom0 write failed" test ! -e /tmp/storm-failed
    check "the last acknowledged write is there ($(cat /tmp/storm-acked 2>/dev/null))" test "$(xenstore-read /crash/storm)" = "$(cat /tmp/storm-acked 2>/dev/null)"
    check "the write before the crash is there" test "$(xenstore-read /crash/watched)" = before
    events=$(grep -c /crash/watched /tmp/crash-watch)
    xenstore-write /crash/watched after
    for i in $(seq 1 50); do [ "$(grep -c /crash/watched /tmp/crash-watch)" -gt "$events" ] && break; sleep 0.2; done
    check "the watch set before the crash fires after it" test "$(grep -c /crash/watched /tmp/crash-watch)" -gt "$events"
    kill $watcher 2>/dev/null
    tick=$(xenstore-read /local/domain/$guest/data/tick)
    for i in $(seq 1 100); do [ "$(xenstore-read /local/domain/$guest/data/tick)" -gt "$tick" ] && break; sleep 0.2; done
    check "the guest's writes are served after the restart (tick $tick, then $(xenstore-read /local/domain/$guest/data/tick))" \
        test "$(xenstore-read /local/domain/$guest/data/tick)" -gt "$tick"
    check "no tick write failed" sh -c "! grep -q 'tick write failed' /var/log/xen/console/guest-xsguest-tick.log"
    check "xl destroy xsguest-tick" xl destroy xsguest-tick
    check "the same Xenstore domain ($stub)" test "$(xl domid Xenstore)" = "$stub"
    check "xl list" xl list
}
[ -n "${XSTEST_CRASH:-}" ] && crash_test

check "write" xenstore-write /test/key hello
check "read" xenstore-read /test/key
check "ls /test" xenstore-ls /test
check "list /local/domain" xenstore-list /local/domain
check "rm" xenstore-rm /test/key
check "xl list" xl list
# The stub's live state under /tool/xenstored (docs/introspection.md), read with the real clients.
check "xenstore-ls /tool/xenstored/server" xenstore-ls /tool/xenstored/server
check "/tool/xenstored/domain lists dom0" sh -c 'xenstore-list /tool/xenstored/domain | grep -qx 0'
check "dom0's ring is one of the stub's connections" sh -c 'for c in $(xenstore-list /tool/xenstored/connection); do xenstore-read /tool/xenstored/connection/$c/transport; done | grep -qx "ring of domain 0"'
check "/tool/xenstored refuses writes" sh -c '! xenstore-write /tool/xenstored/server/nodes 0 2>/dev/null'
# The stub's profile of its event loop (CONTROL profile): off until started, then counting rounds.
check "profile start" sh -c 'xenstore-control profile start | grep -qx started'
for i in 1 2 3; do xenstore-write /test/profiled $i; done
check "profile counts the rounds and their phases" sh -c 'xenstore-control profile stop > /tmp/profile.txt &&
    awk "\$1 == \"rounds\" && \$2 >= 3 { r = 1 } \$1 == \"requests-us\" && \$2 > 0 { q = 1 } \$1 == \"store-batches\" && \$2 >= 3 { b = 1 }
         END { exit !(r && q && b) }" /tmp/profile.txt && tr "\n" " " < /tmp/profile.txt'
check "profile is off once stopped" sh -c 'xenstore-control profile | grep -qx "not started"'
xenstore-rm /test/profiled
domains_before=$(xenstore-list /local/domain | tr '\n' ' ')

# guest_cycle <name>: xl create /etc/xen/<name>.cfg; the tiny guest prints a line and powers off;
# xl's monitor must see @releaseDomain and destroy it; its nodes must go.
guest_cycle() {
    name=$1
    [ -e /etc/xen/$name.cfg ] || { echo "@@XS FAIL $name: /etc/xen/$name.cfg missing"; rc=1; return; }
    xenstore-watch @releaseDomain > /tmp/release-events 2>&1 &   # first line: the initial event
    watcher=$!
    start=$(now_ms)
    check "xl create $name" xl create /etc/xen/$name.cfg
    # libxl makes the new domain the owner of its nodes before INTRODUCE: the image asks Xen
    # whether that domain exists, so no "set permissions failed" may appear.
    check "xl create $name without libxl errors" sh -c '! grep -q "set permissions failed" /tmp/last-check.log'
    echo "@@XS info xl create $name took $(( $(now_ms) - start )) ms"
    # @releaseDomain fires at shutdown (xl destroys the guest) and again when it is dying
    # (xenconsoled lets go of its console), so no "(null)" zombie may stay behind.
    for i in $(seq 1 100); do xl list | grep -q "$name\|(null)" || break; sleep 0.2; done
    check "xl list ($name gone)" sh -c "xl list; ! xl list | grep -q '$name\|(null)'"
    sleep 0.5; kill $watcher 2>/dev/null
    check "@releaseDomain fired after $name" test "$(grep -c releaseDomain /tmp/release-events)" -ge 2
    check "$name's /local/domain node is gone" test "$(xenstore-list /local/domain | tr '\n' ' ')" = "$domains_before"
}

guest_cycle tiny-pv
if [ -n "${XSTEST_QUICK:-}" ]; then
    if [ -n "${XSTEST_CRASH:-}" ]; then
        # Last, because it costs dom0 its own connection: a request that crashes the stub every
        # time it runs (--test-hooks). After the second crash in a row while serving dom0's ring,
        # the restart drops that connection instead of crashing a third time and ending the domain.
        # From here on nothing may ask Xenstore anything (dom0's xenbus waits for ever).
        xenstore-write /tool/xenstored/test-poison x > /dev/null 2>&1 &
        for i in $(seq 1 150); do grep -q 'crashed the server twice in a row' $xslog && break; sleep 0.2; done
        check "a request that crashes the stub twice loses its connection" grep 'crashed the server twice in a row' $xslog
        sleep 5
        check "... and the stub lives on (two restarts more, no crash loop)" sh -c "! grep -q 'crash loop' $xslog && test \$(grep -c '^\*\*\* restarting in place' $xslog) = 3"
        echo "---- $xslog"; cat $xslog
        kill $follower 2>/dev/null
        exit $rc
    fi
    stub_log; echo "---- the stub's console"; cat /tmp/stub.log
    kill $follower 2>/dev/null
    exit $rc
fi
# Xen's conformance test against the stub domain: every test, then 20 s of random operations
# (2000-byte values, transactions, watches); then the store must still serve a new guest.
if [ -x /usr/lib/xen-4.17/bin/test-xenstore ]; then
    check "test-xenstore (all tests)" /usr/lib/xen-4.17/bin/test-xenstore -i 5
    check "test-xenstore (random, 20 s)" /usr/lib/xen-4.17/bin/test-xenstore -r 20
    check "read after test-xenstore" sh -c 'xenstore-write /test/after ok && xenstore-read /test/after'
else
    echo "@@XS FAIL test-xenstore missing from the payload"; rc=1
fi
guest_cycle tiny-pvh

# Memory with 100 guests' worth of nodes: what xl writes for a PV guest with a disk, a NIC and a
# console (its /local/domain/N, backend directories in dom0, /vm and /libxl entries), 100 times.
# populate_guest and remove_guest: scripts/xl-guest-nodes.sh, copied next to this script.
. /xl-guest-nodes.sh
if [ "${XSTEST_MANY_GUESTS:-1}" = 1 ]; then
nodes_before=$(xenstore-ls -f / | wc -l)
memreport_before=$(xenstore-control memreport | tr '\n' ' ')
start=$(now_ms)
i=1
while [ $i -le 100 ]; do
    populate_guest $((i + 100)) || { echo "@@XS FAIL populate guest $i"; rc=1; break; }
    # a line now and then: the host's stall watch takes a long silence for a stopped machine
    [ $((i % 20)) -ne 0 ] || echo "@@XS info 100 guests: $i written after $(( $(now_ms) - start )) ms"
    i=$((i + 1))
done
elapsed=$(( $(now_ms) - start ))
nodes_after=$(xenstore-ls -f / | wc -l)
check "100 guests' nodes written" test "$nodes_after" -gt $((nodes_before + 100 * 80))
echo "@@XS info 100 guests: $((nodes_after - nodes_before)) nodes added in $elapsed ms"
echo "@@XS info memreport before: $memreport_before"
echo "@@XS info memreport after: $(xenstore-control memreport | tr '\n' ' ')"
# and gone again, as xl destroy would leave it (a disk keeps the store for the next boot)
i=101
while [ $i -le 200 ]; do
    remove_guest $i
    [ $((i % 20)) -ne 0 ] || echo "@@XS info 100 guests: $((i - 100)) removed"
    i=$((i + 1))
done
check "100 guests' nodes removed" test "$(xenstore-ls -f / | wc -l)" -le $((nodes_before + 10))
else
    echo "@@XS info 100 guests skipped (XSTEST_MANY_GUESTS=0)"
fi
check "xl list at the end" xl list
for f in /var/log/xen/console/*; do
    [ -e "$f" ] || continue
    echo "---- $f"; cat "$f"
done
kill $follower 2>/dev/null
exit $rc
