package bus

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkNewest reads the newest n revisions of a runs bucket of 20,000
// keys (300-byte values, every tenth key removed, as status keys are) with
// Newest: on an embedded server, and on the external NATS (DROVER_TEST_NATS,
// default nats://127.0.0.1:4222) when it is reachable (its keys removed after).
func BenchmarkNewest(b *testing.B) {
	ctx := context.Background()
	single, err := Open(ctx, Options{Name: "s1", DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer single.Close()
	buses := []*Bus{single}
	url := os.Getenv("DROVER_TEST_NATS")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	if ext, err := Open(ctx, Options{Name: "t", URL: url}); err == nil {
		defer ext.Close()
		buses = append(buses, ext)
	}
	value := bytes.Repeat([]byte("x"), 300)
	for _, bu := range buses {
		kv := bu.Bucket(RunsBucket)
		p := fmt.Sprintf("bench.%d.", time.Now().UnixNano())
		var puts []*PendingPut
		for i := range 20_000 {
			put, err := kv.PutAsync(fmt.Sprintf("%s%d", p, i), value)
			if err != nil {
				b.Fatal(err)
			}
			puts = append(puts, put)
			if len(puts) == 1000 {
				for _, put := range puts {
					if _, err := put.Wait(ctx); err != nil {
						b.Fatal(err)
					}
				}
				puts = puts[:0]
			}
		}
		for i := 0; i < 20_000; i += 10 {
			if err := kv.Remove(ctx, fmt.Sprintf("%s%d", p, i)); err != nil {
				b.Fatal(err)
			}
		}
		// Leave the shared external NATS as it was.
		defer func() {
			if s, err := kv.getStream(ctx); err == nil {
				s.Purge(ctx, jetstream.WithPurgeSubject(kv.subject(p+">")))
			}
		}()
		where := "embedded"
		if bu != single {
			where = "external-" + bu.nc.ConnectedServerVersion()
		}
		for _, n := range []uint64{1200, 20_000} {
			b.Run(fmt.Sprintf("%s/n=%d", where, n), func(b *testing.B) {
				for b.Loop() {
					w, err := kv.Newest(ctx, n)
					if err != nil {
						b.Fatal(err)
					}
					if len(w.Entries) < int(n)*8/10 {
						b.Fatalf("%d entries in %d revisions", len(w.Entries), n)
					}
				}
			})
		}
	}
}
