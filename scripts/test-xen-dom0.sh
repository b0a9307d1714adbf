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

check "write" xenstore-write /test/key hello
check "read" xenstore-read /test/key
check "ls /test" xenstore-ls /test
check "list /local/domain" xenstore-list /local/domain
check "rm" xenstore-rm /test/key
check "xl list" xl list
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
check "xl list at the end" xl list
for f in /var/log/xen/console/*; do
    [ -e "$f" ] || continue
    echo "---- $f"; cat "$f"
done
exit $rc
