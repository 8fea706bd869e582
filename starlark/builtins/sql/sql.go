// Package sql is the sql integration: scripts query PostgreSQL and
// MySQL/MariaDB through named connections of the executing node's
// configuration, each a pool opened once per node.
//
//	sql.query(conn, query, params=[]) -> list of dicts, one per row
//	sql.exec(conn, statement, params=[]) -> {"rows_affected": n, "last_insert_id": id or None}
//	sql.tx(conn, statements) -> a list of the above, one per statement, in one transaction
//
// Values reach the database only as parameters ($1, $2 for PostgreSQL; ? for
// MySQL): a statement is a fixed string and params a list. How column values
// come back is documented in docs/scripts.md ("sql"): NULL is None, numbers
// are numbers except exact decimals (strings), times are RFC 3339 strings,
// binary is base64, JSON columns are values.
//
// Each statement is an OpenTelemetry client span, a child of the step's,
// with its SQL as written (its placeholders, never its parameters' values).
//
// A database's own error (syntax, a constraint, a missing table) fails the
// step with code "sql", naming the connection and the SQLSTATE or MySQL
// error number; a serialization failure or deadlock is retried. A
// connection that cannot be reached fails with "transport", retried.
//
//	integrations:
//	  sql:
//	    connections:
//	      db:
//	        dsn: postgres://app:${DB_PASSWORD}@127.0.0.1:5432/shop
//	      legacy:
//	        driver: mysql
//	        dsn: app:${LEGACY_PASSWORD}@tcp(127.0.0.1:3306)/legacy
//	        max_open: 4
//
// Its init registers the integration into builtins.Default.
package sql

import (
	"context"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
)

// Config is the sql integration's configuration.
type Config struct {
	// Connections are the node's databases, by the name scripts give.
	Connections map[string]Connection `yaml:"connections"`
}

// Connection is one database.
type Connection struct {
	// Driver is "postgres" or "mysql" (MariaDB too); empty: postgres when
	// the DSN is a postgres:// or postgresql:// URL.
	Driver string `yaml:"driver"`
	// DSN is the data source: a PostgreSQL URL or key=value string, or a
	// MySQL DSN (user:password@tcp(host:port)/db). It is a secret as a
	// whole, and its password on its own.
	DSN string `yaml:"dsn" secret:"true"`
	// MaxOpen bounds the pool's connections on each node (default 10);
	// MaxIdle how many it keeps open between calls (default 4);
	// MaxLifetime how long one is reused (default 30m).
	MaxOpen     int           `yaml:"max_open"`
	MaxIdle     int           `yaml:"max_idle"`
	MaxLifetime time.Duration `yaml:"max_lifetime"`
}

// Integration is the sql integration.
var Integration = builtins.Define("sql", "PostgreSQL and MySQL/MariaDB through named connections", Config{}, open)

func init() {
	Integration.Steps = steps()
	Register(builtins.Default)
}

// Register adds the sql integration and its builtins to r.
func Register(r *builtins.Registry) { r.MustRegisterIntegration(Integration) }

// open makes a node's databases from c, without connecting: Provision does.
func open(_ context.Context, c Config) (*DB, error) {
	return newDB(c)
}
