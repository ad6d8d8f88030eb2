package fidius

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Streams with the `stream` fixtures: StreamerImpl (native, fidius 0.5.9)
// and the `stream` WASM package, both implementing Streamer:
//
//	0 count(n: u64, marker: String) -> Stream<u64>   (marker: a file that gets one
//	                                                  line "dropped" when the producer goes)
//	1 blobs(count: u32, size: u32) -> Stream<String>  (item i: size copies of 'a'+i)
//	2 explode(at: u64) -> Stream<u64>                 (panics at `at`)
//	3 sum(start: u64, items: Stream<u64>) -> u64      (client stream)
//	4 shout(prefix: String, words: Stream<String>) -> Stream<String>  (bidirectional)
//	5 add(a: i64, b: i64) -> i64
//	6 points(n: u32) -> Stream<Point{x, y, label}>
//	7 sum_checked(items: Stream<u64>) -> Result<u64, PluginError>  (UNLUCKY at 13)
//	8 forever(marker: String) -> Stream<u64>          (endless)
const (
	streamCount      = 0
	streamBlobs      = 1
	streamExplode    = 2
	streamSum        = 3
	streamShout      = 4
	streamAdd        = 5
	streamPoints     = 6
	streamSumChecked = 7
	streamForever    = 8
)

func wireU64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func wireU32Pair(a, b uint32) []byte {
	return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, a), b)
}

func countInput(n uint64, marker string) []byte { return append(wireU64(n), wireString(marker)...) }

func unwireU64(t *testing.T, b []byte) uint64 {
	t.Helper()
	if len(b) != 8 {
		t.Fatalf("a u64 item of %d bytes: %x", len(b), b)
	}
	return binary.LittleEndian.Uint64(b)
}

func unwireString(t *testing.T, b []byte) string {
	t.Helper()
	if len(b) < 8 || uint64(len(b)-8) != binary.LittleEndian.Uint64(b) {
		t.Fatalf("not a wire string: %d bytes", len(b))
	}
	return string(b[8:])
}

func u64Items(t *testing.T, items [][]byte) []uint64 {
	t.Helper()
	out := []uint64{}
	for _, b := range items {
		out = append(out, unwireU64(t, b))
	}
	return out
}

func upTo(n uint64) []uint64 {
	out := []uint64{}
	for i := uint64(0); i < n; i++ {
		out = append(out, i)
	}
	return out
}

func markerLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == "dropped" {
			n++
		}
	}
	return n
}

func loadNativeStreamer(t *testing.T, opts *LoadOptions) *Plugin {
	t.Helper()
	return load(t, newHost(t, HostConfig{}), "StreamerImpl", opts)
}

// The WASM streamer, granted dir for its drop markers.
func loadWasmStreamer(t *testing.T, dir string) *Plugin {
	t.Helper()
	return load(t, newHost(t, HostConfig{}), "stream", &LoadOptions{Grants: []string{"fs:rw:" + dir}})
}

// eachStreamer runs f as a subtest with the native and the WASM streamer;
// markers is a directory the plugin may write its drop markers in.
func eachStreamer(t *testing.T, f func(t *testing.T, p *Plugin, markers string)) {
	t.Run("native", func(t *testing.T) {
		f(t, loadNativeStreamer(t, nil), t.TempDir())
	})
	t.Run("wasm", func(t *testing.T) {
		dir := t.TempDir()
		f(t, loadWasmStreamer(t, dir), dir)
	})
}

func isWasm(p *Plugin) bool { return p.Info().Runtime == RuntimeWASM }

// countedSource is a Source of wire items that counts its Close calls and
// the pulls made on another OS thread than tid (when tid != 0).
type countedSource struct {
	items  [][]byte
	failAt int // answer failErr (or panic, when failErr is nil) at this pull; -1: never
	fail   error
	pulled int
	closed int32
	tid    int
	others int32
}

func newCounted(items [][]byte) *countedSource { return &countedSource{items: items, failAt: -1} }

func (s *countedSource) Next() ([]byte, bool, error) {
	if s.tid != 0 && syscall.Gettid() != s.tid {
		atomic.AddInt32(&s.others, 1)
	}
	if s.pulled == s.failAt {
		if s.fail == nil {
			panic("source bug")
		}
		return nil, false, s.fail
	}
	if s.pulled == len(s.items) {
		return nil, false, nil
	}
	s.pulled++
	return s.items[s.pulled-1], true, nil
}

func (s *countedSource) Close() error {
	atomic.AddInt32(&s.closed, 1)
	return nil
}

func (s *countedSource) closes() int32 { return atomic.LoadInt32(&s.closed) }

func wireU64s(vs ...uint64) [][]byte {
	out := [][]byte{}
	for _, v := range vs {
		out = append(out, wireU64(v))
	}
	return out
}

func wireStringItems(ss ...string) [][]byte {
	out := [][]byte{}
	for _, s := range ss {
		out = append(out, wireString(s))
	}
	return out
}

// checkLive fails when source handles are still registered after the test body.
func checkLive(t *testing.T, before int64) {
	t.Helper()
	if live := atomicLive(); live != before {
		t.Errorf("%d callback handles live after the test (leaked or released twice)", live-before)
	}
}

func TestStreamStatusValues(t *testing.T) {
	if StatusStreamEnd != 65 || StatusStreamSource != 66 {
		t.Fatalf("StatusStreamEnd = %d, StatusStreamSource = %d", StatusStreamEnd, StatusStreamSource)
	}
	for _, s := range []Status{StatusStreamEnd, StatusStreamSource} {
		if !strings.Contains(s.String(), "stream") {
			t.Errorf("%d: name %q", int32(s), s.String())
		}
	}
	t.Logf("%v / %v", StatusStreamEnd, StatusStreamSource)
}

// count(n) yields 0..n in order, drops its producer once at the end, and
// answers io.EOF after it; Close after the end drops nothing twice.
func TestStreamServerInOrder(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, markers string) {
		for _, n := range []uint64{0, 1, 10_000} {
			marker := filepath.Join(markers, fmt.Sprintf("count%d", n))
			s, err := p.OpenStream(streamCount, FormatWire, countInput(n, marker))
			if err != nil {
				t.Fatalf("count(%d): %v", n, err)
			}
			var got []uint64
			for {
				item, err := s.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("count(%d) after %d items: %v", n, len(got), err)
				}
				got = append(got, unwireU64(t, item))
			}
			if len(got) != int(n) || (n > 0 && !reflect.DeepEqual(got, upTo(n))) {
				t.Fatalf("count(%d): %d items, first/last wrong or out of order", n, len(got))
			}
			if l := markerLines(marker); l != 1 {
				t.Errorf("count(%d): the producer was dropped %d times at the end", n, l)
			}
			if _, err := s.Next(); err != io.EOF {
				t.Errorf("count(%d): after the end: %v, want io.EOF", n, err)
			}
			s.Close()
			s.Close() // twice is harmless
			if l := markerLines(marker); l != 1 {
				t.Errorf("count(%d): closing an ended stream dropped again (%d lines)", n, l)
			}
			if _, err := s.Next(); err != ErrClosed {
				t.Errorf("Next after Close: %v, want ErrClosed", err)
			}
		}
	})
}

func TestStreamItemsLargerThan100KB(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, _ string) {
		for _, size := range []uint32{1, 5_000, 300_000} {
			s, err := p.OpenStream(streamBlobs, FormatWire, wireU32Pair(4, size))
			if err != nil {
				t.Fatal(err)
			}
			items, err := s.Collect()
			s.Close()
			if err != nil || len(items) != 4 {
				t.Fatalf("blobs(4, %d): %d items, %v", size, len(items), err)
			}
			for i, b := range items {
				str := unwireString(t, b)
				want := strings.Repeat(string(rune('a'+i)), int(size))
				if str != want {
					t.Errorf("blobs(4, %d): item %d: %d bytes, not all %q", size, i, len(str), 'a'+i)
				}
			}
		}
	})
}

// Closing a stream early cancels it: the producer is dropped exactly once,
// whether it was pulled from or not, and by All's early break too.
func TestStreamEarlyCloseDropsProducerOnce(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, markers string) {
		endless := filepath.Join(markers, "forever")
		s, err := p.OpenStream(streamForever, FormatWire, wireString(endless))
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(0); i < 5; i++ {
			item, err := s.Next()
			if err != nil || unwireU64(t, item) != i {
				t.Fatalf("forever item %d: %x %v", i, item, err)
			}
		}
		if l := markerLines(endless); l != 0 {
			t.Fatalf("dropped while open (%d)", l)
		}
		s.Close()
		if l := markerLines(endless); l != 1 {
			t.Errorf("Close dropped the producer %d times, want 1", l)
		}
		s.Close()
		if l := markerLines(endless); l != 1 {
			t.Errorf("a second Close dropped again (%d)", l)
		}

		unpulled := filepath.Join(markers, "unpulled")
		s, err = p.OpenStream(streamCount, FormatWire, countInput(100, unpulled))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if l := markerLines(unpulled); l != 1 {
			t.Errorf("never pulled: dropped %d times", l)
		}

		broken := filepath.Join(markers, "all-break")
		s, err = p.OpenStream(streamForever, FormatWire, wireString(broken))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		s.All()(func(item []byte, err error) bool {
			if err != nil {
				t.Fatal(err)
			}
			n++
			return n < 3 // break after three
		})
		if n != 3 || markerLines(broken) != 1 {
			t.Errorf("All with a break: %d items, %d drops", n, markerLines(broken))
		}
		if _, err := s.Next(); err != ErrClosed {
			t.Errorf("All closes the stream: Next answers %v", err)
		}
	})
}

// explode(3): items 0, 1, 2, then the panic (native) or trap (WASM) once,
// then the end; the plugin serves on.
func TestStreamFailsMidway(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, _ string) {
		s, err := p.OpenStream(streamExplode, FormatWire, wireU64(3))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		items, err := s.Collect()
		if got := u64Items(t, items); !reflect.DeepEqual(got, []uint64{0, 1, 2}) {
			t.Errorf("items before the failure: %v", got)
		}
		want := StatusPluginPanic
		if isWasm(p) {
			want = StatusTrap
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != want || !errors.Is(err, want) {
			t.Fatalf("failure: %T %v, want status %v", err, err, want)
		}
		if _, err := s.Next(); err != io.EOF {
			t.Errorf("after the failure: %v, want io.EOF", err)
		}
		out, err := p.CallWire(streamAdd, wireI64Pair(2, 40))
		if err != nil || int64(binary.LittleEndian.Uint64(out)) != 42 {
			t.Errorf("add after the failure: %x %v", out, err)
		}
		// All yields the failure once, last.
		s2, err := p.OpenStream(streamExplode, FormatWire, wireU64(2))
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		s2.All()(func(item []byte, err error) bool {
			if err != nil {
				seen = append(seen, "err")
			} else {
				seen = append(seen, fmt.Sprint(unwireU64(t, item)))
			}
			return true
		})
		if strings.Join(seen, ",") != "0,1,err" {
			t.Errorf("All over explode(2): %v", seen)
		}
	})
}

func TestStreamEightGoroutinesOnePlugin(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, markers string) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				n := uint64(2000 + g)
				marker := filepath.Join(markers, fmt.Sprintf("g%d", g))
				s, err := p.OpenStream(streamCount, FormatWire, countInput(n, marker))
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				want := uint64(0)
				for item, err := s.Next(); err != io.EOF; item, err = s.Next() {
					if err != nil {
						errs <- err
						return
					}
					if len(item) != 8 || binary.LittleEndian.Uint64(item) != want {
						errs <- fmt.Errorf("goroutine %d: item %d is %x", g, want, item)
						return
					}
					want++
				}
				if want != n || markerLines(marker) != 1 {
					errs <- fmt.Errorf("goroutine %d: %d items of %d, %d drops", g, want, n, markerLines(marker))
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// sum(start, items): the Source runs on the calling goroutine's thread,
// and is released (Close, the cgo.Handle) exactly once by the time the
// call returns.
func TestStreamClientSum(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, _ string) {
		before := atomicLive()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var items []uint64
		for i := uint64(1); i <= 100; i++ {
			items = append(items, i)
		}
		src := newCounted(wireU64s(items...))
		src.tid = syscall.Gettid()
		out, err := p.CallStreaming(streamSum, FormatWire, wireU64(10), src)
		if err != nil || unwireU64(t, out) != 10+5050 {
			t.Fatalf("sum: %x %v", out, err)
		}
		if src.closes() != 1 {
			t.Errorf("source closed %d times by the call's return, want 1", src.closes())
		}
		if o := atomic.LoadInt32(&src.others); o != 0 {
			t.Errorf("%d pulls on another thread than the caller's", o)
		}
		checkLive(t, before)

		empty := newCounted(nil)
		out, err = p.CallStreaming(streamSum, FormatWire, wireU64(7), empty)
		if err != nil || unwireU64(t, out) != 7 || empty.closes() != 1 {
			t.Errorf("sum of nothing: %x %v, closed %d", out, err, empty.closes())
		}
		// A SourceFunc and SliceSource (no Close to call).
		out, err = p.CallStreaming(streamSum, FormatWire, wireU64(0), SliceSource(wireU64s(1, 2, 3)...))
		if err != nil || unwireU64(t, out) != 6 {
			t.Errorf("sum over SliceSource: %x %v", out, err)
		}
		// Item bytes may be reused by the source once it returns: they are copied.
		buf := make([]byte, 8)
		i := uint64(0)
		out, err = p.CallStreaming(streamSum, FormatWire, wireU64(0), SourceFunc(func() ([]byte, bool, error) {
			if i == 1000 {
				return nil, false, nil
			}
			i++
			binary.LittleEndian.PutUint64(buf, i)
			return buf, true, nil
		}))
		if err != nil || unwireU64(t, out) != 500500 {
			t.Errorf("sum over a reused buffer: %x %v", out, err)
		}
		checkLive(t, before)
	})
}

// sum_checked's own error, a Source's error and a Source's panic, each with
// the source released once.
func TestStreamClientErrors(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, _ string) {
		before := atomicLive()
		src := newCounted(wireU64s(1, 2, 13, 4))
		_, err := p.CallStreaming(streamSumChecked, FormatWire, nil, src)
		var pe *PluginError
		if !errors.As(err, &pe) || pe.Code != "UNLUCKY" || pe.Message != "item 13" || !errors.Is(err, StatusPluginError) {
			t.Fatalf("sum_checked: %T %v", err, err)
		}
		if src.closes() != 1 {
			t.Errorf("closed %d times", src.closes())
		}

		// The source fails at its third pull: the plugin saw 1 + 2 and an
		// end, but the call reports the source's failure, with its error.
		mine := errors.New("the database went away")
		src = newCounted(wireU64s(1, 2, 3, 4))
		src.failAt, src.fail = 2, mine
		_, err = p.CallStreaming(streamSum, FormatWire, wireU64(0), src)
		var e *Error
		if !errors.As(err, &e) || e.Status != StatusStreamSource || !errors.Is(err, StatusStreamSource) {
			t.Fatalf("failing source: %T %v", err, err)
		}
		if !errors.Is(err, mine) || !strings.Contains(err.Error(), mine.Error()) || !strings.Contains(e.Message, "-1") {
			t.Errorf("the source's error is lost: %v (unwraps to %v)", err, errors.Unwrap(err))
		}
		if src.closes() != 1 {
			t.Errorf("failing source closed %d times", src.closes())
		}

		src = newCounted(wireU64s(1, 2, 3))
		src.failAt = 1 // panics
		_, err = p.CallStreaming(streamSum, FormatWire, wireU64(0), src)
		if !errors.As(err, &e) || e.Status != StatusStreamSource || !strings.Contains(err.Error(), "source bug") ||
			!strings.Contains(e.Message, "-2") || e.Unwrap() == nil {
			t.Errorf("panicking source: %v", err)
		}
		if src.closes() != 1 {
			t.Errorf("panicking source closed %d times", src.closes())
		}
		// The plugin serves on.
		out, err := p.CallStreaming(streamSum, FormatWire, wireU64(1), SliceSource(wireU64(2)))
		if err != nil || unwireU64(t, out) != 3 {
			t.Errorf("sum after failures: %x %v", out, err)
		}
		checkLive(t, before)
	})
}

// shout(prefix, words): each output item is pulled as its input is; the
// source is released once: at the end, at an early Close, on failure.
func TestStreamBidiShout(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, _ string) {
		before := atomicLive()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		src := newCounted(wireStringItems("hi", "yo", "", "fidius"))
		src.tid = syscall.Gettid()
		s, err := p.OpenBidiStream(streamShout, FormatWire, wireString(">"), src)
		if err != nil {
			t.Fatal(err)
		}
		first, err := s.Next()
		if err != nil || unwireString(t, first) != ">HI" {
			t.Fatalf("first: %x %v", first, err)
		}
		rest, err := s.Collect()
		var got []string
		for _, b := range rest {
			got = append(got, unwireString(t, b))
		}
		if err != nil || !reflect.DeepEqual(got, []string{">YO", ">", ">FIDIUS"}) {
			t.Errorf("rest: %q %v", got, err)
		}
		if src.closes() != 1 {
			t.Errorf("source closed %d times at the end", src.closes())
		}
		if o := atomic.LoadInt32(&src.others); o != 0 {
			t.Errorf("%d pulls on another thread than Next's", o)
		}
		s.Close()
		if src.closes() != 1 {
			t.Errorf("Close after the end closed the source again (%d)", src.closes())
		}

		// Opened here, drained by another goroutine.
		var words []string
		for i := 0; i < 50; i++ {
			words = append(words, fmt.Sprintf("w%d", i))
		}
		src = newCounted(wireStringItems(words...))
		s, err = p.OpenBidiStream(streamShout, FormatWire, wireString("-"), src)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan int)
		go func() {
			items, err := s.Collect()
			if err != nil {
				t.Error(err)
			}
			s.Close()
			done <- len(items)
		}()
		select {
		case n := <-done:
			if n != 50 || src.closes() != 1 {
				t.Errorf("moved stream: %d items, closed %d", n, src.closes())
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a stream drained by another goroutine hangs")
		}

		// Closed early: the source is released with it, not before.
		src = newCounted(wireStringItems(words...))
		s, err = p.OpenBidiStream(streamShout, FormatWire, wireString("-"), src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
		if src.closes() != 0 {
			t.Errorf("source released while the stream is open")
		}
		s.Close()
		if src.closes() != 1 {
			t.Errorf("early Close released the source %d times", src.closes())
		}

		// A failing source ends the output with its failure, then the end.
		mine := errors.New("no more words")
		src = newCounted(wireStringItems(words[:5]...))
		src.failAt, src.fail = 2, mine
		s, err = p.OpenBidiStream(streamShout, FormatWire, wireString(""), src)
		if err != nil {
			t.Fatal(err)
		}
		items, err := s.Collect()
		if len(items) != 2 || !errors.Is(err, StatusStreamSource) || !errors.Is(err, mine) {
			t.Errorf("failing source: %d items, %v", len(items), err)
		}
		if _, err := s.Next(); err != io.EOF {
			t.Errorf("after the source's failure: %v", err)
		}
		s.Close()
		if src.closes() != 1 {
			t.Errorf("failing source released %d times", src.closes())
		}
		checkLive(t, before)
	})
}

// SeqSource turns a push iterator (iter.Seq[[]byte]'s shape) into a Source,
// and stops it when the plugin lets go of it early.
func TestStreamSeqSource(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, _ string) {
		before := atomicLive()
		upto := func(n uint64) func(yield func([]byte) bool) {
			return func(yield func([]byte) bool) {
				buf := make([]byte, 8)
				for i := uint64(1); i <= n; i++ {
					binary.LittleEndian.PutUint64(buf, i) // reused: copied before the next pull
					if !yield(buf) {
						return
					}
				}
			}
		}
		out, err := p.CallStreaming(streamSum, FormatWire, wireU64(0), SeqSource(upto(1000)))
		if err != nil || unwireU64(t, out) != 500500 {
			t.Errorf("sum over a SeqSource: %x %v", out, err)
		}

		// An endless seq feeding a stream closed early: yield answers false.
		stopped := make(chan struct{})
		words := func(yield func([]byte) bool) {
			defer close(stopped)
			for i := 0; ; i++ {
				if !yield(wireString(fmt.Sprintf("w%d", i))) {
					return
				}
			}
		}
		s, err := p.OpenBidiStream(streamShout, FormatWire, wireString(""), SeqSource(words))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			item, err := s.Next()
			if err != nil || unwireString(t, item) != fmt.Sprintf("W%d", i) {
				t.Fatalf("item %d: %x %v", i, item, err)
			}
		}
		s.Close()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Fatal("the seq was not stopped when its stream closed")
		}

		// A seq that panics fails the call like a Source's error.
		_, err = p.CallStreaming(streamSum, FormatWire, wireU64(0), SeqSource(func(yield func([]byte) bool) {
			yield(wireU64(1))
			panic("generator bug")
		}))
		if !errors.Is(err, StatusStreamSource) || !strings.Contains(err.Error(), "generator bug") {
			t.Errorf("panicking seq: %v", err)
		}
		// Never pulled (the call is refused first): nothing started, released.
		_, err = p.CallStreaming(streamShout, FormatWire, wireString(""), SeqSource(upto(3)))
		if !errors.Is(err, StatusUnsupported) {
			t.Errorf("shout as a client call: %v", err)
		}
		checkLive(t, before)
	})
}

type point struct {
	X     int32  `json:"x"`
	Y     int32  `json:"y"`
	Label string `json:"label"`
}

func streamerSchema(t *testing.T) string {
	t.Helper()
	for _, f := range []string{"../../tests/fixtures/native/stream/wit/streamer.wit", filepath.Join(pluginDir(t), "libfixture_stream.so.wit")} {
		if b, err := os.ReadFile(f); err == nil {
			return string(b)
		}
	}
	t.Fatal("streamer.wit not found (make plugins)")
	return ""
}

// JSON streams need item types: the component's, or the native plugin's schema.
func TestStreamJSON(t *testing.T) {
	check := func(t *testing.T, p *Plugin) {
		before := atomicLive()
		s, err := p.OpenStream(streamPoints, FormatJSON, []byte(`{"n": 3}`))
		if err != nil {
			t.Fatal(err)
		}
		var pts []point
		for item, err := s.Next(); err != io.EOF; item, err = s.Next() {
			if err != nil {
				t.Fatal(err)
			}
			var pt point
			if err := json.Unmarshal(item, &pt); err != nil {
				t.Fatalf("item %s: %v", item, err)
			}
			pts = append(pts, pt)
		}
		s.Close()
		want := []point{{0, 0, "p0"}, {1, -1, "p1"}, {2, -2, "p2"}}
		if !reflect.DeepEqual(pts, want) {
			t.Errorf("points: %+v", pts)
		}
		// By name, with Go values, items decoded.
		s, err = p.InvokeStream("points", 2)
		if err != nil {
			t.Fatal(err)
		}
		pts = nil
		for {
			var pt point
			if err := s.Decode(&pt); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			pts = append(pts, pt)
		}
		s.Close()
		if !reflect.DeepEqual(pts, want[:2]) {
			t.Errorf("InvokeStream points: %+v", pts)
		}
		s, err = p.OpenStream(streamCount, FormatJSON, []byte(`[4, ""]`))
		if err != nil {
			t.Fatal(err)
		}
		items, err := s.Collect()
		s.Close()
		if err != nil || len(items) != 4 || string(items[3]) != "3" {
			t.Errorf("count in JSON: %q %v", items, err)
		}
		if _, err := p.OpenStream(streamCount, FormatJSON, []byte(`["four", ""]`)); !errors.Is(err, StatusSerialization) {
			t.Errorf("wrong argument types: %v", err)
		}
		// Client stream: arguments and result in JSON, items in wire bytes.
		out, err := p.CallStreaming(streamSum, FormatJSON, []byte("[10]"), SliceSource(wireU64s(2, 3)...))
		if err != nil || string(out) != "15" {
			t.Errorf("sum in JSON: %s %v", out, err)
		}
		var total uint64
		if err := p.InvokeStreaming("sum", &total, SliceSource(wireU64s(2, 3)...), 10); err != nil || total != 15 {
			t.Errorf("InvokeStreaming sum: %d %v", total, err)
		}
		if err := p.InvokeStreaming("sum_checked", &total, SliceSource(wireU64s(13)...)); !errors.Is(err, StatusPluginError) {
			t.Errorf("InvokeStreaming sum_checked: %v", err)
		}
		src := newCounted(wireStringItems("a", "b"))
		s, err = p.InvokeBidiStream("shout", src, "+")
		if err != nil {
			t.Fatal(err)
		}
		var shouted []string
		s.All()(func(item []byte, err error) bool {
			var w string
			if err == nil {
				err = json.Unmarshal(item, &w)
			}
			if err != nil {
				t.Error(err)
				return false
			}
			shouted = append(shouted, w)
			return true
		})
		if !reflect.DeepEqual(shouted, []string{"+A", "+B"}) || src.closes() != 1 {
			t.Errorf("InvokeBidiStream shout: %q, source closed %d", shouted, src.closes())
		}
		// An unknown name reaches no plugin: the source is still released.
		src = newCounted(nil)
		if _, err := p.InvokeBidiStream("whisper", src); !errors.Is(err, StatusMethodIndex) || src.closes() != 1 {
			t.Errorf("unknown name: %v, source closed %d", err, src.closes())
		}
		d, err := p.Describe()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range d.Methods {
			wantItem := map[string]string{"count": "u64", "points": "point", "shout": "string", "forever": "u64", "blobs": "string", "explode": "u64"}[m.Name]
			if m.StreamItem != wantItem {
				t.Errorf("describe %s: stream item %q, want %q", m.Name, m.StreamItem, wantItem)
			}
		}
		checkLive(t, before)
	}
	t.Run("native with schema", func(t *testing.T) {
		check(t, loadNativeStreamer(t, &LoadOptions{Schema: streamerSchema(t)}))
	})
	t.Run("wasm", func(t *testing.T) {
		check(t, loadWasmStreamer(t, t.TempDir()))
	})
	t.Run("native without schema", func(t *testing.T) {
		// A copy of the library without its <library>.wit beside it.
		lib, err := os.ReadFile(filepath.Join(pluginDir(t), "libfixture_stream.so"))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "libfixture_stream.so"), lib, 0o755); err != nil {
			t.Fatal(err)
		}
		h, err := NewHost(HostConfig{SearchPaths: []string{dir}})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		p := load(t, h, "StreamerImpl", nil)
		if _, err := p.OpenStream(streamPoints, FormatJSON, []byte(`{"n": 3}`)); !errors.Is(err, StatusUnsupported) {
			t.Errorf("JSON items of unknown type: %v", err)
		}
		s, err := p.OpenStream(streamCount, FormatWire, countInput(3, ""))
		if err != nil {
			t.Fatal(err)
		}
		items, err := s.Collect()
		s.Close()
		if err != nil || !reflect.DeepEqual(u64Items(t, items), []uint64{0, 1, 2}) {
			t.Errorf("wire items without a schema: %v", err)
		}
	})
}

// The kinds a plugin with types can check are; refused sources are released.
func TestStreamKindsAndBadArguments(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, _ string) {
		before := atomicLive()
		if _, err := p.CallWire(streamCount, countInput(3, "")); !errors.Is(err, StatusUnsupported) {
			t.Errorf("a stream called as a call: %v", err)
		}
		if _, err := p.OpenStream(streamAdd, FormatWire, wireI64Pair(1, 2)); !errors.Is(err, StatusUnsupported) {
			t.Errorf("a call opened as a stream: %v", err)
		}
		src := newCounted(wireU64s(1))
		if _, err := p.CallStreaming(streamShout, FormatWire, wireString("x"), src); !errors.Is(err, StatusUnsupported) || src.closes() != 1 {
			t.Errorf("a bidirectional method as a client call: %v, source closed %d", err, src.closes())
		}
		if _, err := p.OpenStream(99, FormatWire, nil); !errors.Is(err, StatusMethodIndex) {
			t.Errorf("method 99: %v", err)
		}
		if _, err := p.OpenStream(streamCount, Format(7), nil); !errors.Is(err, StatusInvalidArgument) {
			t.Errorf("format 7: %v", err)
		}
		src = newCounted(nil)
		if _, err := p.OpenBidiStream(streamShout, Format(7), nil, src); !errors.Is(err, StatusInvalidArgument) || src.closes() != 1 {
			t.Errorf("a failed bidirectional start: %v, source closed %d", err, src.closes())
		}
		if _, err := p.OpenStream(streamCount, FormatWire, []byte{1, 2}); !errors.Is(err, StatusSerialization) {
			t.Errorf("truncated arguments: %v", err)
		}
		if _, err := p.CallStreaming(streamSum, FormatWire, wireU64(0), nil); !errors.Is(err, StatusNullArgument) {
			t.Errorf("nil source: %v", err)
		}
		if _, err := p.OpenBidiStream(streamShout, FormatWire, wireString(""), nil); !errors.Is(err, StatusNullArgument) {
			t.Errorf("nil bidirectional source: %v", err)
		}
		checkLive(t, before)
	})
}

// A stream keeps what it needs of its plugin; a closed plugin opens none,
// and releases the source it was given.
func TestStreamOutlivesPlugin(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, _ string) {
		s, err := p.OpenStream(streamCount, FormatWire, countInput(10, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p.Close()
		items, err := s.Collect()
		if err != nil || !reflect.DeepEqual(u64Items(t, items), upTo(10)) {
			t.Errorf("after Plugin.Close: %d items, %v", len(items), err)
		}
		if _, err := p.OpenStream(streamCount, FormatWire, countInput(1, "")); err != ErrClosed {
			t.Errorf("OpenStream on a closed plugin: %v", err)
		}
		src := newCounted(nil)
		if _, err := p.CallStreaming(streamSum, FormatWire, wireU64(0), src); err != ErrClosed || src.closes() != 1 {
			t.Errorf("CallStreaming on a closed plugin: %v, source closed %d", err, src.closes())
		}
	})
}

// Streams dropped without Close are freed by their finalizer: the producer
// dropped once, the bidirectional source released.
func TestStreamFinalizer(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, markers string) {
		before := atomicLive()
		marker := filepath.Join(markers, "finalized")
		src := newCounted(wireStringItems("a", "b", "c"))
		func() {
			s, err := p.OpenStream(streamForever, FormatWire, wireString(marker))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Next(); err != nil {
				t.Fatal(err)
			}
			b, err := p.OpenBidiStream(streamShout, FormatWire, wireString(""), src)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Next(); err != nil {
				t.Fatal(err)
			}
		}()
		deadline := time.Now().Add(10 * time.Second)
		for (atomicLive() != before || markerLines(marker) != 1) && time.Now().Before(deadline) {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
		if markerLines(marker) != 1 || src.closes() != 1 {
			t.Errorf("finalizers: %d drops, source closed %d", markerLines(marker), src.closes())
		}
		checkLive(t, before)
	})
}

// pullUntilError pulls s on a goroutine of its own until Next (or
// NextContext, when ctx is not nil) fails, counting the items (checked to
// be 0, 1, 2, ...); the failure is sent on the returned channel.
func pullUntilError(s *Stream, ctx context.Context, pulled *atomic.Int64) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			var item []byte
			var err error
			if ctx != nil {
				item, err = s.NextContext(ctx)
			} else {
				item, err = s.Next()
			}
			if err != nil {
				done <- err
				return
			}
			if len(item) != 8 || binary.LittleEndian.Uint64(item) != uint64(pulled.Load()) {
				done <- fmt.Errorf("item %d is %x", pulled.Load(), item)
				return
			}
			pulled.Add(1)
		}
	}()
	return done
}

// waitPulled waits until at least n items were pulled.
func waitPulled(t *testing.T, pulled *atomic.Int64, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for pulled.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d items pulled in 30 s", pulled.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

func waitErr(t *testing.T, label string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the pulling goroutine was not stopped within 30 s", label)
		return nil
	}
}

// checkMarker: a native producer is dropped exactly once; a WASM stream
// cancelled mid-item drops its instance without running the destructor, so
// at most once.
func checkMarker(t *testing.T, p *Plugin, label, marker string) {
	t.Helper()
	l := markerLines(marker)
	if isWasm(p) {
		if l > 1 {
			t.Errorf("%s: the WASM producer was dropped %d times, want at most 1", label, l)
		}
		t.Logf("%s: WASM drop marker: %d line(s)", label, l)
	} else if l != 1 {
		t.Errorf("%s: the native producer was dropped %d times, want exactly 1", label, l)
	}
}

// Stream.Cancel from another goroutine stops one pulling forever:
// StatusCancelled once (no cause: nothing but Cancel stopped it), then
// io.EOF; the plugin serves on; Cancel is idempotent and safe after Close.
func TestStreamCancelFromAnotherGoroutine(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, markers string) {
		marker := filepath.Join(markers, "cancelled")
		s, err := p.OpenStream(streamForever, FormatWire, wireString(marker))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var pulled atomic.Int64
		done := pullUntilError(s, nil, &pulled)
		waitPulled(t, &pulled, 100)
		if err := s.Cancel(); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		err = waitErr(t, "Cancel", done)
		if e := wantStatus(t, "the pull Cancel stopped", err, StatusCancelled); e.Unwrap() != nil {
			t.Errorf("a Cancel has no cause, got %v", e.Unwrap())
		}
		if err := s.Cancel(); err != nil { // idempotent
			t.Errorf("a second Cancel: %v", err)
		}
		for i := 0; i < 2; i++ {
			if _, err := s.Next(); err != io.EOF {
				t.Errorf("Next after the cancellation: %v, want io.EOF", err)
			}
		}
		t.Logf("%d items before the cancel", pulled.Load())
		s.Close()
		checkMarker(t, p, "forever cancelled", marker)
		if err := s.Cancel(); err != nil {
			t.Errorf("Cancel after Close: %v", err)
		}
		if _, err := s.Next(); err != ErrClosed {
			t.Errorf("Next after Close: %v", err)
		}
		out, err := p.CallWire(streamAdd, wireI64Pair(2, 40))
		if err != nil || int64(binary.LittleEndian.Uint64(out)) != 42 {
			t.Errorf("add after a cancelled stream: %x %v", out, err)
		}

		// Cancelled between items, with no Next in progress: the next Next
		// answers StatusCancelled, then io.EOF.
		idle := filepath.Join(markers, "idle")
		s, err = p.OpenStream(streamCount, FormatWire, countInput(100, idle))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if item, err := s.Next(); err != nil || unwireU64(t, item) != 0 {
			t.Fatalf("first item: %x %v", item, err)
		}
		if err := s.Cancel(); err != nil {
			t.Fatal(err)
		}
		_, err = s.Next()
		wantStatus(t, "Next after an idle Cancel", err, StatusCancelled)
		if _, err := s.Next(); err != io.EOF {
			t.Errorf("then: %v, want io.EOF", err)
		}
		s.Close()
		if l := markerLines(idle); l > 1 || (!isWasm(p) && l != 1) {
			t.Errorf("idle cancel: dropped %d times", l)
		}
		// A stream that already ended: Cancel changes nothing.
		s, err = p.OpenStream(streamCount, FormatWire, countInput(2, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if items, err := s.Collect(); err != nil || len(items) != 2 {
			t.Fatalf("count(2): %d items, %v", len(items), err)
		}
		if err := s.Cancel(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Next(); err != io.EOF {
			t.Errorf("Next on an ended stream after Cancel: %v, want io.EOF", err)
		}
	})
}

// Close while another goroutine pulls: it cancels that Next (its error
// matches ErrClosed) and waits for it, and Cancel racing Close from other
// goroutines is safe (run with -race: the binding serializes the free).
func TestStreamCancelRacesClose(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, markers string) {
		var drops [2]int
		for round := 0; round < 40; round++ {
			marker := filepath.Join(markers, fmt.Sprintf("race%d", round))
			s, err := p.OpenStream(streamForever, FormatWire, wireString(marker))
			if err != nil {
				t.Fatal(err)
			}
			var pulled atomic.Int64
			done := pullUntilError(s, nil, &pulled)
			if round%2 == 0 {
				waitPulled(t, &pulled, 1) // else: Cancel and Close may come before any item
			}
			var cancellers sync.WaitGroup
			stop := make(chan struct{})
			for g := 0; g < 3; g++ {
				cancellers.Add(1)
				go func() {
					defer cancellers.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						if err := s.Cancel(); err != nil {
							t.Errorf("Cancel: %v", err)
							return
						}
						runtime.Gosched()
					}
				}()
			}
			closed := make(chan struct{})
			go func() {
				s.Close()
				close(closed)
			}()
			select {
			case <-closed:
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: Close hangs", round)
			}
			close(stop)
			cancellers.Wait()
			err = waitErr(t, "Close", done)
			if err != ErrClosed && !errors.Is(err, StatusCancelled) {
				t.Errorf("round %d: the pull stopped by Close and Cancel: %v", round, err)
			}
			if err := s.Cancel(); err != nil {
				t.Errorf("Cancel after Close: %v", err)
			}
			if _, err := s.Next(); err != ErrClosed {
				t.Errorf("Next after Close: %v", err)
			}
			if l := markerLines(marker); l > 1 || (!isWasm(p) && l != 1) {
				t.Errorf("round %d: the producer was dropped %d times", round, l)
			} else {
				drops[l]++
			}
		}
		t.Logf("40 rounds: %d producers dropped once, %d without their destructor (WASM, cancelled mid-item)", drops[1], drops[0])

		// Close alone stops a goroutine pulling forever; its error says why.
		s, err := p.OpenStream(streamForever, FormatWire, wireString(""))
		if err != nil {
			t.Fatal(err)
		}
		var pulled atomic.Int64
		done := pullUntilError(s, nil, &pulled)
		waitPulled(t, &pulled, 10)
		s.Close()
		err = waitErr(t, "Close", done)
		if err != ErrClosed && !(errors.Is(err, StatusCancelled) && errors.Is(err, ErrClosed)) {
			t.Errorf("the pull Close stopped: %v", err)
		}
	})
}

// NextContext cancels the stream when its context is done: from another
// goroutine, by a deadline, or already before the item is asked for (a
// native stream too); the error matches the context's, then io.EOF.
func TestStreamNextContext(t *testing.T) {
	eachStreamer(t, func(t *testing.T, p *Plugin, markers string) {
		// Cancelled from another goroutine.
		marker := filepath.Join(markers, "ctx")
		s, err := p.OpenStream(streamForever, FormatWire, wireString(marker))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var pulled atomic.Int64
		done := pullUntilError(s, ctx, &pulled)
		waitPulled(t, &pulled, 50)
		cancel()
		err = waitErr(t, "a cancelled context", done)
		wantStatus(t, "the pull its context stopped", err, StatusCancelled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%v does not match context.Canceled", err)
		}
		if _, err := s.Next(); err != io.EOF {
			t.Errorf("after the context's cancellation: %v, want io.EOF", err)
		}
		s.Close()
		checkMarker(t, p, "forever under a context", marker)

		// A 50 ms deadline.
		s, err = p.OpenStream(streamForever, FormatWire, wireString(""))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer dcancel()
		started := time.Now()
		pulled.Store(0)
		err = waitErr(t, "a deadline", pullUntilError(s, dctx, &pulled))
		took := time.Since(started)
		wantStatus(t, "the pull past its deadline", err, StatusCancelled)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%v does not match context.DeadlineExceeded", err)
		}
		if took < 40*time.Millisecond || took > 10*time.Second {
			t.Errorf("stopped after %v (deadline 50ms)", took)
		}
		t.Logf("%d items in %v", pulled.Load(), took)
		if _, err := s.NextContext(context.Background()); err != io.EOF {
			t.Errorf("after the deadline: %v, want io.EOF", err)
		}

		// Done before the item is asked for: refused, even natively.
		s, err = p.OpenStream(streamCount, FormatWire, countInput(10, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		live, stopLive := context.WithCancel(context.Background())
		for i := uint64(0); i < 3; i++ {
			if item, err := s.NextContext(live); err != nil || unwireU64(t, item) != i {
				t.Fatalf("item %d under a live context: %x %v", i, item, err)
			}
		}
		stopLive()
		_, err = s.NextContext(live)
		wantStatus(t, "NextContext with a done context", err, StatusCancelled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%v does not match context.Canceled", err)
		}
		if _, err := s.NextContext(live); err != io.EOF {
			t.Errorf("then: %v, want io.EOF", err)
		}
		// A context that never ends is just Next.
		s, err = p.OpenStream(streamCount, FormatWire, countInput(5, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var got []uint64
		for {
			item, err := s.NextContext(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, unwireU64(t, item))
		}
		if !reflect.DeepEqual(got, upTo(5)) {
			t.Errorf("count(5) through NextContext: %v", got)
		}
	})
}
