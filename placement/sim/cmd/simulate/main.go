// Command simulate compares placement policies in the deterministic cluster
// simulator and prints a markdown table:
//
//	go run ./placement/sim/cmd/simulate [-seeds 30] [-scenario 0.8,0.8/kill] [-policy drover,p2c] [-window 20s]
//
// With -fanin it measures instead what hearing heartbeats costs a node at
// each cluster size, for today's design and its alternatives (sim.FanIn):
//
//	go run ./placement/sim/cmd/simulate -fanin [-nodes 3,10,100,1000] [-seeds 30]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/placement/sim"
)

func main() {
	seeds := flag.Int("seeds", 30, "seeds per policy and scenario")
	scenario := flag.String("scenario", "all", "comma-separated scenario ids ("+ids()+")")
	policy := flag.String("policy", strings.Join(sim.Policies, ","), "comma-separated policies")
	window := flag.Duration("window", 20*time.Second, "how long steps arrive in each run (virtual time)")
	fanin := flag.Bool("fanin", false, "measure the heartbeat fan-in at each cluster size instead")
	nodes := flag.String("nodes", "3,10,100,1000", "with -fanin: comma-separated cluster sizes")
	flag.Parse()
	if *fanin {
		var sizes []int
		for _, s := range strings.Split(*nodes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				fmt.Fprintf(os.Stderr, "-nodes: %q is not a number\n", s)
				os.Exit(2)
			}
			sizes = append(sizes, n)
		}
		loads, err := sim.FanIn(context.Background(), sim.FanInOptions{Sizes: sizes, Seeds: *seeds, Window: *window, Progress: os.Stderr})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sim.WriteFanIn(os.Stdout, loads)
		return
	}
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
