// Command simulate compares placement policies in the deterministic cluster
// simulator and prints a markdown table:
//
//	go run ./placement/sim/cmd/simulate [-seeds 30] [-scenario 0.8,0.8/kill] [-policy drover,p2c] [-window 20s]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/droverhq/drover/placement/sim"
)

func main() {
	seeds := flag.Int("seeds", 30, "seeds per policy and scenario")
	scenario := flag.String("scenario", "all", "comma-separated scenario ids ("+ids()+")")
	policy := flag.String("policy", strings.Join(sim.Policies, ","), "comma-separated policies")
	window := flag.Duration("window", 20*time.Second, "how long steps arrive in each run (virtual time)")
	flag.Parse()
	scs, err := sim.Select(*scenario)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	rows, err := sim.Compare(scs, strings.Split(*policy, ","), *seeds, *window)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sim.WriteTable(os.Stdout, rows)
}

func ids() string {
	var s []string
	for _, sc := range sim.Scenarios {
		s = append(s, sc.ID)
	}
	return strings.Join(s, ", ")
}
