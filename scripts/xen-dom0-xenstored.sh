#!/bin/sh
# Stands in for /usr/lib/xen-4.17/bin/xenstored in the dom0 of `make test-xen-dom0`: the harness's
# /init runs "xenstored --pid-file FILE" and expects a daemon; this starts ours with --xen instead
# (log in /var/log/xenstored.log) and returns once its socket exists, as C xenstored does.
/usr/sbin/xenstored-swift --xen --verbose "$@" > /var/log/xenstored.log 2>&1 &
for i in $(seq 1 150); do
    [ -S /run/xenstored/socket ] && exit 0
    kill -0 $! 2>/dev/null || break
    sleep 0.1
done
echo "xenstored-swift did not come up:"
cat /var/log/xenstored.log
exit 1
