#!/bin/sh
# Runs inside dom0 (as /test.sh of the Xen-in-QEMU harness) once our stub domain serves Xenstore:
# client operations through dom0's ring, xl create of a tiny PV guest (ownership before INTRODUCE,
# @releaseDomain, no zombie, its nodes cleaned up), then the console logs. rc 0 = pass.
rc=0
check() { # check <description> <command...>
    what=$1; shift
    if out=$("$@" 2>&1); then echo "@@XS ok   $what: $out"; else echo "@@XS FAIL $what: $out"; rc=1; fi
    printf '%s\n' "$out" > /tmp/last-check.log   # the last check's output, read by later checks
}
check "write" xenstore-write /test/key hello
check "read" xenstore-read /test/key
check "ls /test" xenstore-ls /test
check "list /local/domain" xenstore-list /local/domain
check "rm" xenstore-rm /test/key
check "xl list" xl list
domains_before=$(xenstore-list /local/domain | tr '\n' ' ')
if [ -e /etc/xen/tiny-pv.cfg ]; then
    # the tiny guest prints a line and powers off; xl's monitor must see @releaseDomain and destroy it
    xenstore-watch @releaseDomain > /tmp/release-events 2>&1 &   # first line: the initial event
    check "xl create tiny-pv" xl create /etc/xen/tiny-pv.cfg
    # libxl makes the new domain the owner of its nodes before INTRODUCE: the image asks Xen
    # whether that domain exists, so no "set permissions failed" may appear.
    check "xl create without libxl errors" sh -c '! grep -q "set permissions failed" /tmp/last-check.log'
    for i in $(seq 1 50); do xl list | grep -q tiny-pv || break; sleep 0.2; done
    # @releaseDomain fires at shutdown (xl destroys the guest) and again when it is dying
    # (xenconsoled lets go of its console), so no "(null)" zombie may stay behind.
    for i in $(seq 1 50); do xl list | grep -q "tiny-pv\|(null)" || break; sleep 0.2; done
    check "xl list (guest gone)" sh -c 'xl list; ! xl list | grep -q "tiny-pv\|(null)"'
    sleep 0.5; kill $! 2>/dev/null
    check "@releaseDomain fired after the guest" test "$(grep -c releaseDomain /tmp/release-events)" -ge 2
    check "the guest's /local/domain node is gone" test "$(xenstore-list /local/domain | tr '\n' ' ')" = "$domains_before"
fi
for f in /var/log/xen/console/*; do
    [ -e "$f" ] || continue
    echo "---- $f"; cat "$f"
done
exit $rc
