#!/bin/sh
# Runs inside the arm32 dom0 (as /test.sh of the Xen-in-QEMU harness): starts our image with xl create and
# checks that it booted under Xen on ARM (self-test in its console log). rc 0 = pass.
rc=0
t() { echo "@@T $(cut -d' ' -f1 /proc/uptime) $*"; }
log=/var/log/xen/console/guest-xenstore-arm.log
t "xl create xenstore-arm"
xl create /etc/xen/xenstore-arm.cfg || rc=1
t "xl create returned"
for i in $(seq 1 300); do grep -q 'SELFTEST: PASS\|SELFTEST: FAIL\|CRASH' $log 2>/dev/null && break; sleep 0.1; done
t "self-test finished (or timeout)"
grep -q 'SELFTEST: PASS' $log || rc=1
xl list
for f in /var/log/xen/console/*; do
    [ -e "$f" ] || continue
    echo "---- $f"; cat "$f"
done
exit $rc
