package redis

import (
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/droverhq/drover/telemetry"
)

// scope is the instrumentation scope of the commands' client spans.
const scope = "github.com/droverhq/drover/starlark/builtins/redis"

// attrs are the attributes of command cmd's client span, by the
// OpenTelemetry database conventions: the system (db.system.name, and
// db.system, the name older backends read), the database number, the
// server, the command, and the command as sent with each argument a "?"
// (queryText): neither keys nor values are in a span.
func (c *Client) attrs(cmd string, a args) []attribute.KeyValue {
	return append([]attribute.KeyValue{
		semconv.DBSystemNameRedis,
		attribute.String("db.system", "redis"),
		semconv.DBNamespace(strconv.Itoa(c.cfg.DB)),
		semconv.DBOperationName(cmd),
		semconv.DBQueryText(queryText(cmd, a)),
	}, telemetry.ServerAttrs(c.cfg.Addr)...)
}

// queryText is command cmd as the client sends it for a, each argument
// (key, field, value, time to live) a "?": "SET ? ? PX ?".
func queryText(cmd string, a args) string {
	n := map[string]int{"GET": 1, "SET": 2, "INCRBY": 2, "DEL": len(a.Keys), "HGET": 2, "HSET": 3, "HGETALL": 1, "PUBLISH": 2}[cmd]
	text := cmd + strings.Repeat(" ?", n)
	if ttl := time.Duration(a.TTL); cmd == "SET" && ttl > 0 {
		if ttl < time.Second || ttl%time.Second != 0 { // as go-redis does
			return text + " PX ?"
		}
		return text + " EX ?"
	}
	return text
}
