package placement

import (
	"context"
	"errors"
	"testing"
)

func TestPolicies(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		req     Request
		want    string
		wantErr error
	}{
		{"local", Local{}, Request{Coordinator: "n1"}, "n1", nil},
		{"local without coordinator", Local{}, Request{}, "", ErrNoNode},
		{"fixed", Fixed{Node: "n2"}, Request{Coordinator: "n1"}, "n2", nil},
		{"fixed empty", Fixed{}, Request{Coordinator: "n1"}, "", ErrNoNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.p.Place(context.Background(), tt.req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if d.Node != tt.want || (err == nil && d.Reason == "") {
				t.Fatalf("decision = %+v, want node %q with a reason", d, tt.want)
			}
		})
	}
}
