//go:build !linux

package sim

import "time"

// cpuTime cannot read the process's CPU time here: the benchmarks report
// wall time only.
func cpuTime() (time.Duration, bool) { return 0, false }
