# mk/image.mk: the x86_64 stub-domain images (Embedded Swift core + C runtime) and their QEMU smoke test;
# the arm32 image is in mk/image-arm32.mk (included at the end).
# Included from the top-level Makefile:  include mk/image.mk
#
#   make image           build/xenstore-stubdom-x86_64-pvh and build/xenstore-stubdom-x86_64-pv, with section sizes
#   make image ARCH=arm32  build/xenstore-stubdom-arm32 (zImage) and its ELF instead (mk/image-arm32.mk)
#   make smoke-x86       boot the PVH image in QEMU (microvm, no Xen); pass = SELFTEST: PASS and guest exit code 0
#   make smoke-x86-trap  same, with a deliberate Swift trap: pass = crash reported and exit code 106
#   make smoke-x86-overflow / smoke-x86-badaccess   a stack overflow (exit 98) / a read of page 0 (exit 114)
#   make smoke-x86-restart  a crash restarts in place (globals and heap afresh); a crash loop ends in exit 99
#   make test-xen        boot real Xen + dom0 in QEMU and run both images as the xenstore stub domain
#   make soak-xen RUNS=N boot each image N times under Xen in QEMU with a long dom0 workload (not in make test)
#                        (scripts/test-xen.sh; downloads the Xen and kernel packages once, ~1 min per image)
#   V=1                  show the full compiler command lines
#
# The two images share every object except the Xen ELF notes: init-xenstore-domain boots an image as
# PVH whenever it carries a PHYS32_ENTRY note, so the PV image must not have one.
# IMAGE_SWIFT_LAYOUT=single (default) compiles core + glue as ONE Embedded module; =modules compiles
# the core modules separately (as scripts/embedded-check.sh does) and links their objects.

IMAGE_TOOLCHAIN ?= $(dir $(shell command -v swiftc))
IMAGE_SWIFTC    ?= $(IMAGE_TOOLCHAIN)swiftc
IMAGE_CC        ?= $(IMAGE_TOOLCHAIN)clang
IMAGE_LD        ?= $(IMAGE_TOOLCHAIN)ld.lld
IMAGE_SIZE      ?= size
IMAGE_QEMU      ?= qemu-system-x86_64
IMAGE_OPT       ?= -O
IMAGE_SWIFT_LAYOUT ?= single
IMAGE_HEAP_PAGES ?= 1024
IMAGE_Q := $(if $(V),,@)

IMAGE_DIR  := build/image/x86_64
IMAGE_PVH  := build/xenstore-stubdom-x86_64-pvh
IMAGE_PV   := build/xenstore-stubdom-x86_64-pv
# The core modules in dependency order: one list for the image, scripts/embedded-check.sh and scripts/fuzz.sh.
IMAGE_CORE_MODULES := $(shell cat mk/core-modules.list)
IMAGE_CORE_SRCS := $(foreach m,$(IMAGE_CORE_MODULES),$(wildcard Sources/$(m)/*.swift))
IMAGE_GLUE_SRCS := $(wildcard Sources/XenstoredImage/*.swift)
IMAGE_RUNTIME_HDRS := $(wildcard Runtime/include/*.h Runtime/include/*/*.h Runtime/arch/x86_64/*.h) Runtime/include/module.modulemap

IMAGE_SWIFTFLAGS := -target x86_64-unknown-none-elf -enable-experimental-feature Embedded \
    -wmo $(IMAGE_OPT) -parse-as-library -Xfrontend -disable-stack-protector \
    -Xfrontend -function-sections -Xcc -mno-red-zone -I Runtime/include
IMAGE_CFLAGS := --target=x86_64-unknown-none-elf -ffreestanding -fno-builtin -nostdlib \
    -fno-stack-protector -mno-red-zone -fno-pic -fno-omit-frame-pointer -Os -Wall -Wextra -Werror \
    -ffunction-sections -fdata-sections -IRuntime/include -IRuntime/arch/x86_64 \
    -idirafter /usr/include -DMM_HEAP_PAGES=$(IMAGE_HEAP_PAGES)
IMAGE_LDFLAGS := -static -nostdlib --gc-sections --orphan-handling=error -T Linker/x86_64.ld

# The facilities shared with arm32 (Runtime/*.c, Runtime/lib/*.c) plus this architecture's files.
IMAGE_RUNTIME_SRCS := $(wildcard Runtime/*.c Runtime/lib/*.c) \
    Runtime/arch/x86_64/setup.c Runtime/arch/x86_64/traps.c Runtime/arch/x86_64/console.c \
    Runtime/arch/x86_64/time.c Runtime/arch/x86_64/hypercalls-x86.c \
    Runtime/arch/x86_64/boot.S Runtime/arch/x86_64/traps.S
# objects mirror the source tree: Runtime/console.c and Runtime/arch/x86_64/console.c do not collide
IMAGE_RUNTIME_OBJS := $(patsubst %,$(IMAGE_DIR)/rt/%.o,$(IMAGE_RUNTIME_SRCS))

$(IMAGE_DIR)/rt/%.c.o: %.c $(IMAGE_RUNTIME_HDRS) mk/image.mk
	@echo "  CC      $<"
	@mkdir -p $(@D)
	$(IMAGE_Q)$(IMAGE_CC) $(IMAGE_CFLAGS) -c $< -o $@
$(IMAGE_DIR)/rt/%.S.o: %.S $(IMAGE_RUNTIME_HDRS) mk/image.mk
	@echo "  AS      $<"
	@mkdir -p $(@D)
	$(IMAGE_Q)$(IMAGE_CC) $(IMAGE_CFLAGS) -c $< -o $@

# ---- Swift: layout "single" — the core's `import XenstoreWire` etc. resolve to empty shim modules,
# so the core and the glue compile as one module and whole-module optimization sees everything.
$(IMAGE_DIR)/shims/%.swiftmodule: | $(IMAGE_DIR)/shims
	@echo "  SHIM    $*"
	$(IMAGE_Q): > $(IMAGE_DIR)/shims/empty.swift
	$(IMAGE_Q)$(IMAGE_SWIFTC) $(IMAGE_SWIFTFLAGS) -module-name $* -emit-module -emit-module-path $@ $(IMAGE_DIR)/shims/empty.swift

$(IMAGE_DIR)/single/swift.o: $(IMAGE_CORE_SRCS) $(IMAGE_GLUE_SRCS) $(IMAGE_RUNTIME_HDRS) \
        $(foreach m,$(IMAGE_CORE_MODULES),$(IMAGE_DIR)/shims/$(m).swiftmodule) mk/image.mk | $(IMAGE_DIR)/single
	@echo "  SWIFTC  core + Sources/XenstoredImage (one Embedded module)"
	$(IMAGE_Q)$(IMAGE_SWIFTC) $(IMAGE_SWIFTFLAGS) -module-name XenstoredImage -I $(IMAGE_DIR)/shims \
	    -c $(IMAGE_CORE_SRCS) $(IMAGE_GLUE_SRCS) -o $@

# ---- Swift: layout "modules" — each core module separately (as scripts/embedded-check.sh), then the glue.
$(IMAGE_DIR)/modules/XenstoreWire.o: $(wildcard Sources/XenstoreWire/*.swift) mk/image.mk | $(IMAGE_DIR)/modules
$(IMAGE_DIR)/modules/XenstoreStore.o: $(wildcard Sources/XenstoreStore/*.swift) \
        $(IMAGE_DIR)/modules/XenstoreWire.o mk/image.mk | $(IMAGE_DIR)/modules
$(IMAGE_DIR)/modules/XenstoreServer.o: $(wildcard Sources/XenstoreServer/*.swift) \
        $(IMAGE_DIR)/modules/XenstoreWire.o $(IMAGE_DIR)/modules/XenstoreStore.o mk/image.mk | $(IMAGE_DIR)/modules
$(IMAGE_DIR)/modules/XenstoreRing.o: $(wildcard Sources/XenstoreRing/*.swift) \
        $(IMAGE_DIR)/modules/XenstoreServer.o mk/image.mk | $(IMAGE_DIR)/modules
$(IMAGE_DIR)/modules/XenstoreBlock.o: $(wildcard Sources/XenstoreBlock/*.swift) \
        $(IMAGE_DIR)/modules/XenstoreStore.o mk/image.mk | $(IMAGE_DIR)/modules
$(foreach m,$(IMAGE_CORE_MODULES),$(IMAGE_DIR)/modules/$(m).o):
	@echo "  SWIFTC  $(basename $(notdir $@))"
	$(IMAGE_Q)$(IMAGE_SWIFTC) $(IMAGE_SWIFTFLAGS) -module-name $(basename $(notdir $@)) -I $(IMAGE_DIR)/modules \
	    -emit-module -emit-module-path $(basename $@).swiftmodule \
	    -c $(filter Sources/%,$^) -o $@
$(IMAGE_DIR)/modules/glue.o: $(IMAGE_GLUE_SRCS) $(IMAGE_RUNTIME_HDRS) \
        $(foreach m,$(IMAGE_CORE_MODULES),$(IMAGE_DIR)/modules/$(m).o) mk/image.mk
	@echo "  SWIFTC  XenstoredImage"
	$(IMAGE_Q)$(IMAGE_SWIFTC) $(IMAGE_SWIFTFLAGS) -module-name XenstoredImage -I $(IMAGE_DIR)/modules \
	    -c $(IMAGE_GLUE_SRCS) -o $@

ifeq ($(IMAGE_SWIFT_LAYOUT),modules)
IMAGE_SWIFT_OBJS := $(foreach m,$(IMAGE_CORE_MODULES) glue,$(IMAGE_DIR)/modules/$(m).o)
else
IMAGE_SWIFT_OBJS := $(IMAGE_DIR)/single/swift.o
endif

# ---- link: the runtime, one set of Xen notes, the Swift objects
$(IMAGE_PVH): $(IMAGE_RUNTIME_OBJS) $(IMAGE_DIR)/rt/Runtime/arch/x86_64/notes-pvh.S.o $(IMAGE_SWIFT_OBJS) Linker/x86_64.ld
	@echo "  LD      $@"
	$(IMAGE_Q)$(IMAGE_LD) $(IMAGE_LDFLAGS) -e pvh_start32 -Map $(IMAGE_DIR)/pvh.map -o $@ $(filter %.o,$^)
	@$(IMAGE_SIZE) -A -d $@ | awk 'NR > 2 && $$2 > 0'
	@$(IMAGE_SIZE) $@
	@ls -l $@ | awk '{print "file size: " $$5 " bytes"}'
$(IMAGE_PV): $(IMAGE_RUNTIME_OBJS) $(IMAGE_DIR)/rt/Runtime/arch/x86_64/notes-pv.S.o $(IMAGE_SWIFT_OBJS) Linker/x86_64.ld
	@echo "  LD      $@"
	$(IMAGE_Q)$(IMAGE_LD) $(IMAGE_LDFLAGS) -e pv_start -Map $(IMAGE_DIR)/pv.map -o $@ $(filter %.o,$^)
	@$(IMAGE_SIZE) -A -d $@ | awk 'NR > 2 && $$2 > 0'
	@$(IMAGE_SIZE) $@
	@ls -l $@ | awk '{print "file size: " $$5 " bytes"}'

$(IMAGE_DIR)/shims $(IMAGE_DIR)/single $(IMAGE_DIR)/modules:
	mkdir -p $@

.PHONY: image image-x86_64 smoke-x86 test-xen
# `make image ARCH=arm32` builds the armv7 image; x86_64 is the default. Only ARCH given on the command
# line counts: an ARCH left in the environment by a kernel cross-build must not change what `make image` does.
IMAGE_ARCH := $(if $(filter command line,$(origin ARCH)),$(ARCH),x86_64)
image-x86_64: $(IMAGE_PVH) $(IMAGE_PV)
ifeq ($(IMAGE_ARCH),arm32)
image: image-arm32
else ifeq ($(IMAGE_ARCH),x86_64)
image: image-x86_64
else
image:
	@echo "make image: unknown ARCH=$(IMAGE_ARCH) (x86_64 or arm32)"; exit 2
endif

# isa-debug-exit turns guest exit code c into QEMU status (c << 1) | 1: success is exactly 1.
# A triple fault with -no-reboot gives 0, a hang gives 124 (timeout); both fail.
IMAGE_SMOKE_LOG := $(IMAGE_DIR)/smoke-x86.log
smoke-x86: SHELL := /bin/bash
smoke-x86: $(IMAGE_PVH)
	@set +e; timeout 30 $(IMAGE_QEMU) -accel tcg -cpu max -M microvm -m 64M -display none -nodefaults \
	    -serial stdio -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	    -kernel $(IMAGE_PVH) -append "--event 1 --internal-db" > $(IMAGE_SMOKE_LOG) 2>&1; \
	status=$$?; cat $(IMAGE_SMOKE_LOG); echo "smoke-x86: QEMU exit status $$status (1 = guest exit code 0)"; \
	if [ $$status -eq 1 ] && grep -q '^SELFTEST: PASS' $(IMAGE_SMOKE_LOG); then echo "smoke-x86: PASS"; \
	else echo "smoke-x86: FAIL"; exit 1; fi

# Crash reporting: each test boots the PVH image with a word that makes it fault on purpose after the
# self-test; the runtime must print the exception, the registers and a backtrace, and exit with the
# documented code (runtime.h), i.e. QEMU status (code << 1) | 1 — a triple fault gives 0, a hang 124.
#   smoke-x86-trap       --selftest-trap: a Swift trap (#UD), exit 106
#   smoke-x86-overflow   --selftest-overflow: unbounded recursion hits the guard page below the stack, exit 98
#   smoke-x86-badaccess  --selftest-badaccess: a read of address 8 (page 0 is unmapped), #PF, exit 114
# $(call IMAGE_FAULT_TEST,name,command-line word,exit code,line the report must contain)
define IMAGE_FAULT_TEST
.PHONY: smoke-x86-$(1)
smoke-x86-$(1): SHELL := /bin/bash
smoke-x86-$(1): $$(IMAGE_PVH)
	@set +e; timeout 30 $$(IMAGE_QEMU) -accel tcg -M microvm -m 64M -display none -nodefaults \
	    -serial stdio -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	    -kernel $$(IMAGE_PVH) -append "$(2)" 2>&1 | tr -d '\r' > $$(IMAGE_DIR)/smoke-x86-$(1).log; \
	status=$$$${PIPESTATUS[0]}; log=$$(IMAGE_DIR)/smoke-x86-$(1).log; sed -n '/CRASH/,$$$$p' $$$$log; \
	echo "smoke-x86-$(1): QEMU exit status $$$$status ($$$$(( ($(3) << 1) | 1 )) = guest exit code $(3))"; \
	if [ $$$$status -eq $$$$(( ($(3) << 1) | 1 )) ] && grep -q '$(4)' $$$$log && grep -q ' rsp=0x' $$$$log \
	    && grep -q 'backtrace: 0x' $$$$log && grep -q '^\*\*\* exit code $(3)$$$$' $$$$log; then echo "smoke-x86-$(1): PASS"; \
	else echo "smoke-x86-$(1): FAIL"; exit 1; fi
endef
$(eval $(call IMAGE_FAULT_TEST,trap,--selftest-trap,106,CRASH: CPU exception 6 ))
$(eval $(call IMAGE_FAULT_TEST,overflow,--selftest-overflow,98,CRASH: CPU exception 14 .*stack overflow))
$(eval $(call IMAGE_FAULT_TEST,badaccess,--selftest-badaccess,114,cr2=0x0000000000000008))

# Restart in place (Runtime/restart.c): --selftest-restart arms it and traps; the restarted image must
# find a changed Swift global back at its initial value and the heap it filled empty (SELFTEST-RESTART:
# PASS), then it traps on every restart until the runtime ends the crash loop: RT_RESTART_LIMIT (3)
# restarts, then exit 99, i.e. QEMU status 199.
.PHONY: smoke-x86-restart
smoke-x86-restart: SHELL := /bin/bash
smoke-x86-restart: $(IMAGE_PVH)
	@set +e; timeout 30 $(IMAGE_QEMU) -accel tcg -M microvm -m 64M -display none -nodefaults \
	    -serial stdio -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	    -kernel $(IMAGE_PVH) -append "--selftest-restart" 2>&1 | tr -d '\r' > $(IMAGE_DIR)/smoke-x86-restart.log; \
	status=$${PIPESTATUS[0]}; log=$(IMAGE_DIR)/smoke-x86-restart.log; grep -v '^    ' $$log | sed -n '/self-test passed\|heap in use before/,$$p'; \
	echo "smoke-x86-restart: QEMU exit status $$status (199 = guest exit code 99, the crash loop ended)"; \
	if [ $$status -eq 199 ] && grep -q '^SELFTEST-RESTART: PASS' $$log && [ "$$(grep -c '^\*\*\* restarting in place' $$log)" = 3 ] \
	    && grep -q '^\*\*\* crash loop: 4 crashes' $$log; then echo "smoke-x86-restart: PASS"; \
	else echo "smoke-x86-restart: FAIL"; exit 1; fi

# Real Xen 4.17 in QEMU (harness: tools/xen-qemu, docs/xen-qemu.md): both images as the xenstore stub
# domain; xsguest (mk/xen-dom0.mk) provides the tiny PV and PVH guests created on top of them. Both
# keep their history on one disk (a host file, dom0's /dev/vda, given to the stub the operator's way):
# the PVH image starts a new history on it, the PV image resumes it and merges its boot branch onto
# it; after each boot the host exports the disk and checks the history with git. Each boot crashes the
# stub once on purpose and checks that it restarted in place; a third, shorter boot (PVH, no disk) does
# that with the history in the stub's kept memory.
STUB_DISK_FILE := build/xen-test/stub-disk.img
test-xen: $(IMAGE_PVH) $(IMAGE_PV) xsguest
	$(SWIFT) build --product xenstored
	rm -f $(STUB_DISK_FILE)
	STUB_DISK=$(STUB_DISK_FILE) XENSTORED=$$($(SWIFT) build --show-bin-path)/xenstored scripts/test-xen.sh pvh
	STUB_DISK=$(STUB_DISK_FILE) STUB_DISK_RESUME=1 XENSTORED=$$($(SWIFT) build --show-bin-path)/xenstored scripts/test-xen.sh pv
	XSTEST_QUICK=1 scripts/test-xen.sh pvh

# Soak (not part of `make test`; many minutes per run under TCG): RUNS boots of each image under Xen in
# QEMU, each with test-xenstore random mode, 50 guest create/destroy cycles and a store filled to 90 %
# of the heap (scripts/soak-xen.sh); prints the tally.
.PHONY: soak-xen
soak-xen: $(IMAGE_PVH) $(IMAGE_PV) xsguest
	scripts/soak-xen.sh $(or $(RUNS),1)

# The stub domain against C xenstored under Xen in QEMU (not part of `make test`): BOOTS boots per side,
# alternating, the same xsbench workloads in dom0 -> bench/results/xen.csv and xen.md (scripts/bench-xen.sh).
.PHONY: bench-xen
bench-xen: $(IMAGE_PVH) $(IMAGE_PV)
	VARIANT=$(or $(VARIANT),pvh) scripts/bench-xen.sh $(or $(BOOTS),3)

include mk/image-arm32.mk
