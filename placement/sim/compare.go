package sim

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// A Scenario is a load, a meter interval and the events of a run.
type Scenario struct {
	ID       string // for -scenario
	Load     float64
	Interval time.Duration
	Kill     bool
	Halve    bool
}

// Name describes the scenario in the table.
func (sc Scenario) Name() string {
	s := fmt.Sprintf("load %.1f, meters %s", sc.Load, sc.Interval)
	if sc.Kill {
		s += ", node killed"
	}
	if sc.Halve {
		s += ", API limit halved"
	}
	return s
}

// Target is the scenario the targets are stated for.
const Target = "0.8"

// Scenarios are the default comparison.
var Scenarios = []Scenario{
	{ID: "0.3", Load: 0.3, Interval: time.Second},
	{ID: "0.5", Load: 0.5, Interval: time.Second},
	{ID: "0.8", Load: 0.8, Interval: time.Second},
	{ID: "1.0", Load: 1.0, Interval: time.Second},
	{ID: "1.2", Load: 1.2, Interval: time.Second},
	{ID: "0.8/50ms", Load: 0.8, Interval: 50 * time.Millisecond},
	{ID: "0.8/10s", Load: 0.8, Interval: 10 * time.Second},
	{ID: "0.8/kill", Load: 0.8, Interval: time.Second, Kill: true},
	{ID: "0.8/halve", Load: 0.8, Interval: time.Second, Halve: true},
}

// Row is one policy in one scenario, averaged over seeds.
type Row struct {
	Scenario Scenario
	Policy   string
	Seeds    int
	Steps    float64 // per run
	Ratio    float64 // makespan over the lower bound
	P50, P99 float64 // slowdown
	// Per run:
	Violations, Failed, Waited float64
}

// Compare runs every policy in every scenario over seeds 1..seeds, on every
// core; the rows do not depend on the number of cores.
func Compare(scenarios []Scenario, policies []string, seeds int, window time.Duration) ([]Row, error) {
	type job struct{ sc, p, seed int }
	results := make([]Result, len(scenarios)*len(policies)*seeds)
	jobs := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for k := range jobs {
				j := job{k / (len(policies) * seeds), k / seeds % len(policies), k % seeds}
				sc := scenarios[j.sc]
				r, err := Run(Config{Seed: uint64(j.seed + 1), Policy: policies[j.p], Load: sc.Load, Interval: sc.Interval,
					Window: window, Kill: sc.Kill, Halve: sc.Halve})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
				results[k] = r
			}
		})
	}
	for k := range results {
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	var rows []Row
	for si, sc := range scenarios {
		for pi, p := range policies {
			row := Row{Scenario: sc, Policy: p, Seeds: seeds}
			for seed := range seeds {
				r := results[(si*len(policies)+pi)*seeds+seed]
				n := float64(seeds)
				row.Steps += float64(r.Steps) / n
				row.Ratio += r.Makespan.Seconds() / r.LowerBound.Seconds() / n
				row.P50 += r.P50 / n
				row.P99 += r.P99 / n
				row.Violations += float64(r.Violations) / n
				row.Failed += float64(r.Failed) / n
				row.Waited += float64(r.Waited) / n
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// WriteTable writes the rows as a markdown table, then how the target
// scenario compares with the targets.
func WriteTable(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| scenario | policy | makespan / lower bound | p50 slowdown | p99 slowdown | violations | failed | waited |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	for i, r := range rows {
		name := r.Scenario.Name()
		if i > 0 && rows[i-1].Scenario.ID == r.Scenario.ID {
			name = ""
		}
		pol := r.Policy
		if pol == "drover" {
			pol = "**drover**"
		}
		fmt.Fprintf(w, "| %s | %s | %.3f | %.2f | %.2f | %s | %s | %s |\n", name, pol, r.Ratio, r.P50, r.P99,
			count(r.Violations), count(r.Failed), count(r.Waited))
	}
	find := func(policy string) (Row, bool) {
		i := slices.IndexFunc(rows, func(r Row) bool { return r.Scenario.ID == Target && r.Policy == policy })
		if i < 0 {
			return Row{}, false
		}
		return rows[i], true
	}
	d, ok := find("drover")
	if !ok {
		return
	}
	fmt.Fprintf(w, "\nTargets (load 0.8, 1s meters, mean of %d seeds):\n\n", d.Seeds)
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	if rr, ok := find("round-robin"); ok {
		fmt.Fprintf(w, "- rate-limit violations: drover %s per run (round-robin %s) — target 0: %s\n",
			count(d.Violations), count(rr.Violations), check(d.Violations == 0))
	}
	fmt.Fprintf(w, "- makespan / lower bound: %.3f — target ≤ 1.2: %s\n", d.Ratio, check(d.Ratio <= 1.2))
	if p2, ok := find("p2c"); ok {
		fmt.Fprintf(w, "- p99 slowdown: drover %.2f vs p2c %.2f = %.2f× — target ≤ 0.8×: %s\n",
			d.P99, p2.P99, d.P99/p2.P99, check(d.P99 <= 0.8*p2.P99))
	}
}

// count prints a per-run mean without noise: integers as such.
func count(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}

// Select returns the scenarios with the given IDs (comma-separated; "" or
// "all" for every one).
func Select(ids string) ([]Scenario, error) {
	if ids == "" || ids == "all" {
		return Scenarios, nil
	}
	var out []Scenario
	for _, id := range strings.Split(ids, ",") {
		i := slices.IndexFunc(Scenarios, func(sc Scenario) bool { return sc.ID == strings.TrimSpace(id) })
		if i < 0 {
			var all []string
			for _, sc := range Scenarios {
				all = append(all, sc.ID)
			}
			return nil, fmt.Errorf("sim: unknown scenario %q; the scenarios are %s", id, strings.Join(all, ", "))
		}
		out = append(out, Scenarios[i])
	}
	return out, nil
}
