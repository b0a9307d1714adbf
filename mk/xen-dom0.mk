# mk/xen-dom0.mk: our daemon as dom0's xenstored on real Xen 4.17 in QEMU (issue 9).
# Included from the top-level Makefile:  include mk/xen-dom0.mk
#
#   make xenstored-static   xenstored with the Swift runtime linked in (.build-static/release/xenstored);
#                           glibc, libstdc++, zlib and Xen's libraries stay shared (the dom0 initramfs carries them)
#   make xsguest            build/xsguest/xsguest.elf and xsguest-pvh.elf: the tiny PV and PVH guest
#                           that talks Xenstore over its ring (tools/xen-guests/xsguest)
#   make test-xen-dom0      boot Xen + dom0 with `xenstored --xen` instead of C xenstored and run
#                           scripts/test-xen-daemon-dom0.sh there (scripts/test-xen-daemon.sh)

XEN_DOM0_SCRATCH := .build-static
XEN_DOM0_BINARY  := $(XEN_DOM0_SCRATCH)/release/xenstored
XSGUEST_DIR      := build/xsguest

.PHONY: xenstored-static xsguest test-xen-dom0
xenstored-static:
	@scripts/install-packages.sh $(BUILD_PACKAGES)
	$(SWIFT) build -c release --static-swift-stdlib --scratch-path $(XEN_DOM0_SCRATCH) --product xenstored

xsguest:
	@mkdir -p $(XSGUEST_DIR)
	$(MAKE) -s -C tools/xen-guests/xsguest OUT=$(CURDIR)/$(XSGUEST_DIR)

test-xen-dom0: xenstored-static xsguest
	scripts/test-xen-daemon.sh $(XEN_DOM0_BINARY) $(XSGUEST_DIR)/xsguest.elf $(XSGUEST_DIR)/xsguest-pvh.elf
