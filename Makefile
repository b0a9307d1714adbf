# Xenstore daemon in Swift. The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
RUNDIR ?= $(CURDIR)/run
SOCKET ?= $(RUNDIR)/socket
# Debian packages: clients for `make run`; clients, Xen's conformance test and headers for `make test`.
CLIENT_PACKAGES := xenstore-utils
# zlib headers for the git database of the host daemon; Xen library headers for --xen (dom0); libfuse3 for xsctl mount.
BUILD_PACKAGES := zlib1g-dev libxen-dev libfuse3-dev
TEST_PACKAGES := xenstore-utils xen-utils-4.17 libxen-dev zlib1g-dev libfuse3-dev fuse3 qemu-system-x86 gcc-arm-none-eabi qemu-system-arm

.PHONY: all build release run check deps test unit-test integration-test embedded-check runtime-test packages bench bench-memory bench-compare bench-profile test-sim clean
.DEFAULT_GOAL := build

build:
	@scripts/install-packages.sh $(BUILD_PACKAGES)
	$(SWIFT) build

release:
	@scripts/install-packages.sh $(BUILD_PACKAGES)
	$(SWIFT) build -c release --product xenstored
	$(SWIFT) build -c release --product xsctl

## make run: build and start the daemon on $(SOCKET), ready for xenstore-read/-write, its history a git
## repository in $(HISTORY) (kept across runs: a restart continues it). MEMORY=1: history in memory only.
HISTORY ?= $(RUNDIR)/db
RUN_STORE = $(if $(MEMORY),,--database $(HISTORY))
run: release
	@scripts/install-packages.sh $(CLIENT_PACKAGES) git || echo "(could not install $(CLIENT_PACKAGES) git; install them to use xenstore-read/-write and git log)"
	@mkdir -p $(RUNDIR)
	@echo "Xenstore daemon starting on $(SOCKET), history in $(if $(MEMORY),memory only,$(HISTORY)). In another shell:"
	@echo "    export XENSTORED_PATH=$(SOCKET)"
	@echo "    xenstore-write /example/key hello && xenstore-read /example/key && xenstore-ls /"
	@$(if $(MEMORY),true,echo "    git -C $(HISTORY) log --oneline --graph   # every change is a commit")
	@echo "    $$($(SWIFT) build -c release --show-bin-path)/xsctl history 10   # the same with our own CLI"
	@echo "Stop with Ctrl-C."
	exec $$($(SWIFT) build -c release --show-bin-path)/xenstored --socket $(SOCKET) --pid-file $(RUNDIR)/xenstored.pid $(RUN_STORE)

## make deps: the Debian packages everything here needs (as root; each target also installs what it needs).
deps packages:
	scripts/install-packages.sh $(TEST_PACKAGES)

## make check: the quick tier, no root and no apt (run `make deps` once first): build, swift test,
## the Embedded compile of the core for both bare-metal targets. A few minutes.
check:
	@for header in zlib.h xenctrl.h fuse3/fuse.h; do [ -f /usr/include/$$header ] || { echo "make check: /usr/include/$$header missing: run 'make deps' (as root) first" >&2; exit 2; }; done
	$(SWIFT) build
	SWIFT=$(SWIFT) scripts/swift-test.sh
	scripts/embedded-check.sh

embedded-check:
	scripts/embedded-check.sh

## make runtime-test: the runtime's heap (Runtime/mm.c) built for the host under a seeded alloc/free stress.
runtime-test:
	scripts/runtime-test.sh

## make test (the full tier, what .ci/run calls): install what the tests need, compile the core in Embedded mode, run all tests,
## build the stub-domain images (x86_64 and armv7), smoke-boot them in QEMU, boot them under real Xen in
## QEMU, and run the host daemon as dom0's xenstored under real Xen in QEMU (test-xen-dom0).
test: packages embedded-check runtime-test build
	SWIFT=$(SWIFT) scripts/swift-test.sh
	$(MAKE) smoke-x86 smoke-x86-trap smoke-x86-overflow smoke-x86-badaccess smoke-x86-restart smoke-arm32 smoke-arm32-trap smoke-arm32-overflow test-xen test-xen-arm test-xen-dom0 fuzz-short

## make bench: ours (in memory and --database) vs C xenstored and oxenstored, one run -> bench/results/.
bench:
	scripts/bench.sh

## make bench-memory [MEM_GUESTS=N]: memory per node, 1300 guests' nodes (141,000) as xl writes them, ours
## and both peers -> bench/results/memory.csv (the memory section of make bench alone).
bench-memory:
	BENCH_SECTION=memory scripts/bench.sh

## make bench-compare BASE=REV: this tree's daemon against REV's, same run, alternating -> bench/results/compare.md.
bench-compare:
	BASE=$(or $(BASE),HEAD~1) scripts/bench-compare.sh

## make bench-profile BASE=REV: perf profiles of REV's daemon and this tree's under vmstart -> bench/results/profile.md.
bench-profile:
	BASE=$(or $(BASE),HEAD~1) scripts/bench-profile.sh

## make soak-xen RUNS=N: boot each x86 stub-domain image N times under Xen in QEMU with a long workload
## (test-xenstore random mode, 50 guest create/destroy cycles, the store filled to 90 % of the heap); mk/image.mk.

## make bench-xen BOOTS=N [VARIANT=pv]: the stub domain against C xenstored under Xen in QEMU, N boots per
## side alternating, the same xsbench load in dom0 -> bench/results/xen.csv and xen.md; mk/image.mk.

## make test-sim SEED=N [SIM_STEPS=20000]: one long seeded run of the block-device crash simulator.
test-sim: build
	SEED=$(SEED) SIM_STEPS=$(or $(SIM_STEPS),20000) $(SWIFT) test --filter XenstoreBlockTests.SimulatorTests

unit-test: build
	$(SWIFT) test --filter XenstoreCoreTests

integration-test: packages build
	$(SWIFT) test --filter IntegrationTests

include mk/image.mk
include mk/deploy.mk
include mk/xen-dom0.mk
include mk/fuzz.mk

clean:
	rm -rf .build build run
