package placement

import (
	"testing"
	"time"
)

func TestProfiles(t *testing.T) {
	p := NewProfiles(0.5)
	p.Observe("x", 100*time.Millisecond, -1, -1) // CPU not measured: assume it computed throughout
	if pr, _ := p.Get("x"); pr.CPU != 100*time.Millisecond || pr.Cores() != 1 || pr.Mem != 0 {
		t.Fatalf("first: %+v", pr)
	}
	p.Observe("x", 300*time.Millisecond, 0, 1000)
	pr, ok := p.Get("x")
	if !ok || pr.Wall != 200*time.Millisecond || pr.CPU != 50*time.Millisecond || pr.Mem != 500 || pr.Samples != 2 {
		t.Fatalf("second: %+v", pr)
	}
	if _, ok := p.Get("y"); ok || len(p.All()) != 1 {
		t.Fatal("unknown builtin")
	}
	// Peak cores: a four-core step seen alone, then slowed on busy nodes.
	p.Observe("par", time.Second, 4*time.Second, 0)
	for range 3 {
		p.Observe("par", 4*time.Second, 4*time.Second, 0)
	}
	if pr, _ := p.Get("par"); pr.Cores() < 3.5 {
		t.Fatalf("peak cores %v: busy nodes should not hide a four-core step", pr.Cores())
	}
}
