#!/bin/sh
# Runs inside dom0 (/test.sh of the Xen-in-QEMU harness) while OUR daemon is dom0's xenstored
# (`xenstored --xen`): dom0 clients over the socket and over the kernel's ring, xl create/destroy
# of PV (xsguest, tiny-pv) and PVH (tiny-pvh) guests with @releaseDomain and node removal, then
# malicious guests (flood, bad ring indexes, oversized packet) next to a well-behaved one.
# rc 0 = pass. Lines "@@XS ok|FAIL ..." are the checks; guest consoles are printed at the end.
rc=0
LOG=/var/log/xenstored.log
check() { # check <description> <command...>
    what=$1; shift
    if out=$("$@" 2>&1); then echo "@@XS ok   $what: $(echo $out | head -c 300)"; else echo "@@XS FAIL $what: $(echo $out | head -c 300)"; rc=1; fi
}
# wait_value <path> <value> <seconds>: bounded wait until a node has the value
wait_value() {
    deadline=$(awk "BEGIN { print $(cut -d' ' -f1 /proc/uptime) + $3 }")
    while awk "BEGIN { exit !($(cut -d' ' -f1 /proc/uptime) < $deadline) }"; do
        [ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ] && return 0
        sleep 0.1
    done
    echo "$1 = '$(xenstore-read "$1" 2>&1)', wanted '$2'"
    return 1
}
# wait_console <guest> <text> <seconds>: bounded wait for a line in the guest's console log
wait_console() {
    deadline=$(awk "BEGIN { print $(cut -d' ' -f1 /proc/uptime) + $3 }")
    while awk "BEGIN { exit !($(cut -d' ' -f1 /proc/uptime) < $deadline) }"; do
        grep -h "$2" /var/log/xen/console/guest-$1.log 2>/dev/null && return 0
        sleep 0.2
    done
    tail -5 /var/log/xen/console/guest-$1.log 2>&1
    return 1
}
# wait_gone <name>: bounded wait until xl list no longer shows the domain (nor a nameless zombie)
wait_gone() {
    for i in $(seq 1 100); do xl list | grep -q "^$1 \|(null)" || return 0; sleep 0.1; done
    xl list; return 1
}
now() { cut -d' ' -f1 /proc/uptime; }
# xl_create <cfg>: xl create, failing also on libxl errors such as "set permissions failed"
# (libxl makes the new domain the owner of its nodes before INTRODUCE: the daemon asks Xen)
xl_create() { out=$(xl create "$1" 2>&1); rc_=$?; echo "$out"; [ $rc_ -eq 0 ] && ! echo "$out" | grep -qi "error\|failed"; }
# dump: the daemon's state, its log and the guests' consoles (at the end, or when the watchdog fires)
dump() {
    echo "==== our daemon's log (connection lines left out)"
    grep -v "connection [0-9]* \(as domain\|closed\)" $LOG | tail -40
    pid=$(cat /run/xenstored.pid 2>/dev/null)
    [ -n "$pid" ] && echo "daemon $pid: state $(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null) wchan $(cat /proc/$pid/wchan 2>/dev/null)"
    for f in /var/log/xen/console/*; do
        [ -e "$f" ] || continue
        echo "---- $f"; tail -25 "$f"
    done
}
# watchdog: a hang becomes a failure with the daemon's state and log printed
( sleep ${XS_WATCHDOG:-150}; echo "@@XS FAIL watchdog: the test hung"; ps; dump; echo "@@XENTEST FAIL: watchdog"; sync; reboot -f ) &
WATCHDOG=$!
# dom0_ops: 20 xenstore-write + xenstore-read pairs, each checked
dom0_ops() { for i in $(seq 1 20); do xenstore-write /test/ops $i && [ "$(xenstore-read /test/ops)" = $i ] || return 1; done; }

echo "==== dom0 through our daemon"
check "our daemon serves dom0's kernel ring" grep "serving dom0's kernel ring" $LOG
check "write" xenstore-write /test/key hello
check "read" sh -c '[ "$(xenstore-read /test/key)" = hello ]'
check "ls /test" xenstore-ls /test
check "rm" sh -c 'xenstore-rm /test/key && ! xenstore-exists /test/key'
check "history (only our daemon has it)" xenstore-control history 3
sockets_before=$(grep -c "connection [0-9]* as domain 0" $LOG)
check "dom0's kernel ring: write via /dev/xen/xenbus" env XENSTORED_PATH=/dev/xen/xenbus xenstore-write /test/ring via-kernel-ring
check "... which opened no socket connection" test "$(grep -c "connection [0-9]* as domain 0" $LOG)" = "$sockets_before"
check "dom0's kernel ring: read back via the socket" sh -c '[ "$(xenstore-read /test/ring)" = via-kernel-ring ]'
check "xen-init-dom0 wrote dom0's name" sh -c '[ "$(xenstore-read /local/domain/0/name)" = Domain-0 ]'
check "xl list" xl list
domains_before=$(xenstore-list /local/domain | tr '\n' ' ')

echo "==== PV guest talking Xenstore over its ring (xsguest mode=good)"
xenstore-watch @releaseDomain > /tmp/release-events 2>&1 &
WATCHER=$!
xenstore-watch @introduceDomain > /tmp/introduce-events 2>&1 &
INTRO_WATCHER=$!
check "xl create xsguest-good" xl_create /etc/xen/xsguest-good.cfg
GOOD=$(xl domid xsguest-good 2>/dev/null)
check "guest $GOOD: its own reads, writes, watch, rm, EACCES all passed (data/result)" wait_value /local/domain/$GOOD/data/result PASS 30
check "dom0 sees the guest's data/watched" sh -c "[ \"\$(xenstore-read /local/domain/$GOOD/data/watched)\" = 1 ]"
check "xl list shows xsguest-good" sh -c 'xl list | grep xsguest-good'
check "xl destroy xsguest-good" xl destroy xsguest-good
check "xsguest-good gone, no zombie" wait_gone xsguest-good
check "its /local/domain/$GOOD node is removed" sh -c "! xenstore-exists /local/domain/$GOOD"
check "daemon released its ring" grep "domain $GOOD: released its ring" $LOG

echo "==== tiny-pv (powers itself off) and tiny-pvh (PVH)"
for g in tiny-pv tiny-pvh; do
    check "xl create $g" xl_create /etc/xen/$g.cfg
    check "$g gone after poweroff (@releaseDomain -> xl destroys it)" wait_gone $g
done
check "tiny-pvh printed on its console" grep -h "hello from pvh guest" /var/log/xen/console/guest-tiny-pvh.log

echo "==== PVH guest talking Xenstore over its ring (xsguest-pvh mode=good; powers off when done)"
check "xl create xsguest-pvh" xl_create /etc/xen/xsguest-pvh.cfg
check "xsguest-pvh: its reads, writes, watch, rm, EACCES all passed (console)" wait_console xsguest-pvh "RESULT PASS" 40
check "xsguest-pvh gone after poweroff" wait_gone xsguest-pvh
sleep 0.3
kill $WATCHER $INTRO_WATCHER 2>/dev/null
check "@introduceDomain fired for the four guests" test "$(grep -c introduceDomain /tmp/introduce-events)" -ge 5
check "@releaseDomain fired for the four guests" test "$(grep -c releaseDomain /tmp/release-events)" -ge 5
check "all guest nodes removed" test "$(xenstore-list /local/domain | tr '\n' ' ')" = "$domains_before"

echo "==== malicious guests next to a good one"
start=$(now)
check "dom0 write/read x20 before the flood" dom0_ops
end=$(now)
baseline=$(awk "BEGIN { print $end - $start }")
check "xl create xsguest-flood" xl_create /etc/xen/xsguest-flood.cfg
FLOOD=$(xl domid xsguest-flood 2>/dev/null)
check "flood guest started" wait_value /local/domain/$FLOOD/data/result flooding 30
start=$(now)
check "dom0 write/read x20 during the flood" dom0_ops
end=$(now)
during=$(awk "BEGIN { print $end - $start }")
check "... took $during s, without the flood $baseline s (limit: 4 x + 3 s; the flooder also takes CPU from dom0)" awk "BEGIN { exit !($during < 4 * $baseline + 3) }"
check "xl create xsguest-good (during the flood)" xl_create /etc/xen/xsguest-good.cfg
GOOD=$(xl domid xsguest-good 2>/dev/null)
check "good guest $GOOD passes during the flood" wait_value /local/domain/$GOOD/data/result PASS 30
check "flood guest is served (throttled, not stopped)" xenstore-read /local/domain/$FLOOD/data/flood
check "xl create xsguest-badidx" xl_create /etc/xen/xsguest-badidx.cfg
BAD=$(xl domid xsguest-badidx 2>/dev/null)
check "bad-index guest got XENSTORE_ERROR_RINGIDX and reconnected" wait_value /local/domain/$BAD/data/result recovered-after-badidx 30
check "daemon logged the corrupt indexes" grep "domain $BAD: corrupt ring indexes" $LOG
check "xl create xsguest-huge" xl_create /etc/xen/xsguest-huge.cfg
HUGE=$(xl domid xsguest-huge 2>/dev/null)
check "huge-packet guest got XENSTORE_ERROR_PROTO and reconnected" wait_value /local/domain/$HUGE/data/result recovered-after-huge 30
check "daemon logged the protocol violation" grep "domain $HUGE: protocol violation" $LOG
check "dom0 still fine" sh -c 'xenstore-write /test/after ok && [ "$(xenstore-read /test/after)" = ok ]'
check "our daemon still running" sh -c 'kill -0 $(cat /run/xenstored.pid)'
check "xl list" xl list
for g in xsguest-flood xsguest-badidx xsguest-huge xsguest-good; do
    check "xl destroy $g" xl destroy $g
done
for g in xsguest-flood xsguest-badidx xsguest-huge xsguest-good; do
    check "$g gone" wait_gone $g
done
check "all guest nodes removed" test "$(xenstore-list /local/domain | tr '\n' ' ')" = "$domains_before"
check "daemon: every guest ring attached was released" test "$(grep -c 'serving its ring' $LOG)" = "$(grep -c 'released its ring' $LOG)"
check "daemon: no mapping, binding or unmapping failure" sh -c "! grep cannot $LOG"

kill $WATCHDOG 2>/dev/null
dump
exit $rc
