package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// openBus opens an embedded bus in a temp dir, or the external NATS named by
// DROVER_TEST_NATS (default nats://127.0.0.1:4222) when external is set.
func openBus(t *testing.T, external bool) *Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := Options{Name: "t", DataDir: t.TempDir()}
	if external {
		url := os.Getenv("DROVER_TEST_NATS")
		if url == "" {
			url = "nats://127.0.0.1:4222"
		}
		if c, err := net.DialTimeout("tcp", url[len("nats://"):], time.Second); err != nil {
			t.Fatalf("external NATS at %s is not reachable (%v): start nats-server -js, or set DROVER_TEST_NATS", url, err)
		} else {
			c.Close()
		}
		opts = Options{Name: "t", URL: url}
	}
	b, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func uniqueRun(t *testing.T) string {
	return fmt.Sprintf("T%d", time.Now().UnixNano())
}

func TestJournalWriteOnce(t *testing.T) {
	for _, external := range []bool{false, true} {
		t.Run(fmt.Sprintf("external=%v", external), func(t *testing.T) {
			b := openBus(t, external)
			ctx := context.Background()
			run := uniqueRun(t)
			subj := JournalSubject(run, "result", "1")
			if _, err := b.Append(ctx, subj, run+"/1/a1", nil, []byte(`"first"`)); err != nil {
				t.Fatal(err)
			}
			// A retried publish of the same message is de-duplicated, not an error.
			if _, err := b.Append(ctx, subj, run+"/1/a1", nil, []byte(`"first"`)); err != nil {
				t.Fatalf("duplicate publish: %v", err)
			}
			// A different writer can never overwrite the entry.
			_, err := b.Append(ctx, subj, run+"/1/a2", nil, []byte(`"second"`))
			if !errors.Is(err, ErrExists) {
				t.Fatalf("second write: got %v, want ErrExists", err)
			}
			p, err := b.AppendAsync(JournalSubject(run, "end", ""), run+"/end", Header{"traceparent": {"00-x"}}, []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			msgs, err := b.Read(ctx, JournalFilter(run))
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 2 || string(msgs[0].Data) != `"first"` || msgs[1].Header.Get("traceparent") != "00-x" {
				t.Fatalf("read back %+v", msgs)
			}
			if _, err := b.Entry(ctx, JournalSubject(run, "call", "9")); !errors.Is(err, ErrNotFound) {
				t.Fatalf("missing entry: %v", err)
			}
			if msgs, err := b.Read(ctx, JournalFilter(run+"x")); err != nil || len(msgs) != 0 {
				t.Fatalf("empty read: %v %v", msgs, err)
			}
		})
	}
}

func TestKVAndSteps(t *testing.T) {
	b := openBus(t, false)
	ctx := context.Background()
	kv := b.Bucket(RunsBucket)
	for i := 0; i < 5; i++ {
		if _, err := kv.Put(ctx, fmt.Sprintf("r.%d", i), []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	vals, err := kv.Values(ctx, "r.>")
	if err != nil || len(vals) != 5 {
		t.Fatalf("values: %v %v", vals, err)
	}
	if _, err := kv.Create(ctx, "r.1", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("create existing: %v", err)
	}
	if _, _, err := kv.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	got := make(chan StepMsg, 1)
	stop, err := b.ConsumeSteps(ctx, "n1", func(m StepMsg) { m.Ack(); got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := b.PublishStep(ctx, "n1", "r/1/a1", Header{"Drover-Reply": {"x"}}, []byte("env")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Data) != "env" || m.Header.Get("Drover-Reply") != "x" {
			t.Fatalf("got %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("step not delivered within 5s")
	}
}

func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(context.Background(), Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := Open(context.Background(), Options{DataDir: dir}); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second open: %v", err)
	}
}

func TestEncodeKey(t *testing.T) {
	for in, want := range map[string]string{"acme": "acme", "a@b.com": "a=40b=2Ecom", "": "=", "x y": "x=20y"} {
		if got := EncodeKey(in); got != want {
			t.Errorf("EncodeKey(%q) = %q, want %q", in, got, want)
		}
	}
}
