# mk/deploy.mk: build every stub-domain image, pack, configure, verify and deploy them with xsdeploy (docs/deploy.md).
# Include from the top-level Makefile after mk/image.mk:   include mk/deploy.mk
# (also usable alone:  make -f mk/deploy.mk images)
#
#   make images        the images xsdeploy packs: x86_64 pvh + pv (arm32: make image ARCH=arm32, not packed)
#   make xsdeploy      build the host tool (swift build --product xsdeploy)
#   make xlcfg-check   build/deploy/xlcfg-check: parses an xl config with libxlutil (xl's parser), no Xen needed
#   make repro-check   two clean builds of the tracked sources in two different directories; images must be byte-identical
#   make ci-images     images + repro-check + pack + config (parsed back by libxlutil) + verify + deploy into
#                      a fresh repo under build/deploy/ci + verify + list
#   make test-xen-packed  boot the gzip images of build/deploy/ci/pack under real Xen in QEMU (after ci-images;
#                      PACKED_DIR=DIR for another pack or deployment; ~1.5 min per image)
#   make deploy-print-flags   the image build flags as key=value lines (read by `xsdeploy pack`)
#   DEPLOY_REPO=DIR    deployment repository for `make deploy` (pack + config + deploy + verify)

ifndef IMAGE_SWIFTFLAGS
SWIFT ?= swift
include mk/image.mk
include mk/xen-dom0.mk
endif
SWIFT ?= swift

DEPLOY_DIR      := build/deploy
DEPLOY_PACK     ?= $(DEPLOY_DIR)/pack
DEPLOY_REPO     ?= $(DEPLOY_DIR)/repo
DEPLOY_CI_DIR   := $(DEPLOY_DIR)/ci
DEPLOY_XLCHECK  := $(DEPLOY_DIR)/xlcfg-check
# Extra `xsdeploy pack` flags, e.g. PACK_FLAGS=--allow-dirty while iterating.
PACK_FLAGS      ?=
# Extra `xsdeploy config` flags, e.g. CONFIG_FLAGS="--memory 32 --history-disk /var/lib/xenstored/history.img".
CONFIG_FLAGS    ?=
XSDEPLOY_BIN     = $$($(SWIFT) build --show-bin-path)/xsdeploy

PACKED_DIR      ?= $(DEPLOY_CI_DIR)/pack

.PHONY: images xsdeploy xlcfg-check repro-check ci-images deploy deploy-print-flags test-xen-packed

images: $(IMAGE_PVH) $(IMAGE_PV)
	@echo "images: built x86_64-pvh ($(IMAGE_PVH)) and x86_64-pv ($(IMAGE_PV))"
	@echo "images: arm32: built by \`make image ARCH=arm32\` (build/xenstore-stubdom-arm32), not packed by xsdeploy yet; skipped"

xsdeploy:
	$(SWIFT) build --product xsdeploy

$(DEPLOY_XLCHECK): scripts/xlcfg-check.c mk/deploy.mk
	@scripts/install-packages.sh libxen-dev
	@mkdir -p $(DEPLOY_DIR)
	cc -Wall -Wextra -O2 -o $@ scripts/xlcfg-check.c -lxlutil -lxenlight
xlcfg-check: $(DEPLOY_XLCHECK)

repro-check:
	scripts/repro-check.sh

deploy-print-flags:
	@echo "swift=$(IMAGE_SWIFTFLAGS)"
	@echo "c=$(IMAGE_CFLAGS)"
	@echo "ld=$(IMAGE_LDFLAGS)"
	@echo "opt=$(IMAGE_OPT)"
	@echo "layout=$(IMAGE_SWIFT_LAYOUT)"
	@echo "heapPages=$(IMAGE_HEAP_PAGES)"
	@echo "swiftc=$(IMAGE_SWIFTC)"
	@echo "cc=$(IMAGE_CC)"
	@echo "ld_tool=$(IMAGE_LD)"

deploy: images xsdeploy $(DEPLOY_XLCHECK)
	$(XSDEPLOY_BIN) pack --out $(DEPLOY_PACK) $(PACK_FLAGS)
	$(XSDEPLOY_BIN) config --pack $(DEPLOY_PACK) --xl-parser $(DEPLOY_XLCHECK) $(CONFIG_FLAGS)
	$(XSDEPLOY_BIN) deploy --pack $(DEPLOY_PACK) --repo $(DEPLOY_REPO)
	$(XSDEPLOY_BIN) verify --repo $(DEPLOY_REPO)
	$(XSDEPLOY_BIN) list --repo $(DEPLOY_REPO)

ci-images: images xsdeploy $(DEPLOY_XLCHECK) repro-check
	rm -rf $(DEPLOY_CI_DIR)
	$(XSDEPLOY_BIN) pack --out $(DEPLOY_CI_DIR)/pack $(PACK_FLAGS)
	$(XSDEPLOY_BIN) config --pack $(DEPLOY_CI_DIR)/pack --xl-parser $(DEPLOY_XLCHECK) --require-xen-parser $(CONFIG_FLAGS)
	$(XSDEPLOY_BIN) verify --repo $(DEPLOY_CI_DIR)/pack
	$(XSDEPLOY_BIN) deploy --pack $(DEPLOY_CI_DIR)/pack --repo $(DEPLOY_CI_DIR)/repo
	$(XSDEPLOY_BIN) verify --repo $(DEPLOY_CI_DIR)/repo
	$(XSDEPLOY_BIN) list --repo $(DEPLOY_CI_DIR)/repo
	@echo "ci-images: PASS (x86_64-pvh, x86_64-pv built reproducibly, packed, configured, verified, deployed; arm32 is not packed)"

test-xen-packed: xsguest
	scripts/test-xen-packed.sh $(PACKED_DIR) pvh pv
