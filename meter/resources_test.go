package meter

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func TestPool(t *testing.T) {
	p := NewPool(2)
	if !p.TryAcquire(2) || p.TryAcquire(1) || p.Available() != 0 {
		t.Fatal("a pool of 2 gives 2 units, then none")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Acquire(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire on a full pool with a done context: %v", err)
	}
	if err := p.Acquire(context.Background(), 3); !errors.Is(err, ErrExceedsCapacity) {
		t.Fatalf("Acquire more than the size: %v", err)
	}
	done := make(chan error)
	go func() { done <- p.Acquire(context.Background(), 1) }()
	p.Release(1)
	if err := <-done; err != nil {
		t.Fatalf("Acquire after a release: %v", err)
	}
	p.Resize(4)
	if p.Size() != 4 || p.Available() != 2 {
		t.Fatalf("after resize: size %d free %d", p.Size(), p.Available())
	}
	if ok, wait := p.Take(2.5, time.Time{}); ok || wait != 0 {
		t.Fatalf("2.5 units round up to 3 of 2 free: ok=%v wait=%v", ok, wait)
	}
	if ok, wait := p.Take(5, time.Time{}); ok || wait >= 0 {
		t.Fatalf("more than the size never fits: ok=%v wait=%v", ok, wait)
	}
	p.Release(10)
	if p.Available() != 4 {
		t.Fatalf("releasing more than held: free %d", p.Available())
	}
}

func TestPoolConcurrent(t *testing.T) {
	p := NewPool(3)
	var mu sync.Mutex
	in, most := 0, 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				if err := p.Acquire(context.Background(), 1); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				in++
				most = max(most, in)
				mu.Unlock()
				mu.Lock()
				in--
				mu.Unlock()
				p.Release(1)
			}
		})
	}
	wg.Wait()
	if most > 3 || p.Available() != 3 {
		t.Fatalf("at most %d held at once (pool of 3), %d free at the end", most, p.Available())
	}
}

func mustSpecs(t *testing.T, decls ...string) []ResourceSpec {
	t.Helper()
	specs, err := ParseResources(decls)
	if err != nil {
		t.Fatal(err)
	}
	return specs
}

func TestResourcesTake(t *testing.T) {
	now := time.Unix(1000, 0)
	r, err := NewResources(mustSpecs(t, "api=2/s,host=api.example.com", "db=1,builtin=sql.*"), ResourcesOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	both := []Demand{{"api", 1}, {"db", 1}}
	tests := []struct {
		name      string
		demands   []Demand
		wantOK    bool
		wantShort string
	}{
		{"both free", both, true, ""},
		{"db held: nothing taken", both, false, "db"},
		{"api alone", []Demand{{"api", 1}}, true, ""},
		{"api empty", []Demand{{"api", 1}}, false, "api"},
		{"undeclared resource is not limited here", []Demand{{"license", 9}}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, _, short := r.Take(tt.demands)
			if ok != tt.wantOK || short != tt.wantShort {
				t.Fatalf("Take = %v, %q; want %v, %q", ok, short, tt.wantOK, tt.wantShort)
			}
		})
	}
	// The failed "both" take must have given back its api token: 2 taken in all.
	if got := r.States()["api"].Free; got != 0 {
		t.Fatalf("api free = %v, want 0 (all-or-nothing)", got)
	}
	r.Release(both)
	if free, ok := r.Free("db"); !ok || free != 1 {
		t.Fatalf("db free = %v, %v", free, ok)
	}
	if _, ok := r.Free("nope"); ok {
		t.Fatal("an undeclared resource has no free units")
	}
	st := r.States()
	if st["db"].Free != 1 || st["api"].Free != 0 || st["api"].Rate != 2 || st["db"].Capacity != 1 || st["api"].Kind != KindRate {
		t.Fatalf("after release (pools come back, tokens do not): %+v", st)
	}
}

func TestResourcesDemands(t *testing.T) {
	r, err := NewResources(mustSpecs(t, "gh=5000/h,host=api.github.com", "out=100/s,builtin=http.*", "db=4,builtin=sql.*"), ResourcesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		builtin  string
		args     string
		declared []Demand
		want     []Demand
	}{
		{"github call", "http.get", `{"url":"https://api.github.com/x"}`, nil, []Demand{{"gh", 1}, {"out", 1}}},
		{"other host", "http.get", `{"url":"https://example.com"}`, nil, []Demand{{"out", 1}}},
		{"declared by the integration wins", "sql.query", `{}`, []Demand{{"db", 2}}, []Demand{{"db", 2}}},
		{"integration's own resource kept", "kv.get", `{}`, []Demand{{"license", 1}}, []Demand{{"license", 1}}},
		{"unbound builtin", "uuid", `{}`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.Demands(tt.builtin, json.RawMessage(tt.args), tt.declared)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Demands = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResourcesWait(t *testing.T) {
	r, err := NewResources(mustSpecs(t, "db=1", "fast=1000/s,burst=1"), ResourcesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db := []Demand{{"db", 1}}
	if err := r.Wait(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- r.Wait(context.Background(), db) }()
	waitFor(t, "a step waiting for db", func() bool { return r.Waiting("db") == 1 && readThrough(r).Waiting == 1 })
	r.Release(db)
	if err := <-done; err != nil {
		t.Fatalf("Wait after a release: %v", err)
	}
	if r.Waiting("db") != 0 {
		t.Fatal("the waiting count must drop")
	}

	// A bucket refills by itself.
	fast := []Demand{{"fast", 1}}
	for range 3 {
		if err := r.Wait(context.Background(), fast); err != nil {
			t.Fatal(err)
		}
	}

	// Bounded by the context, with the resource named.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err = r.Wait(ctx, db)
	var we *WaitError
	if !errors.As(err, &we) || we.Resource != "db" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past the deadline: %v", err)
	}
	if err := r.Wait(context.Background(), []Demand{{"db", 2}}); !errors.Is(err, ErrExceedsCapacity) {
		t.Fatalf("Wait for more than the pool: %v", err)
	}
}

// readThrough reads r's node-level waiting count through a Meter.
func readThrough(r *Resources) Reading {
	m := Meter{Resources: r, Host: fixedHost{}}
	return m.Read()
}

type fixedHost struct{}

func (fixedHost) Sample() Host { return Host{Cores: 4, CPU: 0.5} }

func TestResourcesUpdateAndShared(t *testing.T) {
	now := time.Unix(1000, 0)
	shared := NewTokenBucket(5, 5, now)
	specs := mustSpecs(t, "api=5/s,scope=group:nat-a", "db=2,scope=cluster", "local=3/s")
	opts := ResourcesOptions{Now: func() time.Time { return now }, Shared: func(s ResourceSpec) Limiter {
		if s.Name == "api" {
			return shared
		}
		return nil // db: enforced locally
	}}
	a, _ := NewResources(specs, opts)
	b, _ := NewResources(specs, opts)
	for range 3 {
		a.Take([]Demand{{"api", 1}})
	}
	if ok, _, _ := b.Take([]Demand{{"api", 2}}); !ok {
		t.Fatal("b should see the 2 tokens left in the shared bucket")
	}
	if ok, _, _ := b.Take([]Demand{{"api", 1}}); ok {
		t.Fatal("the shared bucket is empty for both nodes")
	}
	tests := []struct {
		name    string
		spec    string
		wantErr error
	}{
		{"halve a local rate", "local=1.5/s,burst=1.5", nil},
		{"resize a pool", "db=4", nil},
		{"change a kind", "db=4/s", ErrBadResource},
		{"unknown", "nope=1", ErrBadResource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseResource(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Update(s); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Update = %v, want %v", err, tt.wantErr)
			}
		})
	}
	st := a.States()
	if st["local"].Rate != 1.5 || st["local"].Capacity != 1.5 || st["db"].Capacity != 4 || st["api"].Scope != "group:nat-a" {
		t.Fatalf("states after update: %+v", st)
	}
	if _, err := NewResources(append(specs, specs[0]), ResourcesOptions{}); !errors.Is(err, ErrBadResource) {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestSampler(t *testing.T) {
	fsys := fstest.MapFS{
		"proc/stat":    {Data: []byte("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\nprocs_running 1000\nprocs_blocked 0\n")},
		"proc/meminfo": {Data: []byte("MemTotal:       1000 kB\nMemFree:  100 kB\nMemAvailable:    400 kB\n")},
	}
	var s Sampler
	s.FS = fsys
	h := s.Sample()
	if h.CPU != 0.2 || h.MemTotal != 1000*1024 || h.MemUsed != 600*1024 || h.Cores < 1 || h.Runnable != 1000 {
		t.Fatalf("first sample: %+v", h)
	}
	fsys["proc/stat"] = &fstest.MapFile{Data: []byte("cpu  250 0 100 850 0 0 0 0 0 0\n")}
	if h = s.Sample(); h.CPU != 0.75 {
		t.Fatalf("delta: cpu %v, want 0.75 (150 busy of 200)", h.CPU)
	}
	fsys["sys/fs/cgroup/memory.max"] = &fstest.MapFile{Data: []byte("512000\n")}
	fsys["sys/fs/cgroup/memory.current"] = &fstest.MapFile{Data: []byte("256000\n")}
	fsys["sys/fs/cgroup/cpu.max"] = &fstest.MapFile{Data: []byte("50000 100000\n")}
	if h = s.Sample(); h.MemTotal != 512000 || h.MemUsed != 256000 || h.Cores != 1 {
		t.Fatalf("cgroup limits: %+v", h)
	}
	// Without /proc: the Go runtime's figures.
	var rt Sampler
	rt.FS = fstest.MapFS{}
	if h := rt.Sample(); h.MemUsed == 0 || h.CPU < 0 || h.CPU > 1 {
		t.Fatalf("runtime fallback: %+v", h)
	}
	// The real machine, whatever it is.
	var real Sampler
	if h := real.Sample(); h.Cores < 1 || h.CPU < 0 || h.CPU > 1 {
		t.Fatalf("this machine: %+v", h)
	}
}

func TestParseHostFiles(t *testing.T) {
	tests := []struct {
		name    string
		parse   func() (a, b float64, err error)
		wantA   float64
		wantB   float64
		wantErr bool
	}{
		{"stat", func() (float64, float64, error) { return parseProcStat([]byte("cpu 1 2 3 4 5 6 7 8 9 10\n")) }, 1 + 2 + 3 + 6 + 7 + 8, 36, false},
		{"stat short", func() (float64, float64, error) { return parseProcStat([]byte("cpu 1 2\n")) }, 0, 0, true},
		{"stat junk", func() (float64, float64, error) { return parseProcStat([]byte("cpu a b c d\n")) }, 0, 0, true},
		{"meminfo old kernel", func() (float64, float64, error) {
			a, b, err := parseMeminfo([]byte("MemTotal: 10 kB\nMemFree: 4 kB\n"))
			return float64(a), float64(b), err
		}, 10240, 4096, false},
		{"meminfo empty", func() (float64, float64, error) {
			a, b, err := parseMeminfo([]byte("nothing\n"))
			return float64(a), float64(b), err
		}, 0, 0, true},
		{"cgroup memory unlimited", func() (float64, float64, error) {
			a, b, err := parseCgroupMemory([]byte("max\n"), []byte("123\n"))
			return float64(a), float64(b), err
		}, 0, 123, false},
		{"cgroup memory junk", func() (float64, float64, error) {
			a, b, err := parseCgroupMemory([]byte("x\n"), []byte("123\n"))
			return float64(a), float64(b), err
		}, 0, 0, true},
		{"cpu.max unlimited", func() (float64, float64, error) { q, err := parseCgroupCPU([]byte("max 100000")); return q, 0, err }, 0, 0, false},
		{"cpu.max two cores", func() (float64, float64, error) { q, err := parseCgroupCPU([]byte("200000 100000")); return q, 0, err }, 2, 0, false},
		{"cpu.max junk", func() (float64, float64, error) { q, err := parseCgroupCPU([]byte("")); return q, 0, err }, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, err := tt.parse()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if a != tt.wantA || b != tt.wantB {
				t.Fatalf("got %v %v, want %v %v", a, b, tt.wantA, tt.wantB)
			}
		})
	}
}
