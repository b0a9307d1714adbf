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
# wait_value <path> <value> <tenths>: bounded wait until a node has the value
wait_value() {
    i=0
    while [ $i -lt "$3" ]; do
        [ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    echo "$1 = '$(xenstore-read "$1" 2>&1)', wanted '$2'"
    return 1
}
# wait_gone <name>: bounded wait until xl list no longer shows the domain (nor a nameless zombie)
wait_gone() {
    for i in $(seq 1 100); do xl list | grep -q "^$1 \|(null)" || return 0; sleep 0.1; done
    xl list; return 1
}
now() { cut -d' ' -f1 /proc/uptime; }

echo "==== dom0 through our daemon"
check "our daemon serves dom0's kernel ring" grep "serving dom0's kernel ring" $LOG
check "write" xenstore-write /test/key hello
check "read" sh -c '[ "$(xenstore-read /test/key)" = hello ]'
check "ls /test" xenstore-ls /test
check "rm" sh -c 'xenstore-rm /test/key && ! xenstore-exists /test/key'
check "history (only our daemon has it)" xenstore-control history 3
check "dom0's kernel ring: write via /dev/xen/xenbus" env XENSTORED_PATH=/dev/xen/xenbus xenstore-write /test/ring via-kernel-ring
check "dom0's kernel ring: read back via the socket" sh -c '[ "$(xenstore-read /test/ring)" = via-kernel-ring ]'
check "xen-init-dom0 wrote dom0's name" sh -c '[ "$(xenstore-read /local/domain/0/name)" = Domain-0 ]'
check "xl list" xl list
domains_before=$(xenstore-list /local/domain | tr '\n' ' ')

echo "==== PV guest talking Xenstore over its ring (xsguest mode=good)"
xenstore-watch @releaseDomain > /tmp/release-events 2>&1 &
WATCHER=$!
check "xl create xsguest-good" xl create /etc/xen/xsguest-good.cfg
GOOD=$(xl domid xsguest-good 2>/dev/null)
check "guest $GOOD: its own reads, writes, watch, rm, EACCES all passed (data/result)" wait_value /local/domain/$GOOD/data/result PASS 300
check "dom0 sees the guest's data/watched" sh -c "[ \"\$(xenstore-read /local/domain/$GOOD/data/watched)\" = 1 ]"
check "xl list shows xsguest-good" sh -c 'xl list | grep xsguest-good'
check "xl destroy xsguest-good" xl destroy xsguest-good
check "xsguest-good gone, no zombie" wait_gone xsguest-good
check "its /local/domain/$GOOD node is removed" sh -c "! xenstore-exists /local/domain/$GOOD"
check "daemon released its ring" grep "domain $GOOD: released its ring" $LOG

echo "==== tiny-pv (powers itself off) and tiny-pvh (PVH)"
for g in tiny-pv tiny-pvh; do
    check "xl create $g" xl create /etc/xen/$g.cfg
    check "$g gone after poweroff (@releaseDomain -> xl destroys it)" wait_gone $g
done
check "tiny-pvh printed on its console" grep -h "hello from pvh guest" /var/log/xen/console/guest-tiny-pvh.log
sleep 0.3
kill $WATCHER 2>/dev/null
check "@releaseDomain fired for the three guests" test "$(grep -c releaseDomain /tmp/release-events)" -ge 4
check "all guest nodes removed" test "$(xenstore-list /local/domain | tr '\n' ' ')" = "$domains_before"

echo "==== malicious guests next to a good one"
check "xl create xsguest-flood" xl create /etc/xen/xsguest-flood.cfg
FLOOD=$(xl domid xsguest-flood 2>/dev/null)
check "flood guest started" wait_value /local/domain/$FLOOD/data/result flooding 300
start=$(now)
check "dom0 write/read x20 during the flood" sh -c 'for i in $(seq 1 20); do xenstore-write /test/flood-check $i && [ "$(xenstore-read /test/flood-check)" = $i ] || exit 1; done'
end=$(now)
check "... took under 10 s ($start -> $end)" awk "BEGIN { exit !($end - $start < 10) }"
check "xl create xsguest-good (during the flood)" xl create /etc/xen/xsguest-good.cfg
GOOD=$(xl domid xsguest-good 2>/dev/null)
check "good guest $GOOD passes during the flood" wait_value /local/domain/$GOOD/data/result PASS 300
check "flood guest is served (throttled, not stopped)" xenstore-read /local/domain/$FLOOD/data/flood
check "xl create xsguest-badidx" xl create /etc/xen/xsguest-badidx.cfg
BAD=$(xl domid xsguest-badidx 2>/dev/null)
check "bad-index guest got XENSTORE_ERROR_RINGIDX and reconnected" wait_value /local/domain/$BAD/data/result recovered-after-badidx 300
check "daemon logged the corrupt indexes" grep "domain $BAD: corrupt ring indexes" $LOG
check "xl create xsguest-huge" xl create /etc/xen/xsguest-huge.cfg
HUGE=$(xl domid xsguest-huge 2>/dev/null)
check "huge-packet guest got XENSTORE_ERROR_PROTO and reconnected" wait_value /local/domain/$HUGE/data/result recovered-after-huge 300
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

echo "==== our daemon's log (connection lines left out)"
grep -v "connection [0-9]* \(as domain\|closed\)" $LOG | tail -40
for f in /var/log/xen/console/*; do
    [ -e "$f" ] || continue
    echo "---- $f"; tail -25 "$f"
done
exit $rc
