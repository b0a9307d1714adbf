#!/bin/sh
# Runs inside dom0 (as /test.sh of the Xen-in-QEMU harness, put there by scripts/soak-xen.sh) for one
# soak run of our stub domain: test-xenstore random mode, create/destroy cycles of PV and PVH guests
# (every cycle maps and unmaps a ring), then the store filled to 90 % of the image's heap and one more
# guest created on top. Every step is bounded by `timeout`, so a dead stub domain fails the run
# instead of hanging it. rc 0 = pass; "@@SOAK ..." lines say what happened.
rc=0
fail() { echo "@@SOAK FAIL $*"; rc=1; }
RANDOM_SECONDS=${SOAK_RANDOM_SECONDS:-60}
CYCLES=${SOAK_CYCLES:-50}
FILL_PERCENT=${SOAK_FILL_PERCENT:-90}
STEP_TIMEOUT=120

# heap_kib <field>: a number from the image's memory report ("heap in use KiB: N", "heap size KiB: N")
heap_kib() { timeout 30 xenstore-control memreport 2>/dev/null | sed -n "s/^heap $1 KiB: \([0-9]*\).*/\1/p"; }

# guest_once <name>: xl create; the tiny guest prints a line and powers off, xl destroys it; its
# /local/domain node must go. Returns non-zero (and says why) otherwise.
guest_once() {
    name=$1
    if ! out=$(timeout $STEP_TIMEOUT xl create /etc/xen/$name.cfg 2>&1); then
        echo "xl create $name: $out"; return 1
    fi
    for i in $(seq 1 150); do timeout 30 xl list | grep -q "$name\|(null)" || break; sleep 0.2; done
    if timeout 30 xl list | grep -q "$name\|(null)"; then echo "$name still listed: $(xl list)"; return 1; fi
    now=$(timeout 30 xenstore-list /local/domain | tr '\n' ' ')
    if [ "$now" != "$domains_before" ]; then echo "/local/domain is '$now', was '$domains_before'"; return 1; fi
}

# Stall watchdog: when the store stops answering, dom0's clients block inside the kernel's xenbus
# where `timeout` cannot end them, and the run would hang silently until QEMU's timeout. Each step
# touches /tmp/soak-progress; after STALL_SECONDS without progress the watchdog asks Xen (hypercalls
# only, no Xenstore) to dump every domain's state and every vCPU's registers on its console ('q',
# 'd'), where the host's log keeps them, and prints the stub domain's console as xenconsoled got it.
STALL_SECONDS=${SOAK_STALL_SECONDS:-240}
touch /tmp/soak-progress
progress() { touch /tmp/soak-progress; }
(
    while sleep 30; do
        age=$(( $(date +%s) - $(stat -c %Y /tmp/soak-progress) ))
        if [ "$age" -ge "$STALL_SECONDS" ]; then
            echo "@@SOAK STALL no progress for $age s: Xen's view follows ('q': domains, 'd': vCPU registers)"
            timeout 20 xl debug-keys q; timeout 20 xl debug-keys d
            sleep 5
            echo "@@SOAK STALL the consoles xenconsoled logged (the stub domain's among them):"
            tail -n 40 /var/log/xen/console/* 2>/dev/null
            progress
        fi
    done
) &
watchdog=$!

# SOAK_DISK=1: the stub (booted with --block) gets a disk first, the operator's way; every commit of
# the run is then persisted on it.
if [ -n "${SOAK_DISK:-}" ]; then
    dd if=/dev/zero of=/tmp/xs-disk.img bs=1M count=64 2>/dev/null
    stub=$(xl domid Xenstore 2>/dev/null || echo 1)
    timeout 60 xenstore-stubdom-disk /tmp/xs-disk.img "$stub" > /dev/null || fail "xenstore-stubdom-disk"
    for i in $(seq 1 300); do [ "$(timeout 30 xenstore-read /local/domain/$stub/device/vbd/51712/state 2>/dev/null)" = 4 ] && break; sleep 0.2; done
    [ "$(timeout 30 xenstore-read /local/domain/$stub/device/vbd/51712/state)" = 4 ] && echo "@@SOAK ok the stub's disk connected" || fail "the stub's disk did not connect"
fi

domains_before=$(timeout 30 xenstore-list /local/domain | tr '\n' ' ')
echo "@@SOAK info heap at start: $(heap_kib 'in use') KiB in use of $(heap_kib size)"

# 1. Xen's test-xenstore in random mode (2000-byte values, transactions, watches)
if out=$(timeout $((RANDOM_SECONDS + STEP_TIMEOUT)) /usr/lib/xen-4.17/bin/test-xenstore -r "$RANDOM_SECONDS" 2>&1); then
    echo "@@SOAK ok test-xenstore random mode, $RANDOM_SECONDS s"
else
    fail "test-xenstore random mode: $(printf '%s' "$out" | tail -n 3)"
fi
progress

# 2. create/destroy cycles of a PV and a PVH guest
cycle=1
while [ $cycle -le "$CYCLES" ] && [ $rc -eq 0 ]; do
    for guest in tiny-pv tiny-pvh; do
        why=$(guest_once $guest) || { fail "cycle $cycle: $why"; break; }
        progress
    done
    # a line now and then: the PV stub's own lines do not reach the serial console, and the
    # host's stall watch takes a long silence for a stopped machine
    [ $((cycle % 5)) -ne 0 ] || echo "@@SOAK info cycle $cycle of $CYCLES done"
    cycle=$((cycle + 1))
done
[ $rc -eq 0 ] && echo "@@SOAK ok $CYCLES create/destroy cycles of tiny-pv and tiny-pvh"
echo "@@SOAK info heap after the cycles: $(heap_kib 'in use') KiB in use, reach $(heap_kib reach) KiB"

# 3. fill the store with 2000-byte values until the heap is FILL_PERCENT % used, then create a guest
if [ $rc -eq 0 ]; then
    value=$(head -c 2000 /dev/zero | tr '\0' v)
    size=$(heap_kib size)
    used=$(heap_kib 'in use')
    batch=0
    while [ -n "$used" ] && [ -n "$size" ] && [ $((used * 100)) -lt $((size * FILL_PERCENT)) ] && [ $batch -lt 5000 ]; do
        set --
        for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do set -- "$@" /soak/fill/$batch/$i "$value"; done
        timeout 60 xenstore-write "$@" || { fail "fill: xenstore-write batch $batch"; break; }
        batch=$((batch + 1))
        used=$(heap_kib 'in use')
        progress
        # a line now and then: the host's stall watch takes a long silence for a stopped machine
        [ $((batch % 20)) -ne 0 ] || echo "@@SOAK info fill: $((batch * 20)) values, $used KiB of $size KiB in use"
    done
    if [ $rc -eq 0 ] && [ -n "$used" ] && [ $((used * 100)) -ge $((size * FILL_PERCENT)) ]; then
        echo "@@SOAK ok store filled: $used KiB of $size KiB heap in use ($((batch * 20)) values of 2000 bytes)"
        why=$(guest_once tiny-pvh) || fail "guest on the full store: $why"
        [ $rc -eq 0 ] && echo "@@SOAK ok tiny-pvh created and destroyed on the full store"
        check=$(timeout 30 xenstore-read /soak/fill/0/1 | wc -c)
        [ "$check" -eq 2001 ] || fail "read back after the fill: $check bytes"
    elif [ $rc -eq 0 ]; then
        fail "fill: heap at ${used:-?} KiB of ${size:-?} after $batch batches"
    fi
fi
echo "@@SOAK info memreport at the end: $(timeout 30 xenstore-control memreport | tr '\n' ' ')"
# the consoles of the stub domain and the guests (test-xen.sh looks for the PV image's SELFTEST line there)
for f in /var/log/xen/console/*; do
    [ -e "$f" ] || continue
    echo "---- $f"; cat "$f"
done
kill $watchdog 2>/dev/null
[ $rc -eq 0 ] && echo "@@SOAK PASS" || echo "@@SOAK FAIL (see above)"
exit $rc
