package cache

import (
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/droverhq/drover/telemetry"
)

// scope is the instrumentation scope of the commands' client spans.
const scope = "github.com/droverhq/drover/starlark/builtins/cache"

// attrs are the attributes of command cmd's client span on key, by the
// OpenTelemetry database conventions: the system (db.system.name, and
// db.system, the name older backends read), the command, the command with
// its key a "?" (keys and values are never in a span), and the server that
// holds key.
func (c *Client) attrs(cmd, key string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		semconv.DBSystemNameMemcached,
		attribute.String("db.system", "memcached"),
		semconv.DBOperationName(cmd),
		semconv.DBQueryText(cmd + " ?"),
	}
	server := c.cfg.Servers[0]
	if len(c.cfg.Servers) > 1 {
		if addr, err := c.servers.PickServer(key); err == nil {
			server = addr.String()
		}
	}
	return append(attrs, telemetry.ServerAttrs(server)...)
}
