package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// envVar is an environment variable that ctl or engine reads.
type envVar struct {
	name    string
	ctl     bool // read by ctl (or its embedded node)
	engine  bool // read by engine
	meaning string
}

// environment lists every variable either command reads, for their help.
// docs/cli.md#environment holds the same table (TestEnvironmentDocumented).
var environment = []envVar{
	{"DROVER_URL", true, false, "the node to talk to, as --server; unset: the data dir's node"},
	{"DROVER_BACKGROUND", true, false, "as --background: how long the background node waits for a command (default 1h), or off"},
	{"DROVER_DATA", true, true, "the data dir, as --data-dir"},
	{"DROVER_SYNC", true, true, "the sync policy of the embedded NATS store, as --sync (default always)"},
	{"DROVER_CONFIG", true, true, "the node configuration file (integrations' settings), as engine --config"},
	{"DROVER_<INTEGRATION>_<SETTING>", true, true, "an integration's top-level setting, over the file's: DROVER_REDIS_ADDR, DROVER_CACHE_SERVERS (comma-separated), DROVER_AMQP_URL"},
	{"XDG_DATA_HOME", true, true, "without --data-dir or DROVER_DATA: the data dir is $XDG_DATA_HOME/drover (absolute paths only)"},
	{"HOME", true, true, "else the data dir is ~/.local/share/drover"},
	{"USER", true, false, "who cancels, deploys or resumes, when the system cannot name the user"},
	{"OTEL_TRACES_EXPORTER", false, true, "otlp or console: export traces (docs/operations.md#traces)"},
	{"OTEL_EXPORTER_OTLP_ENDPOINT", false, true, "export traces over OTLP/HTTP to this endpoint"},
	{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", false, true, "the same, for traces only"},
	{"OTEL_SERVICE_NAME", false, true, "the service.name of exported spans (default drover-engine)"},
	{"OTEL_RESOURCE_ATTRIBUTES", false, true, "key=value,… added to exported spans' resource"},
	{"DD_AGENT_HOST", false, true, "send metrics to the DogStatsD agent on this host (DD_DOGSTATSD_PORT, default 8125); docs/observability.md#metrics"},
	{"DD_DOGSTATSD_URL", false, true, "send metrics to this DogStatsD URL (udp://host:port or unix:///path)"},
}

// environmentHelp is the Environment section of a command's help: the
// variables that ctl (forEngine false) or engine reads.
func environmentHelp(forEngine bool) string {
	var b strings.Builder
	b.WriteString("Environment:\n")
	for _, v := range environment {
		if forEngine && v.engine || !forEngine && v.ctl {
			fmt.Fprintf(&b, "  %-36s%s\n", v.name, v.meaning)
		}
	}
	return b.String()
}

// dataDir is where a node keeps its data, for ctl's embedded node and engine
// alike: flag, else $DROVER_DATA, else $XDG_DATA_HOME/drover, else
// ~/.local/share/drover.
func dataDir(flag string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if d := getenv("DROVER_DATA"); d != "" {
		return d, nil
	}
	if d := getenv("XDG_DATA_HOME"); filepath.IsAbs(d) { // the XDG spec ignores relative paths
		return filepath.Join(d, "drover"), nil
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home == "" {
		return "", errors.New("cannot choose a data dir (no home directory): pass --data-dir or set DROVER_DATA")
	}
	return filepath.Join(home, ".local", "share", "drover"), nil
}

// dataDirDefault ends the usage of --data-dir, the same for both commands.
const dataDirDefault = "(default $DROVER_DATA, else $XDG_DATA_HOME/drover, else ~/.local/share/drover)"
