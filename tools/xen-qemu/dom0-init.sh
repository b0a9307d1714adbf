#!/bin/busybox sh
# dom0-init.sh: the /init of the harness's dom0 initramfs: starts the Xen toolstack, runs the test script and reboots.
#
# Steps: busybox applets, /proc /sys /dev /run /tmp, the Xen driver modules (those the kernel has as
# modules; ARM's kernel builds some in), xenfs on /proc/xen, then a Xenstore (see below), xen-init-dom0,
# xenconsoled, the test script, and `reboot -f`: Xen then resets the machine, which ends `qemu -no-reboot`.
#
# Kernel command-line words it reads (dom0's arguments, DOM0_ARGS of tools/xen-qemu/boot.sh):
#   xenqemu.xenstore=daemon           /usr/lib/xen-4.17/bin/xenstored in dom0 (the default; a payload may
#                                     replace that file, as `make test-xen-dom0` does with our daemon)
#   xenqemu.xenstore=domain:KERNEL    KERNEL as the xenstore stub domain through init-xenstore-domain
#   xenqemu.test=SCRIPT               the test to run (default /test.sh; without one: xl info and xl list)
# Words of the form NAME=VALUE without a dot reach this script as environment variables (the kernel hands
# them to init): XSDOM_TIMEOUT (s, default 30), XSDOM_MEM (MiB, default 16), XSDOM_ARGS (extra
# init-xenstore-domain arguments) and XSDOM_PARAM (words for the stub's own command line, separated by
# "+": init-xenstore-domain takes one --param; QEMU splits -append at commas) for the stub domain, and whatever the test script reads.
#
# Output markers, parsed on the host from the serial log:
#   @@T <dom0 uptime> <event>     progress stamps
#   @@XENTEST PASS                the test script exited 0
#   @@XENTEST FAIL: <why>         a step or the test failed
#   @@XENTEST END                 the last line before the reboot
/bin/busybox --install -s /bin
export PATH=/sbin:/bin:/usr/lib/xen-4.17/bin

stamp() { echo "@@T $(cut -d' ' -f1 /proc/uptime) $*"; }
finish() { sync; echo "@@XENTEST END"; reboot -f; sleep 10; }
fail() { echo "@@XENTEST FAIL: $*"; finish; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/xen /run/xenstored /var/lib/xenstored
stamp "dom0 /init start"

modules=/lib/modules/$(uname -r)
for module in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do
    [ -e "$modules/$module.ko" ] || continue        # built into the kernel
    insmod "$modules/$module.ko" || fail "insmod $module"
done
mount -t xenfs xenfs /proc/xen || fail "mount xenfs on /proc/xen"
stamp "modules loaded"

xenstore=daemon
test_script=/test.sh
for word in $(cat /proc/cmdline); do
    case $word in
        xenqemu.xenstore=*) xenstore=${word#xenqemu.xenstore=} ;;
        xenqemu.test=*) test_script=${word#xenqemu.test=} ;;
    esac
done
case $xenstore in
    daemon)
        /usr/lib/xen-4.17/bin/xenstored --pid-file /run/xenstored.pid || fail "xenstored did not start"
        stamp "xenstored started" ;;
    domain:*)
        # Builds the stub domain, tells Xen and dom0's kernel where Xenstore is now, starts it, and
        # returns once a first request through it got its reply.
        timeout "${XSDOM_TIMEOUT:-30}" init-xenstore-domain --kernel "${xenstore#domain:}" \
            --memory "${XSDOM_MEM:-16}" ${XSDOM_ARGS:-} ${XSDOM_PARAM:+--param "$(echo "$XSDOM_PARAM" | tr + ' ')"} \
            || fail "init-xenstore-domain exited with $?"
        stamp "xenstore domain up" ;;
    *) fail "unknown xenqemu.xenstore=$xenstore" ;;
esac
xen-init-dom0 || fail "xen-init-dom0"
xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console \
    --timestamp=none || fail "xenconsoled did not start"
stamp "xenconsoled started"

if [ -x "$test_script" ]; then
    if "$test_script"; then echo "@@XENTEST PASS"; else echo "@@XENTEST FAIL: $test_script exited with $?"; fi
elif xl info && xl list; then
    echo "@@XENTEST PASS"
else
    echo "@@XENTEST FAIL: xl info / xl list"
fi
stamp "tests done"
finish
