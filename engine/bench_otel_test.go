package engine

import (
	"context"
	"os"
	"sync"

	"github.com/droverhq/drover/telemetry"
)

var telemetryOnce sync.Once

// productionTelemetry installs, once, the tracer provider an `engine`
// process runs with (telemetry.Setup): spans that carry ids only unless
// OTEL_TRACES_EXPORTER or an OTLP endpoint is set, rather than the global
// no-op the tests otherwise see. Benchmarks call it before starting nodes.
// DROVER_BENCH_OTEL=none keeps the global no-op (for comparison).
func productionTelemetry() {
	telemetryOnce.Do(func() {
		if os.Getenv("DROVER_BENCH_OTEL") != "none" {
			telemetry.Setup(context.Background(), "drover-bench", "n1")
		}
	})
}
