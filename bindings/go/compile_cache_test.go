package fidius

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The child process of TestCompileCache/persists_across_hosts: the cache
// directory it is to use.
const compileCacheChildEnv = "FIDIUS_GO_COMPILE_CACHE_DIR"

// cacheEntries lists the cache directory: it must hold exactly one regular
// *.cwasm file with mode 0600, and nothing else. Returns its name and inode.
func cacheEntries(t *testing.T, cache string) (string, uint64) {
	t.Helper()
	entries, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("compile cache %s: want exactly one entry, no partial files; got %q", cache, names)
	}
	name := entries[0].Name()
	info, err := os.Lstat(filepath.Join(cache, name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(name, ".cwasm") || !info.Mode().IsRegular() || info.Mode().Perm() != 0o600 {
		t.Fatalf("compile cache entry %s: mode %v, want a regular *.cwasm file with mode 0600", name, info.Mode())
	}
	return name, info.Sys().(*syscall.Stat_t).Ino
}

// Two hosts in turn, each freed (with its plugin) before the next: the first
// compiles calc and stores it, the second loads it from the cache.
func compileCachePersists(t *testing.T, cache string) {
	var first string
	var firstIno uint64
	for round := 1; round <= 2; round++ {
		h, err := NewHost(HostConfig{SearchPaths: []string{pluginDir(t)}, CompileCache: cache})
		if err != nil {
			t.Fatalf("round %d: NewHost with CompileCache %s: %v", round, cache, err)
		}
		calc, err := h.Load("calc", nil)
		if err != nil {
			h.Close()
			t.Fatalf("round %d: Load(calc): %v", round, err)
		}
		if got := callAdd(t, calc, 1, 2); got != 3 {
			t.Errorf("round %d: calc add(1, 2) = %d", round, got)
		}
		if w := calc.Warnings(); len(w) != 0 {
			t.Errorf("round %d: warnings %q", round, w)
		}
		calc.Close()
		h.Close()
		name, ino := cacheEntries(t, cache)
		if round == 1 {
			first, firstIno = name, ino
		} else if name != first || ino != firstIno {
			// A miss would have compiled again and renamed a fresh file into place.
			t.Errorf("round 2 rewrote the entry (%s inode %d, was %s inode %d): the cache was not read", name, ino, first, firstIno)
		}
	}
}

func TestCompileCache(t *testing.T) {
	// The WASM engine of a process keeps every component it compiled while
	// any host or plugin uses it, and a load it has compiled before reads
	// neither the cache nor writes to it. So, like tests/compile_cache.rs
	// (a test binary of its own), this runs in a process of its own, with
	// no other host alive: the test binary again, running only this subtest.
	t.Run("persists across hosts", func(t *testing.T) {
		if dir := os.Getenv(compileCacheChildEnv); dir != "" {
			compileCachePersists(t, dir)
			return
		}
		cache := t.TempDir() // fresh, mode 0700
		cmd := exec.Command(os.Args[0], "-test.run=^TestCompileCache$/^persists_across_hosts$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), compileCacheChildEnv+"="+cache)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestCompileCache/persists_across_hosts") {
			t.Fatalf("the test in a process of its own: %v\n%s", err, out)
		}
		cacheEntries(t, cache) // still exactly one private entry
	})

	t.Run("a missing directory is made private", func(t *testing.T) {
		cache := filepath.Join(t.TempDir(), "made")
		h, err := NewHost(HostConfig{CompileCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		if info, err := os.Stat(cache); err != nil || !info.IsDir() || info.Mode().Perm() != 0o700 {
			t.Fatalf("made %s: %v %v", cache, info, err)
		}
	})

	t.Run("refuses a directory writable by others", func(t *testing.T) {
		cache := t.TempDir()
		if err := os.Chmod(cache, 0o777); err != nil {
			t.Fatal(err)
		}
		_, err := NewHost(HostConfig{SearchPaths: []string{pluginDir(t)}, CompileCache: cache})
		e := wantStatus(t, "CompileCache mode 0777", err, StatusFileRefused)
		if !strings.Contains(e.Message, "writable by others") {
			t.Errorf("message: %q", e.Message)
		}
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Chmod(cache, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(cache, link); err != nil {
			t.Fatal(err)
		}
		_, err = NewHost(HostConfig{CompileCache: link})
		wantStatus(t, "CompileCache a symbolic link", err, StatusFileRefused)
	})

	t.Run("refuses a relative path", func(t *testing.T) {
		// No check of the binding's own: libfidius refuses it (and makes nothing).
		_, err := NewHost(HostConfig{CompileCache: "relative/cache"})
		e := wantStatus(t, "CompileCache relative/cache", err, StatusInvalidArgument)
		if !strings.Contains(e.Message, "absolute") {
			t.Errorf("message: %q", e.Message)
		}
		if _, err := os.Stat("relative"); !os.IsNotExist(err) {
			t.Errorf("a relative cache directory was made: %v", err)
		}
		// A NUL byte is the binding's own check (C would cut the path short).
		_, err = NewHost(HostConfig{CompileCache: filepath.Join(t.TempDir(), "a\x00b")})
		wantStatus(t, "CompileCache with a NUL byte", err, StatusInvalidArgument)
	})
}
