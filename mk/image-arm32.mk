# mk/image-arm32.mk: the armv7 stub-domain image (same Swift sources as x86_64, Embedded for armv7-none-none-eabi,
# with the shared C runtime + Runtime/arch/arm32) as a zImage for Xen on ARM, and its QEMU smoke tests.
# Included from mk/image.mk (which defines the shared Swift source lists).
#
#   make image ARCH=arm32   build/xenstore-stubdom-arm32 (zImage for xl `kernel=`) and build/xenstore-stubdom-arm32.elf
#   make image-arm32        the same, whatever ARCH is
#   make smoke-arm32        boot the zImage in qemu-system-arm -M virt -cpu cortex-a7 (no Xen; QEMU's Linux boot
#                           path: loaded at RAM + 0x10000, so start.S relocates it; r2 = device tree with -append
#                           as /chosen/bootargs), semihosting exit; pass = SELFTEST: PASS and exit status exactly 0
#   make smoke-arm32-trap   same with a deliberate Swift trap: pass = crash reported and exit status 101 (undefined instruction)
#   make smoke-arm32-overflow  same with unbounded recursion: the stack's guard page faults, exit status 98
#   make test-xen-arm       real Xen 4.17 armhf + dom0 in qemu-system-arm (scripts/test-xen-arm.sh)
#
# C is compiled with gcc-arm-none-eabi (armv7-a, ARM state, NEON, soft-float calling convention like Swift's
# armv7-none-none-eabi code) and linked with arm-none-eabi-ld plus its libgcc (__aeabi_* division helpers).

ARM_CROSS    ?= arm-none-eabi-
ARM_CC       ?= $(ARM_CROSS)gcc
ARM_LD       ?= $(ARM_CROSS)ld
ARM_OBJCOPY  ?= $(ARM_CROSS)objcopy
ARM_SIZE     ?= $(ARM_CROSS)size
ARM_QEMU     ?= qemu-system-arm
ARM_HEAP_PAGES ?= $(IMAGE_HEAP_PAGES)

ARM_DIR      := build/image/arm32
ARM_ELF      := build/xenstore-stubdom-arm32.elf
ARM_ZIMAGE   := build/xenstore-stubdom-arm32
ARM_ARCHFLAGS := -march=armv7-a -marm -mfpu=neon -mfloat-abi=softfp
ARM_LIBGCC   = $(shell $(ARM_CC) $(ARM_ARCHFLAGS) -print-libgcc-file-name)
ARM_RUNTIME_HDRS := $(wildcard Runtime/include/*.h Runtime/include/*/*.h Runtime/arch/arm32/*.h) Runtime/include/module.modulemap

ARM_SWIFTFLAGS := -target armv7-none-none-eabi -enable-experimental-feature Embedded \
    -wmo $(IMAGE_OPT) -parse-as-library -Xfrontend -disable-stack-protector \
    -Xfrontend -function-sections -I Runtime/include
ARM_CFLAGS := $(ARM_ARCHFLAGS) -ffreestanding -fno-builtin -nostdlib -fno-stack-protector -fno-short-enums \
    -fno-pic -Os -Wall -Wextra -Werror -ffunction-sections -fdata-sections \
    -fno-asynchronous-unwind-tables -fno-unwind-tables \
    -IRuntime/include -IRuntime/arch/arm32 -idirafter /usr/include -DMM_HEAP_PAGES=$(ARM_HEAP_PAGES)
ARM_LDFLAGS := -static -nostdlib --gc-sections --orphan-handling=error --no-warn-rwx-segments --no-warn-execstack --no-enum-size-warning -T Linker/arm32.ld

# The facilities shared with x86_64 plus this architecture's files.
ARM_RUNTIME_SRCS := $(wildcard Runtime/*.c Runtime/lib/*.c) \
    Runtime/arch/arm32/setup.c Runtime/arch/arm32/traps.c Runtime/arch/arm32/console.c \
    Runtime/arch/arm32/time.c Runtime/arch/arm32/aeabi.c Runtime/arch/arm32/start.S
ARM_RUNTIME_OBJS := $(patsubst %,$(ARM_DIR)/rt/%.o,$(ARM_RUNTIME_SRCS))

$(ARM_DIR)/rt/%.c.o: %.c $(ARM_RUNTIME_HDRS) mk/image-arm32.mk
	@echo "  CC      $< (arm32)"
	@mkdir -p $(@D)
	$(IMAGE_Q)$(ARM_CC) $(ARM_CFLAGS) -c $< -o $@
$(ARM_DIR)/rt/%.S.o: %.S $(ARM_RUNTIME_HDRS) mk/image-arm32.mk
	@echo "  AS      $< (arm32)"
	@mkdir -p $(@D)
	$(IMAGE_Q)$(ARM_CC) $(ARM_CFLAGS) -c $< -o $@

# Swift: the core and Sources/XenstoredImage as ONE Embedded module (the "single" layout of mk/image.mk).
$(ARM_DIR)/shims/%.swiftmodule:
	@echo "  SHIM    $* (arm32)"
	@mkdir -p $(@D)
	$(IMAGE_Q): > $(ARM_DIR)/shims/empty.swift
	$(IMAGE_Q)$(IMAGE_SWIFTC) $(ARM_SWIFTFLAGS) -module-name $* -emit-module -emit-module-path $@ $(ARM_DIR)/shims/empty.swift

$(ARM_DIR)/single/swift.o: $(IMAGE_CORE_SRCS) $(IMAGE_GLUE_SRCS) $(ARM_RUNTIME_HDRS) \
        $(foreach m,$(IMAGE_CORE_MODULES),$(ARM_DIR)/shims/$(m).swiftmodule) mk/image-arm32.mk
	@echo "  SWIFTC  core + Sources/XenstoredImage (one Embedded module, armv7)"
	@mkdir -p $(@D)
	$(IMAGE_Q)$(IMAGE_SWIFTC) $(ARM_SWIFTFLAGS) -module-name XenstoredImage -I $(ARM_DIR)/shims \
	    -c $(IMAGE_CORE_SRCS) $(IMAGE_GLUE_SRCS) -o $@

$(ARM_ELF): $(ARM_RUNTIME_OBJS) $(ARM_DIR)/single/swift.o Linker/arm32.ld
	@echo "  LD      $@"
	$(IMAGE_Q)$(ARM_LD) $(ARM_LDFLAGS) -Map $(ARM_DIR)/arm32.map -o $@ $(filter %.o,$^) $(ARM_LIBGCC)
	@$(ARM_SIZE) -A -d $@ | awk 'NR > 2 && $$2 > 0'
	@$(ARM_SIZE) $@

# The zImage is the ELF's file part from _start to _edata; .bss is zeroed by start.S.
$(ARM_ZIMAGE): $(ARM_ELF)
	@echo "  OBJCOPY $@ (zImage)"
	$(IMAGE_Q)$(ARM_OBJCOPY) -O binary $< $@
	@ls -l $@ | awk '{print "zImage size: " $$5 " bytes"}'

.PHONY: image-arm32 smoke-arm32 smoke-arm32-trap smoke-arm32-overflow test-xen-arm
image-arm32: $(ARM_ZIMAGE) $(ARM_ELF)

# Semihosting SYS_EXIT_EXTENDED makes QEMU exit with the guest's code itself: success is exactly 0,
# and the self-test's PASS line must be there too (a QEMU that dies early can also exit 0), as must the
# command line, which only arrives through the device tree.
ARM_SMOKE_QEMU = timeout 30 $(ARM_QEMU) -M virt -cpu cortex-a7 -m 128M -display none -nodefaults \
    -serial stdio -no-reboot -semihosting-config enable=on,target=native -kernel $(ARM_ZIMAGE)
smoke-arm32: SHELL := /bin/bash
smoke-arm32: $(ARM_ZIMAGE)
	@set +e; $(ARM_SMOKE_QEMU) -append "--event 1 --internal-db" > $(ARM_DIR)/smoke-arm32.log 2>&1; \
	status=$$?; cat $(ARM_DIR)/smoke-arm32.log; echo "smoke-arm32: QEMU exit status $$status (0 = guest exit code 0)"; \
	if [ $$status -eq 0 ] && grep -q '^SELFTEST: PASS' $(ARM_DIR)/smoke-arm32.log \
	    && grep -q "cmdline '--event 1 --internal-db'" $(ARM_DIR)/smoke-arm32.log \
	    && grep -q '^xenstore-stubdom: exit 0' $(ARM_DIR)/smoke-arm32.log; then echo "smoke-arm32: PASS"; \
	else echo "smoke-arm32: FAIL"; exit 1; fi

# Crash reporting: --selftest-trap makes Swift trap (udf) after the self-test; the vectors must report an
# undefined instruction and exit with RT_EXIT_TRAP_BASE + 1 = 101.
smoke-arm32-trap: SHELL := /bin/bash
smoke-arm32-trap: $(ARM_ZIMAGE)
	@set +e; $(ARM_SMOKE_QEMU) -append "--selftest-trap" > $(ARM_DIR)/smoke-arm32-trap.log 2>&1; \
	status=$$?; tail -n 8 $(ARM_DIR)/smoke-arm32-trap.log; echo "smoke-arm32-trap: QEMU exit status $$status (101 = undefined instruction)"; \
	if [ $$status -eq 101 ] && grep -q 'CRASH: CPU exception 1 undefined instruction' $(ARM_DIR)/smoke-arm32-trap.log; then echo "smoke-arm32-trap: PASS"; \
	else echo "smoke-arm32-trap: FAIL"; exit 1; fi

# Stack overflow: --selftest-overflow recurses without end; the guard page below the stack (start.S) must
# turn it into a data abort reported as a stack overflow, exit RT_EXIT_STACK_OVERFLOW = 98.
smoke-arm32-overflow: SHELL := /bin/bash
smoke-arm32-overflow: $(ARM_ZIMAGE)
	@set +e; $(ARM_SMOKE_QEMU) -append "--selftest-overflow" > $(ARM_DIR)/smoke-arm32-overflow.log 2>&1; \
	status=$$?; tail -n 8 $(ARM_DIR)/smoke-arm32-overflow.log; echo "smoke-arm32-overflow: QEMU exit status $$status (98 = stack overflow)"; \
	if [ $$status -eq 98 ] && grep -q 'CRASH: CPU exception 4 data abort: stack overflow' $(ARM_DIR)/smoke-arm32-overflow.log \
	    && tr -d '\r' < $(ARM_DIR)/smoke-arm32-overflow.log | grep -q '^\*\*\* exit code 98$$'; then echo "smoke-arm32-overflow: PASS"; \
	else echo "smoke-arm32-overflow: FAIL"; exit 1; fi

test-xen-arm: $(ARM_ZIMAGE)
	scripts/test-xen-arm.sh
