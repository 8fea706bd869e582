package meter

import "testing"

func TestInFlight(t *testing.T) {
	var m Meter
	end1 := m.Begin("http.get")
	end2 := m.Begin("http.get")
	if r := m.Read(); r.InFlight["http.get"] != 2 || r.InFlightSum != 2 {
		t.Fatalf("in flight: %+v", r)
	}
	end1()
	end2()
	r := m.Read()
	if r.InFlight["http.get"] != 0 || r.Completed["http.get"] != 2 || r.HeapBytes == 0 {
		t.Fatalf("after: %+v", r)
	}
}
