package placement

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestBaselines(t *testing.T) {
	c := newClock()
	v := NewMemView(0, c.Now)
	v.Put(rd(c, nodeSpec{name: "n1", cores: 2, cpu: 0.9}))
	v.Put(rd(c, nodeSpec{name: "n2", cores: 2, cpu: 0.1}))
	v.Put(rd(c, nodeSpec{name: "n3", cores: 2, cpu: 0.5}))
	empty := NewMemView(0, nil)
	rng := func() *rand.Rand { return rand.New(rand.NewPCG(3, 4)) }
	tests := []struct {
		name    string
		p       Policy
		want    []string // successive decisions ("" = any)
		wantErr error
	}{
		{name: "round robin", p: NewRoundRobin(v), want: []string{"n1", "n2", "n3", "n1"}},
		{name: "least loaded", p: NewLeastLoaded(v), want: []string{"n2", "n2"}},
		{name: "p2c never picks the most loaded", p: NewPowerOfTwo(v, rng()), want: []string{"!n1", "!n1", "!n1", "!n1"}},
		{name: "random", p: NewRandom(v, rng()), want: []string{""}},
		{name: "round robin empty", p: NewRoundRobin(empty), wantErr: ErrNoNode},
		{name: "least loaded empty", p: NewLeastLoaded(empty), wantErr: ErrNoNode},
		{name: "p2c empty", p: NewPowerOfTwo(empty, rng()), wantErr: ErrNoNode},
		{name: "random empty", p: NewRandom(empty, rng()), wantErr: ErrNoNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr != nil {
				if _, err := tt.p.Place(context.Background(), Request{}); !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			for _, w := range tt.want {
				d, err := tt.p.Place(context.Background(), Request{})
				if err != nil || d.Reason == "" {
					t.Fatalf("%+v %v", d, err)
				}
				if not, ok := strings.CutPrefix(w, "!"); ok && d.Node == not || !ok && w != "" && d.Node != w {
					t.Fatalf("node %s, want %s", d.Node, w)
				}
			}
		})
	}
}
