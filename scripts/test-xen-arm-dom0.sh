#!/bin/sh
# Runs inside the arm32 dom0 (as /test.sh of the Xen-in-QEMU harness): starts our image with xl create as an
# ordinary guest (`--vchan`), connects vchan-socket-proxy to the vchan it offers, and runs the real Xenstore
# clients through it (XENSTORED_PATH = the proxy's socket): write/read/ls/list/rm, a watch, and
# xenstore-control history (only our daemon has it). rc 0 = pass.
rc=0
t() { echo "@@T $(cut -d' ' -f1 /proc/uptime) $*"; }
check() { # check <description> <command...>
    what=$1; shift
    # timeout: a hung client fails its check instead of the whole run
    if out=$(timeout 30 "$@" 2>&1); then echo "@@XS ok   $what: $out"; else echo "@@XS FAIL $what: $out"; rc=1; fi
}
log=/var/log/xen/console/guest-xenstore-arm.log
t "xl create xenstore-arm"
xl create /etc/xen/xenstore-arm.cfg || rc=1
t "xl create returned"
for i in $(seq 1 300); do grep -q 'vchan offered\|SELFTEST: FAIL\|CRASH\|exit [0-9]' $log 2>/dev/null && break; sleep 0.1; done
t "image ready (or timeout)"
check "self-test passed in the image" grep -q 'SELFTEST: PASS' $log
domid=$(xl domid xenstore-arm)
dir=/local/domain/$domid/data/xenstore-vchan
check "vchan published by the image" sh -c "xenstore-read $dir/ring-ref && xenstore-read $dir/event-channel"
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
t "clients done"
unset XENSTORED_PATH
check "dom0's own xenstored does not have /test/key" sh -c '! xenstore-read /test/key'
# Restart: the image comes back and serves again. Its store starts empty: the history is in memory
# (no disk in the image yet), so surviving a restart is not checked here but reported.
kill %1 2>/dev/null
t "restart: xl destroy + xl create"
check "xl destroy" xl destroy xenstore-arm
check "xl create again" xl create /etc/xen/xenstore-arm.cfg
for i in $(seq 1 300); do [ "$(grep -c 'vchan offered' $log)" -ge 2 ] && break; sleep 0.1; done
domid=$(xl domid xenstore-arm)
dir=/local/domain/$domid/data/xenstore-vchan
vchan-socket-proxy "$domid" "$dir" /run/xs-arm2.sock >> /tmp/proxy.log 2>&1 &
for i in $(seq 1 50); do [ -S /run/xs-arm2.sock ] && break; sleep 0.1; done
export XENSTORED_PATH=/run/xs-arm2.sock
check "restarted image serves: write + read" sh -c 'xenstore-write /test/after restart && [ "$(xenstore-read /test/after)" = restart ]'
echo "@@XS note /test/key after the restart: $(xenstore-read /test/key 2>&1) (history is in memory; restart survival not implemented)"
echo "@@XS note history after the restart: $(xenstore-control history 10 | wc -l) commits"
unset XENSTORED_PATH
t "restart checked"
xl list
kill %2 2>/dev/null
cat /tmp/proxy.log
for f in /var/log/xen/console/*; do
    [ -e "$f" ] || continue
    echo "---- $f"; cat "$f"
done
exit $rc
