package sim

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestTargets runs a reduced comparison (few seeds, a shorter window) of the
// target scenario and checks that each target holds in direction: no
// rate-limit violation with Drover while round-robin has some, a makespan
// close to the lower bound, and a p99 slowdown well below plain
// power-of-two-choices'.
func TestTargets(t *testing.T) {
	scs, err := Select(Target)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Compare(scs, []string{"round-robin", "p2c", "drover"}, 3, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]Row{}
	for _, r := range rows {
		by[r.Policy] = r
	}
	d, rr, p2 := by["drover"], by["round-robin"], by["p2c"]
	if d.Violations != 0 || rr.Violations == 0 {
		t.Errorf("violations: drover %v (want 0), round-robin %v (want some)", d.Violations, rr.Violations)
	}
	if d.Ratio > 1.2 || d.Ratio < 1 {
		t.Errorf("drover's makespan is %.3f× the lower bound, want 1–1.2", d.Ratio)
	}
	if d.P99 > 0.8*p2.P99 {
		t.Errorf("p99 slowdown: drover %.2f, p2c %.2f; want ≤ 0.8×", d.P99, p2.P99)
	}
	if d.Failed != 0 {
		t.Errorf("drover failed %v steps per run", d.Failed)
	}
	var b bytes.Buffer
	WriteTable(&b, rows)
	for _, want := range []string{"| load 0.8, meters 1s | round-robin |", "**drover**", "target 0: met", "target ≤ 1.2: met", "target ≤ 0.8×: met"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestDeterministic checks that a seed fixes a run: the same configuration
// gives the same result, and the table does not depend on the scheduling of
// the parallel runs.
func TestDeterministic(t *testing.T) {
	for _, cfg := range []Config{
		{Seed: 7, Policy: "drover", Load: 0.8, Interval: time.Second, Window: 5 * time.Second, Kill: true, Halve: true},
		{Seed: 7, Policy: "p2c", Load: 0.8, Interval: 50 * time.Millisecond, Window: 5 * time.Second},
	} {
		a, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Run(cfg)
		if a != b {
			t.Fatalf("%s: same seed, different results:\n%+v\n%+v", cfg.Policy, a, b)
		}
		cfg.Seed++
		if c, _ := Run(cfg); c == a {
			t.Fatalf("%s: another seed gave the very same result", cfg.Policy)
		}
	}
	table := func() string {
		scs, _ := Select("0.8/kill,0.8/halve")
		rows, err := Compare(scs, Policies, 2, 4*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		WriteTable(&b, rows)
		return b.String()
	}
	if a, b := table(), table(); a != b {
		t.Fatalf("same seeds, different tables:\n%s\n%s", a, b)
	}
}

func TestScenarioEvents(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		check  func(Result) error
		policy string
	}{
		{name: "a killed node's steps complete elsewhere",
			cfg: Config{Seed: 3, Policy: "drover", Load: 0.5, Interval: time.Second, Window: 6 * time.Second, Kill: true},
			check: func(r Result) error {
				if r.Completed != r.Steps {
					return errors.New("steps lost with the node")
				}
				return nil
			}},
		{name: "a halved limit is enforced",
			cfg: Config{Seed: 3, Policy: "p2c+limits", Load: 0.8, Interval: time.Second, Window: 6 * time.Second, Halve: true},
			check: func(r Result) error {
				if r.Violations != 0 || r.Waited == 0 {
					return errors.New("want waits instead of violations")
				}
				return nil
			}},
		{name: "without limits, the API refuses calls",
			cfg: Config{Seed: 3, Policy: "random", Load: 0.8, Interval: time.Second, Window: 6 * time.Second},
			check: func(r Result) error {
				if r.Violations == 0 {
					return errors.New("want violations")
				}
				return nil
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Run(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.LowerBound <= 0 || r.Makespan < r.LowerBound {
				t.Fatalf("makespan %v below its lower bound %v", r.Makespan, r.LowerBound)
			}
			if err := tt.check(r); err != nil {
				t.Fatalf("%v: %+v", err, r)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name    string
		run     func() error
		wantErr string
	}{
		{"unknown policy", func() error { _, err := Run(Config{Policy: "best"}); return err }, `unknown policy "best"`},
		{"unknown scenario", func() error { _, err := Select("0.8,0.9"); return err }, `unknown scenario "0.9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
