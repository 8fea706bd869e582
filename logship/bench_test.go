package logship

import (
	"context"
	"testing"
	"time"
)

// benchLine is a typical run line, 300 bytes.
var benchLine = []byte(`{"level":"info","node":"n1","run":"01JCX9V7W3B2K8Q4M5N6P7R8S9","script":"orders/import","step":"3.1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","attrs":{"status":200,"ms":12},"time":"2026-12-02T10:00:00.123Z","message":"http.get done"}` + "\n")

// BenchmarkWrite measures Write, the caller's cost per line:
//
//   - stuck: Logstash accepts and never reads, the queue is full: every
//     line is dropped and counted.
//   - queued: Logstash is down and the queue has room: every line is
//     copied into it.
func BenchmarkWrite(b *testing.B) {
	b.Run("stuck", func(b *testing.B) {
		ls := newLogstashStandIn(b, "127.0.0.1:0", false)
		s := benchShipper(b, ls.addr())
		// Fill the kernel's buffers and the queue.
		eventually(b, "the queue full", func() bool {
			for range 1000 {
				s.Write(benchLine)
			}
			return s.Stats().Logstash.Dropped > 0
		})
		b.ReportAllocs()
		b.SetBytes(int64(len(benchLine)))
		for b.Loop() {
			s.Write(benchLine)
		}
	})
	b.Run("queued", func(b *testing.B) {
		s := benchShipper(b, freeAddr(b)) // Logstash down: lines wait
		q := s.logstash.q
		b.ReportAllocs()
		b.SetBytes(int64(len(benchLine)))
		i, removed := 0, 0
		for b.Loop() {
			if i++; i%DefaultBuffer == 0 { // make room, untimed
				b.StopTimer()
				n := q.len()
				q.remove(n, 0, 0) // counted dropped
				removed += n
				b.StartTimer()
			}
			s.Write(benchLine)
		}
		if st := s.Stats().Logstash; st.Dropped != uint64(removed) {
			b.Fatalf("stats %+v: lines dropped for want of room", st)
		}
	})
}

func benchShipper(b *testing.B, addr string) *Shipper {
	s, err := New(Config{Logstash: LogstashConfig{Address: addr}}, Options{Backoff: func(int) time.Duration { return time.Hour }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // give up at once
		s.Close(ctx)
	})
	return s
}
