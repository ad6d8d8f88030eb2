# libfidius: top-level tasks. See README.md.
#
#   make demo            build everything and run the main job (a C host calling plugins)
#   make test            the whole test suite (what CI runs)
#   make test-bindings   the Go, C# and Python bindings' tests (bindings/*)
#   make install PREFIX=/usr/local [DESTDIR=...] [PROFILE=release|debug]
#                        release build (by default): lib/libfidius.so.X.Y.Z (+ .so.X, .so links), lib/libfidius.a,
#                        include/fidius.h, lib/pkgconfig/fidius.pc
#   make install-strip   the same, without debug info
#   make test-install    install into target/install-test and build + run C hosts from it with
#                        nothing but pkg-config

CARGO ?= cargo
CC    ?= cc
ROOT  := $(abspath .)

# The version comes from Cargo.toml; the soname carries its major number.
VERSION := $(shell sed -n 's/^version = "\([^"]*\)".*/\1/p' $(ROOT)/Cargo.toml | head -n 1)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
SONAME  := libfidius.so.$(SOMAJOR)

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR      ?=

# Libraries a static link of libfidius.a needs (`rustc --print native-static-libs`).
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

# The fixture search path every host test uses (native fixtures + WASM packages).
PLUGINS := $(ROOT)/examples-c/build/plugins

.PHONY: demo test test-rust test-fuzz test-c header-check build clean \
        release-lib install install-strip test-install \
        test-bindings test-go test-csharp test-python python-wheel csharp-nupkg plugins uninstalled-pc

demo:
	$(MAKE) -C examples-c run

# libfidius links with the soname libfidius.so.MAJOR (build.rs); in-tree hosts
# linked against target/<profile>/libfidius.so find it through this link.
build:
	$(CARGO) build -j2
	ln -sfn libfidius.so target/debug/$(SONAME)

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

# The fuzz targets (fuzz/): every committed corpus input replayed under
# ASan/LSan, then a short live run of each (FUZZ_SECONDS, default 15).
test-fuzz:
	$(MAKE) -C examples-c fixtures
	bash fuzz/ci.sh

test: header-check test-rust test-fuzz test-c test-bindings test-install
	@echo "all test suites passed"

# --- install -----------------------------------------------------------------
#
# The installed library is the release build unless PROFILE=debug (CI's
# install check uses the debug build it already has, to avoid compiling
# wasmtime twice). The soname comes from build.rs.
PROFILE ?= release

release-lib:
	$(CARGO) build -j2 --lib $(if $(filter release,$(PROFILE)),--release)

install: release-lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 target/$(PROFILE)/libfidius.so $(DESTDIR)$(LIBDIR)/libfidius.so.$(VERSION)
	ln -sfn libfidius.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(LIBDIR)/libfidius.so
	install -m 644 target/$(PROFILE)/libfidius.a $(DESTDIR)$(LIBDIR)/libfidius.a
	install -m 644 include/fidius.h $(DESTDIR)$(INCLUDEDIR)/fidius.h
	printf '%s\n' \
	  'prefix=$(PREFIX)' \
	  'libdir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))' \
	  'includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))' \
	  '' \
	  'Name: fidius' \
	  'Description: Host Fidius plugins (native and WASM-component) from C and other languages' \
	  'Version: $(VERSION)' \
	  'Libs: -L$${libdir} -lfidius' \
	  'Libs.private: $(STATIC_LIBS)' \
	  'Cflags: -I$${includedir}' \
	  > $(DESTDIR)$(PKGCONFIGDIR)/fidius.pc

# install, then strip debug info (the release profile keeps line tables for
# backtraces: ~130 MB .so; stripped ~27 MB).
install-strip: install
	strip --strip-debug $(DESTDIR)$(LIBDIR)/libfidius.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libfidius.a

# CI's check of the installed copy: C hosts built with nothing but pkg-config
# (PKG_CONFIG_PATH at the prefix), run with LD_LIBRARY_PATH set to the
# prefix's libdir (no rpath: the binary is what a user would build), and a
# fully static link of libfidius.a through `pkg-config --static`.
INSTALL_TEST := $(ROOT)/target/install-test

test-install: build plugins
	rm -rf $(INSTALL_TEST)
	$(MAKE) install PREFIX=$(INSTALL_TEST) PROFILE=debug
	@set -e; export PKG_CONFIG_PATH=$(INSTALL_TEST)/lib/pkgconfig; fail() { echo "install test FAILED: $$*"; exit 1; }; \
	  test "$$(pkg-config --modversion fidius)" = "$(VERSION)" || fail "pkg-config --modversion fidius"; \
	  readelf -d $(INSTALL_TEST)/lib/libfidius.so.$(VERSION) | grep -q "SONAME.*\[$(SONAME)\]" || fail "soname is not $(SONAME)"; \
	  echo "cc host_demo.c \$$(pkg-config --cflags --libs fidius)    # $$(pkg-config --cflags --libs fidius)"; \
	  $(CC) -std=c99 -Wall -Wextra -Werror examples-c/host_demo.c $$(pkg-config --cflags --libs fidius) -o $(INSTALL_TEST)/host_demo; \
	  readelf -d $(INSTALL_TEST)/host_demo | grep -q "NEEDED.*\[$(SONAME)\]" || fail "host_demo does not need $(SONAME)"; \
	  export LD_LIBRARY_PATH=$$(pkg-config --variable=libdir fidius); \
	  ldd $(INSTALL_TEST)/host_demo | grep -q "$(SONAME) => $(INSTALL_TEST)/lib/" || fail "host_demo does not resolve $(SONAME) in the prefix"; \
	  $(INSTALL_TEST)/host_demo $(PLUGINS) || fail "host_demo against the installed library"; \
	  unset LD_LIBRARY_PATH; \
	  echo "cc egress_demo.c \$$(pkg-config --cflags fidius) LIBDIR/libfidius.a <pkg-config --static --libs-only-l fidius, less -lfidius>"; \
	  $(CC) -std=c99 -Wall -Wextra -Werror -pthread examples-c/egress_demo.c $$(pkg-config --cflags fidius) \
	    $$(pkg-config --variable=libdir fidius)/libfidius.a $$(pkg-config --static --libs-only-l fidius | sed 's/-lfidius//') \
	    -o $(INSTALL_TEST)/egress_demo_static; \
	  if readelf -d $(INSTALL_TEST)/egress_demo_static | grep -q fidius; then fail "the static link still needs libfidius.so"; fi; \
	  $(INSTALL_TEST)/egress_demo_static $(PLUGINS) || fail "static egress_demo"
	@echo "install test: 2 passed, 0 failed"

# --- bindings ----------------------------------------------------------------
#
# Each binding's tests run against the debug library in target/debug and the
# fixture search path examples-c/build/plugins.

plugins:
	$(MAKE) -C examples-c build/plugins build/python-plugins

# target/pkgconfig/fidius-uninstalled.pc: pkg-config prefers it over an
# installed fidius.pc, so cgo's `#cgo pkg-config: fidius` finds the tree's
# header and debug library (with an rpath to it).
uninstalled-pc:
	mkdir -p target/pkgconfig
	printf '%s\n' \
	  'Name: fidius' \
	  'Description: libfidius, uninstalled (the source tree'"'"'s debug build)' \
	  'Version: $(VERSION)' \
	  'Libs: -L$(ROOT)/target/debug -Wl,-rpath,$(ROOT)/target/debug -lfidius' \
	  'Cflags: -I$(ROOT)/include' \
	  > target/pkgconfig/fidius-uninstalled.pc

# First: every function and enum value of include/fidius.h is bound in Go, C# and Python.
test-bindings:
	python3 bindings/check_drift.py
	$(MAKE) --no-print-directory test-go test-csharp test-python
	@echo "all binding tests passed"

# cgo's build cache does not notice a changed fidius.h outside the module;
# the header's hash in CGO_CFLAGS makes it part of the cache key.
HEADER_SHA := $(shell sha256sum $(ROOT)/include/fidius.h | cut -c1-16)
GO_ENV := CGO_CFLAGS="-g -O2 -DFIDIUS_H_SHA=$(HEADER_SHA)" GOCACHE=$(ROOT)/target/go/cache GOPATH=$(ROOT)/target/go/path GOPROXY=off GOFLAGS= \
          CGO_ENABLED=1 PKG_CONFIG_PATH=$(ROOT)/target/pkgconfig FIDIUS_PLUGIN_DIR=$(PLUGINS)

test-go: build plugins uninstalled-pc
	@command -v go >/dev/null || { echo "go not found (apt-get install golang-go)"; exit 1; }
	cd bindings/go && $(GO_ENV) go vet ./...
	cd bindings/go && $(GO_ENV) GODEBUG=cgocheck=2 go test -race -count=1 -v ./...
	@# A separate module requiring the package through a replace directive, then vendored.
	cd bindings/go/example/consumer && $(GO_ENV) go build -o $(ROOT)/target/go/consumer . && $(ROOT)/target/go/consumer $(PLUGINS)
	rm -rf target/go/vendored && cp -r bindings/go/example/consumer target/go/vendored
	cd target/go/vendored && $(GO_ENV) go mod edit -replace libfidius.invalid/fidius=$(ROOT)/bindings/go && \
	  $(GO_ENV) go mod vendor && test -f vendor/libfidius.invalid/fidius/callbacks.c && \
	  $(GO_ENV) go build -mod=vendor -o consumer . && ./consumer $(PLUGINS)

CS_OUT := $(ROOT)/target/csharp

# The NuGet package, without a packer (Debian's nuget is 2.8): a .nupkg is a zip
# of the .nuspec and the files in NuGet's layout, lib/net45/Fidius.dll and
# runtimes/linux-x64/native/libfidius.so (the debug build, stripped).
CS_PKG := $(CS_OUT)/nupkg
CS_NUPKG := $(CS_OUT)/Fidius.$(VERSION).nupkg

csharp-nupkg: build
	@command -v mcs >/dev/null || { echo "mcs not found (apt-get install mono-mcs)"; exit 1; }
	rm -rf $(CS_PKG) $(CS_NUPKG)
	mkdir -p $(CS_PKG)/lib/net45 $(CS_PKG)/runtimes/linux-x64/native
	mcs -nologo -warnaserror -target:library -out:$(CS_PKG)/lib/net45/Fidius.dll bindings/csharp/Fidius.cs
	strip --strip-debug -o $(CS_PKG)/runtimes/linux-x64/native/libfidius.so target/debug/libfidius.so
	sed -e 's/\$$version\$$/$(VERSION)/' -e '/<files>/,/<\/files>/d' bindings/csharp/Fidius.nuspec > $(CS_PKG)/Fidius.nuspec
	printf '%s\n' '<?xml version="1.0" encoding="utf-8"?>' \
	  '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' \
	  '<Default Extension="nuspec" ContentType="application/octet" />' \
	  '<Default Extension="dll" ContentType="application/octet" />' \
	  '<Default Extension="so" ContentType="application/octet" />' \
	  '</Types>' > '$(CS_PKG)/[Content_Types].xml'
	cd $(CS_PKG) && python3 -m zipfile -c $(CS_NUPKG) Fidius.nuspec '[Content_Types].xml' lib runtimes
	@ls -l $(CS_NUPKG)

# The tests consume the package as an application does: the assembly and the
# native library come out of the .nupkg into the application's directory (what
# a build copies to its output), the tests compile against that Fidius.dll, and
# Mono finds libfidius.so beside it, with no LD_LIBRARY_PATH.
CS_APP := $(CS_OUT)/app

test-csharp: csharp-nupkg plugins
	@command -v mcs >/dev/null && command -v mono >/dev/null || { echo "mcs/mono not found (apt-get install mono-mcs mono-runtime)"; exit 1; }
	rm -rf $(CS_OUT)/extracted $(CS_APP)
	python3 -m zipfile -e $(CS_NUPKG) $(CS_OUT)/extracted
	mkdir -p $(CS_APP)
	cp $(CS_OUT)/extracted/lib/net45/Fidius.dll $(CS_OUT)/extracted/runtimes/linux-x64/native/libfidius.so $(CS_APP)/
	mcs -nologo -warnaserror -r:$(CS_APP)/Fidius.dll -out:$(CS_APP)/FidiusTests.exe bindings/csharp/tests/FidiusTests.cs
	cd $(CS_APP) && env -u LD_LIBRARY_PATH FIDIUS_EXPECT_LIBRARY=$(CS_APP)/libfidius.so mono --debug ./FidiusTests.exe $(PLUGINS)

# The Python package: a platform wheel (py3-none-linux_x86_64) of bindings/python
# with the debug library, stripped, bundled next to the package (fidius/libfidius.so).
# Sources are staged in target/python/src so the tree stays clean. Without build
# isolation when setuptools and wheel are installed (offline); else pip fetches
# them from the index into an isolated build environment.
PY_OUT := $(ROOT)/target/python
PY_BUILD_ISOLATION = $(shell python3 -c 'import setuptools, wheel' >/dev/null 2>&1 && echo --no-build-isolation)

python-wheel: build
	@python3 -m pip --version >/dev/null 2>&1 || { echo "pip not found (apt-get install python3-pip)"; exit 1; }
	rm -rf $(PY_OUT)/src $(PY_OUT)/dist
	mkdir -p $(PY_OUT)/src/fidius $(PY_OUT)/dist
	cp bindings/python/pyproject.toml bindings/python/setup.py bindings/python/README.md $(PY_OUT)/src/
	cp bindings/python/fidius/__init__.py bindings/python/fidius/py.typed $(PY_OUT)/src/fidius/
	strip --strip-debug -o $(PY_OUT)/src/fidius/libfidius.so target/debug/libfidius.so
	cd $(PY_OUT)/src && FIDIUS_VERSION=$(VERSION) python3 -m pip wheel --quiet --no-deps $(PY_BUILD_ISOLATION) -w $(PY_OUT)/dist .
	@ls $(PY_OUT)/dist/*.whl

# The tests run from a fresh venv with the wheel installed (--no-index), outside
# the source tree, with no variable pointing at the library: they check that the
# installed package loads the library it bundles.
test-python: python-wheel plugins
	rm -rf $(PY_OUT)/venv $(PY_OUT)/tests
	python3 -m venv $(PY_OUT)/venv
	$(PY_OUT)/venv/bin/python -m pip install --quiet --no-index --no-deps $(PY_OUT)/dist/fidius-*.whl
	mkdir -p $(PY_OUT)/tests
	cp bindings/python/test_fidius.py $(PY_OUT)/tests/
	cd $(PY_OUT)/tests && env -u FIDIUS_LIBRARY -u LD_LIBRARY_PATH -u PYTHONPATH PYTHONDONTWRITEBYTECODE=1 \
	  FIDIUS_PLUGIN_DIR=$(PLUGINS) FIDIUS_TEST_INSTALLED=1 $(PY_OUT)/venv/bin/python -m unittest -v test_fidius

clean:
	$(CARGO) clean
	$(MAKE) -C examples-c clean
