package fidius

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include "fidius.h"

// The file libfidius was loaded from (NULL if the loader cannot say).
static const char *fidiusgo_library_path(void) {
	Dl_info info;
	if (dladdr((void *)fidius_version, &info) == 0) return NULL;
	return info.dli_fname;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// ErrVersionMismatch is matched (errors.Is) by the error NewHost,
// NewEgressPolicy and NewHostInterface return when the libfidius loaded at
// run time is not compatible with the fidius.h this package was compiled
// against (see CompatibleVersions): its structs (fidius_bytes, ...) and
// entry points may differ, so the package refuses to call it rather than
// corrupt memory.
var ErrVersionMismatch = errors.New("fidius: libfidius version mismatch")

// VersionError is the error of a refused library (errors.Is(err, ErrVersionMismatch)).
type VersionError struct {
	Library string // the loaded library's version (fidius_version())
	Binding string // the version this package was compiled for (HeaderVersion)
	Path    string // the file the library was loaded from ("" if unknown)
	Reason  string // why they are incompatible
}

func (e *VersionError) Error() string {
	where := ""
	if e.Path != "" {
		where = " (" + e.Path + ")"
	}
	return fmt.Sprintf("fidius: libfidius %s%s is not compatible with this binding, built for libfidius %s: %s",
		e.Library, where, e.Binding, e.Reason)
}

// Is makes errors.Is(err, ErrVersionMismatch) hold.
func (e *VersionError) Is(target error) bool { return target == ErrVersionMismatch }

// parseVersion splits "MAJOR.MINOR.PATCH" (optionally followed by a semver
// "-pre-release" or "+build" suffix, which is ignored) into numbers.
func parseVersion(v string) (major, minor, patch uint64, ok bool) {
	core := v
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		if i == len(core)-1 {
			return 0, 0, 0, false
		}
		core = core[:i]
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return 0, 0, 0, false
	}
	var nums [3]uint64
	for i, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return 0, 0, 0, false
		}
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return 0, 0, 0, false
		}
		nums[i] = n
	}
	return nums[0], nums[1], nums[2], true
}

// CompatibleVersions reports whether a library of version library can be
// used by a binding written for version binding (both "MAJOR.MINOR.PATCH"):
// nil when they have the same MAJOR and, while MAJOR is 0, the same MINOR
// (semver: before 1.0 a minor release may change the ABI), else an error
// saying why (also for a malformed version).
func CompatibleVersions(library, binding string) error {
	lmaj, lmin, _, lok := parseVersion(library)
	bmaj, bmin, _, bok := parseVersion(binding)
	switch {
	case !lok:
		return fmt.Errorf("library version %q is not MAJOR.MINOR.PATCH", library)
	case !bok:
		return fmt.Errorf("binding version %q is not MAJOR.MINOR.PATCH", binding)
	case lmaj != bmaj:
		return fmt.Errorf("major versions differ (%d, %d)", lmaj, bmaj)
	case lmaj == 0 && lmin != bmin:
		return fmt.Errorf("minor versions differ (%d, %d) before 1.0", lmin, bmin)
	}
	return nil
}

var (
	versionOnce sync.Once
	versionErr  error
)

// CheckLibrary returns nil when the libfidius loaded is compatible with the
// fidius.h this package was compiled against (HeaderVersion), else a
// *VersionError naming both versions and the library's file (computed once).
// NewHost, NewEgressPolicy and NewHostInterface call it first and return its
// error: no handle is ever made with a mismatched library.
func CheckLibrary() error {
	versionOnce.Do(func() {
		var lib string
		if v := C.fidius_version(); v != nil {
			lib = C.GoString(v)
		}
		if err := CompatibleVersions(lib, HeaderVersion); err != nil {
			ve := &VersionError{Library: lib, Binding: HeaderVersion, Reason: err.Error()}
			if p := C.fidiusgo_library_path(); p != nil {
				ve.Path = C.GoString(p)
			}
			versionErr = ve
		}
	})
	return versionErr
}
