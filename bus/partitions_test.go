package bus

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

func TestRunPartition(t *testing.T) {
	id := "01JD4W6Q3Z8X5M2N7P9R0S1T2V"
	for _, tt := range []struct {
		run  string
		want int
	}{
		{id, 0}, {id + "-1", 1}, {id + "-63", 63}, {id + "-64", 0}, {id + "-0", 0}, {id + "-01", 0}, {id + "-x", 0}, {id + "-", 0}, {"", 0},
		{"floor17961551-1", 0}, {id + "x-2", 0}, {id + "-+2", 0},
	} {
		if got := RunPartition(tt.run); got != tt.want {
			t.Errorf("RunPartition(%q) = %d, want %d", tt.run, got, tt.want)
		}
	}
	if RunID(id, 0) != id || RunPartition(RunID(id, 5)) != 5 {
		t.Fatalf("RunID: %s %s", RunID(id, 0), RunID(id, 5))
	}
	if s := JournalSubject(RunID(id, 2), "result", "3"); s != "drover.journal2."+id+"-2.result.3" || journalStreamOf(s) != "DROVER_JOURNAL_2" {
		t.Fatalf("partition 2: subject %s in %s", s, journalStreamOf(s))
	}
	if s := JournalSubject(id, "end", ""); s != "drover.journal."+id+".end" || journalStreamOf(JournalFilter(id)) != JournalStream {
		t.Fatalf("partition 0: subject %s", s)
	}
}

// A node started with 3 partitions makes them, writes and reads each run's
// journal in its own partition, and a node started later with 1 partition
// (by URL, on the same NATS) finds all three.
func TestPartitions(t *testing.T) {
	ctx := context.Background()
	b, err := Open(ctx, Options{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for p := range 3 {
		run := RunID(ulid.Make().String(), p)
		appendEntry(t, b, run, "start", "", `{}`)
		msgs, err := b.Read(ctx, JournalFilter(run))
		if err != nil || len(msgs) != 1 {
			t.Fatalf("partition %d: read %v %v", p, msgs, err)
		}
		s, err := b.js.Stream(ctx, JournalStreamOf(p))
		if err != nil {
			t.Fatal(err)
		}
		if info, err := s.Info(ctx); err != nil || info.State.Msgs != 1 {
			t.Fatalf("partition %d's stream: %v, %+v", p, err, info.State)
		}
		if _, err := b.RunsBucketFor(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(ctx, Options{DataDir: t.TempDir(), Partitions: MaxPartitions + 1}); err == nil {
		t.Fatal("65 partitions were accepted")
	}
	other, err := Open(ctx, Options{URL: b.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if n, err := other.Partitions(ctx); err != nil || n != 3 {
		t.Fatalf("a node with 1 partition sees %d (%v), want 3", n, err)
	}
}

// On three servers, the partitions' journal leaders are spread over the
// servers, and runs placed at random in partitions (as engine does) divide
// the writes evenly between the leaders.
func TestPartitionsSpreadOnACluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	buses := openClusterWith(t, ctx, 3, Options{Partitions: 3})
	for _, b := range buses {
		defer b.Close()
	}
	leaders := func() map[string]int {
		out := map[string]int{}
		for p := range 3 {
			s, err := buses[0].js.Stream(ctx, JournalStreamOf(p))
			if err != nil {
				continue
			}
			if info, err := s.Info(ctx); err == nil && info.Cluster != nil {
				out[info.Cluster.Leader]++
			}
		}
		return out
	}
	for l := leaders(); len(l) != 3; l = leaders() {
		if ctx.Err() != nil {
			t.Fatalf("leaders of the 3 partitions: %v, want one on each server", l)
		}
		time.Sleep(100 * time.Millisecond) // polling interval while leaders move
	}
	const runs = 900
	for i := range runs {
		run := RunID(ulid.Make().String(), rand.IntN(3))
		if _, err := buses[i%3].Append(ctx, JournalSubject(run, "start", ""), run+"/start", nil, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	var counts []uint64
	for p := range 3 {
		s, err := buses[1].js.Stream(ctx, JournalStreamOf(p))
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, info.State.Msgs)
	}
	for p, n := range counts { // 300 ± 4 standard deviations (14 each)
		if n < 244 || n > 356 {
			t.Fatalf("writes per partition %v: partition %d is not within 244–356", counts, p)
		}
	}
	t.Logf("leaders %v; writes per partition %v", leaders(), counts)
}

// A run id naming a partition nobody made is not found, not an error of
// another kind.
func TestMissingPartition(t *testing.T) {
	b, err := Open(context.Background(), Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.RunsBucketFor(context.Background(), 7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("partition 7: %v, want ErrNotFound", err)
	}
}

// TestRebalanceLeaders: after an election moves a partition's leader off
// the server it was spread to, that server, and only that one, takes it back.
func TestRebalanceLeaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	buses := openClusterWith(t, ctx, 3, Options{Partitions: 3})
	for _, b := range buses {
		defer b.Close()
	}
	const p = 1
	// leader returns partition 1's preferred server and its leader, each
	// request bounded so that polling goes on through elections.
	leader := func() (want, leader string) {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		want, leader, _ = buses[0].preferredLeader(qctx, p)
		return want, leader
	}
	// poll calls act every second until done reports true.
	poll := func(what string, done func() bool, act func()) {
		t.Helper()
		next := time.Now()
		for !done() {
			if ctx.Err() != nil {
				t.Fatal(what)
			}
			if act != nil && time.Now().After(next) {
				act()
				next = time.Now().Add(time.Second)
			}
			time.Sleep(50 * time.Millisecond) // polling interval while leaders move
		}
	}
	var want string
	poll("partition 1's leader never reached its preferred server", func() bool { w, l := leader(); want = w; return l != "" && l == w }, nil)
	var other string
	for _, b := range buses {
		if n := b.ns.Name(); n != want {
			other = n
			break
		}
	}
	// Move it elsewhere, as an election after a failure might.
	poll("partition 1's leader never moved to "+other, func() bool { _, l := leader(); return l == other }, func() {
		if err := buses[0].stepDown(ctx, p, other); err != nil {
			t.Logf("step down to %s: %v", other, err)
		}
	})
	// What the buses' own loop does every 30 s, every second: only the
	// preferred server asks, and the leadership comes back to it.
	asked := map[string]int{}
	poll("partition 1's leader did not come back to "+want, func() bool { _, l := leader(); return l == want }, func() {
		for _, b := range buses {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			asked[b.ns.Name()] += b.RebalanceLeaders(qctx)
			cancel()
		}
	})
	for server, n := range asked { // (its own loop may have asked first)
		if server != want && n > 0 {
			t.Fatalf("asks per server %v: want only %s's", asked, want)
		}
	}
}
