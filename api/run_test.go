package api

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

func TestParseListQueryStatuses(t *testing.T) {
	for _, s := range []string{StatusRunning, StatusCompleted, StatusFailed, StatusCancelled, StatusBlocked} {
		f, err := ParseListQuery(url.Values{"status": {s}})
		if err != nil || f.Status != s {
			t.Errorf("status %s: %+v, %v", s, f, err)
		}
	}
	if _, err := ParseListQuery(url.Values{"status": {"done"}}); !errors.Is(err, ErrBadInput) {
		t.Errorf("status done: err = %v, want ErrBadInput", err)
	}
}

// TestListQueryRoundTrip: what Query writes, ParseListQuery reads back.
func TestListQueryRoundTrip(t *testing.T) {
	f := ListFilter{Status: StatusFailed, Script: "checkout", Attrs: map[string]string{"customer": "acme", "note": "a=b"}, Since: 90 * time.Minute, Limit: 7}
	got, err := ParseListQuery(f.Query())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != f.Status || got.Script != f.Script || got.Since != f.Since || got.Limit != f.Limit || len(got.Attrs) != 2 || got.Attrs["note"] != "a=b" {
		t.Fatalf("round trip: %+v, want %+v", got, f)
	}
	for _, q := range []url.Values{{"attr": {"novalue"}}, {"since": {"-1h"}}, {"limit": {"0"}}, {"limit": {"x"}}} {
		if _, err := ParseListQuery(q); !errors.Is(err, ErrBadInput) {
			t.Errorf("%v: err = %v, want ErrBadInput", q, err)
		}
	}
}
