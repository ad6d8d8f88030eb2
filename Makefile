# libfidius: top-level tasks. See README.md.
#
#   make demo    build everything and run the main job (a C host calling plugins)
#   make test    the whole test suite (what CI runs)

CARGO ?= cargo

.PHONY: demo test test-rust test-c header-check build clean

demo:
	$(MAKE) -C examples-c run

build:
	$(CARGO) build -j2

# The checked-in header must be what build.rs generates.
header-check: build
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git diff --exit-code -- include/fidius.h || \
	  { echo "include/fidius.h is stale: commit the header build.rs generated"; exit 1; }; \
	fi

test-rust:
	$(CARGO) test -j2

# The C hosts: header compiled as C99 and C++, the demo, and the demo under ASan/LSan/UBSan.
test-c:
	$(MAKE) -C examples-c check

test: header-check test-rust test-c
	@echo "all test suites passed"

clean:
	$(CARGO) clean
	$(MAKE) -C examples-c clean
