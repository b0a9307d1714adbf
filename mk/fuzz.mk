# mk/fuzz.mk: libFuzzer targets for the core (Fuzz/*.swift, built and run by scripts/fuzz.sh).
# Included from the top-level Makefile:  include mk/fuzz.mk
#
#   make fuzz FUZZER=wire|server|ring SECONDS=N   fuzz one target for N seconds (default 300);
#                      a crash leaves build/fuzz/artifacts/FUZZER-crash-* and fails
#   make fuzz-short    every target for FUZZ_SHORT_SECONDS (default 15) each; part of `make test`
#   make fuzz-replay FUZZER=... FILE=...           run one target once on FILE (a crash artifact)

FUZZER  ?= server
SECONDS ?= 300
FUZZ_SHORT_SECONDS ?= 15
# The ring target exists once Sources/XenstoreRing does.
FUZZ_TARGETS := wire server $(if $(wildcard Sources/XenstoreRing/*.swift),ring)

.PHONY: fuzz fuzz-short fuzz-replay

fuzz:
	scripts/fuzz.sh run $(FUZZER) $(SECONDS)

fuzz-short:
	@for target in $(FUZZ_TARGETS); do scripts/fuzz.sh run $$target $(FUZZ_SHORT_SECONDS) || exit 1; done

fuzz-replay:
	scripts/fuzz.sh replay $(FUZZER) $(FILE)
