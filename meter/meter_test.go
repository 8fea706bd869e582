package meter

import (
	"testing"
	"time"
)

func TestInFlight(t *testing.T) {
	var m Meter
	end1 := m.Begin("http.get")
	end2 := m.Begin("http.get")
	if r := m.Read(); r.InFlight["http.get"] != 2 || r.InFlightSum != 2 {
		t.Fatalf("in flight: %+v", r)
	}
	end1()
	end2()
	m.Placed()
	r := m.Read()
	if r.InFlight["http.get"] != 0 || r.Completed["http.get"] != 2 || r.HeapBytes == 0 || r.Placed != 1 || r.Cores < 1 {
		t.Fatalf("after: %+v", r)
	}
}

func TestReadWithResources(t *testing.T) {
	specs, err := ParseResources([]string{"db=2", "api=10/s,scope=cluster"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(100, 0)
	res, err := NewResources(specs, ResourcesOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	res.Take([]Demand{{Resource: "db", Amount: 1}})
	m := Meter{Node: "n1", Resources: res, Host: fixedHost{}, Now: func() time.Time { return now }}
	r := m.Read()
	if r.Node != "n1" || !r.Time.Equal(now) || r.Cores != 4 || r.CPU != 0.5 || r.Resources["db"].Free != 1 ||
		r.Resources["api"].Scope != ScopeCluster || r.Resources["api"].Rate != 10 {
		t.Fatalf("reading: %+v", r)
	}
	if l := (&Reading{Cores: 2, CPU: 0.3, InFlightSum: 3}).Load(); l != 1.5 {
		t.Fatalf("load = %v, want 1.5 (3 steps on 2 cores)", l)
	}
}
