package engine

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/droverhq/drover/telemetry"
)

// DROVER_BENCH_OTEL=sdk installs the tracer provider a node started by
// `engine` runs with (telemetry.Setup: spans recorded, exported only when
// OTEL_* says so), rather than the global no-op the tests otherwise see.
func init() {
	if os.Getenv("DROVER_BENCH_OTEL") == "sdk" {
		telemetry.Setup(context.Background(), "drover-bench", "n1")
	}
}

// processCPU is the CPU time (user + system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
