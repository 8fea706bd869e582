package placement

import (
	"fmt"
	"testing"
	"time"

	"github.com/droverhq/drover/meter"
)

func TestMemView(t *testing.T) {
	c := newClock()
	v := NewMemView(3*time.Second, c.Now)
	ch := v.Changed()
	v.Put(meter.Reading{Node: "b"})
	select {
	case <-ch:
	default:
		t.Fatal("Put must signal Changed")
	}
	c.Advance(2 * time.Second)
	v.Put(meter.Reading{Node: "a"})
	if n := v.Nodes(); len(n) != 2 || n[0].Node != "a" || n[1].Node != "b" || !n[0].Seen.Equal(c.Now()) {
		t.Fatalf("nodes: %+v", n)
	}
	c.Advance(time.Second) // b expires
	if n := v.Nodes(); len(n) != 1 || n[0].Node != "a" {
		t.Fatalf("after b's TTL: %+v", n)
	}
	v.Delete("a")
	if n := v.Nodes(); len(n) != 0 {
		t.Fatalf("after delete: %+v", n)
	}
}

// TestMemViewSnapshots: a slice Nodes returned is never changed by later
// puts; a view of more than batchAbove nodes copies its snapshot at most every
// batchEvery (a reading put meanwhile shows once that has passed), a small one
// at every read after a change, and a deleted node is gone at the next read.
func TestMemViewSnapshots(t *testing.T) {
	name := func(i int) string { return fmt.Sprintf("n%03d", i) }
	for _, size := range []int{batchAbove, batchAbove + 1, 1000} {
		c := newClock()
		v := NewMemView(time.Hour, c.Now)
		for i := range size {
			v.Put(meter.Reading{Node: name(i), Cores: 1})
		}
		before := v.Nodes()
		if len(before) != size {
			t.Fatalf("%d nodes: Nodes has %d", size, len(before))
		}
		v.Put(meter.Reading{Node: name(7), Cores: 2})
		if before[7].Cores != 1 {
			t.Fatalf("%d nodes: a put changed a snapshot already handed out", size)
		}
		got := v.Nodes()[7].Cores
		if want := map[bool]int{true: 2, false: 1}[size <= batchAbove]; got != want {
			t.Fatalf("%d nodes: right after the put, node 7 has %d cores, want %d", size, got, want)
		}
		c.Advance(batchEvery)
		if got := v.Nodes()[7].Cores; got != 2 {
			t.Fatalf("%d nodes: %s after the put, node 7 has %d cores, want 2", size, batchEvery, got)
		}
		v.Put(meter.Reading{Node: name(8), Cores: 3})
		v.Delete(name(9))
		n := v.Nodes()
		if len(n) != size-1 || n[8].Node != name(8) || n[8].Cores != 3 || n[9].Node != name(10) {
			t.Fatalf("%d nodes: after a delete: %d nodes, [8] %+v, [9] %s", size, len(n), n[8].Reading, n[9].Node)
		}
	}
}
