package sql

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/droverhq/drover/starlark/builtins"
)

// DB is a node's sql instance: a pool per configured connection.
type DB struct {
	conns map[string]*conn
}

// conn is one configured database.
type conn struct {
	name     string
	driver   string // "postgres" or "mysql"
	addr     string // host:port, for messages
	database string // the database, for spans
	dsn      string
	cfg      Connection
	db       *dbsql.DB
}

// newDB checks c and prepares its connections (opened by Provision).
func newDB(c Config) (*DB, error) {
	d := &DB{conns: map[string]*conn{}}
	for name, cc := range c.Connections {
		if !validName(name) {
			return nil, fmt.Errorf("connection %q: a name is letters, digits, '_' and '-'", name)
		}
		if cc.DSN == "" {
			return nil, fmt.Errorf("connection %s: no dsn (write dsn: postgres://user:${PASSWORD}@host:5432/db, or a MySQL DSN with driver: mysql)", name)
		}
		cn := &conn{name: name, cfg: cc, driver: cc.Driver}
		if cn.driver == "" && (strings.HasPrefix(cc.DSN, "postgres://") || strings.HasPrefix(cc.DSN, "postgresql://")) {
			cn.driver = "postgres"
		}
		var err error
		switch cn.driver {
		case "postgres":
			err = cn.preparePostgres()
		case "mysql":
			err = cn.prepareMySQL()
		case "":
			err = errors.New("no driver: write driver: postgres or driver: mysql")
		default:
			err = fmt.Errorf("driver %q: want postgres or mysql", cn.driver)
		}
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", name, err)
		}
		d.conns[name] = cn
	}
	return d, nil
}

func (c *conn) preparePostgres() error {
	pc, err := pgx.ParseConfig(c.cfg.DSN)
	if err != nil {
		return fmt.Errorf("dsn: %s", builtins.Redact(err.Error()))
	}
	builtins.Secret(pc.Password)
	c.addr = fmt.Sprintf("%s:%d", pc.Host, pc.Port)
	c.database = pc.Database
	c.dsn = c.cfg.DSN
	return nil
}

func (c *conn) prepareMySQL() error {
	mc, err := mysql.ParseDSN(c.cfg.DSN)
	if err != nil {
		return fmt.Errorf("dsn: %s", builtins.Redact(err.Error()))
	}
	builtins.Secret(mc.Passwd)
	mc.ParseTime = true // DATETIME and TIMESTAMP scan as times, as PostgreSQL's do
	c.addr = mc.Addr
	c.database = mc.DBName
	c.dsn = mc.FormatDSN()
	builtins.Secret(c.dsn)
	return nil
}

// Resources declares a pool per connection, its size the connection's
// max_open, one unit of which each call of it takes (builtins.ResourceDeclarer):
// placement sends a connection's calls only to nodes that have it.
func (d *DB) Resources() []string {
	var out []string
	for _, name := range d.names() {
		out = append(out, fmt.Sprintf("%s=%d", resource(name), orDefault(d.conns[name].cfg.MaxOpen, 10)))
	}
	return out
}

// resource is the name of a connection's pool.
func resource(conn string) string { return "sql." + conn }

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Provision opens every connection's pool and checks it answers.
func (d *DB) Provision(ctx context.Context) error {
	var errs []error
	for _, name := range d.names() {
		c := d.conns[name]
		var err error
		switch c.driver {
		case "postgres":
			var pc *pgx.ConnConfig
			if pc, err = pgx.ParseConfig(c.dsn); err == nil {
				c.db = stdlib.OpenDB(*pc)
			}
		case "mysql":
			c.db, err = dbsql.Open("mysql", c.dsn)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("connection %s (%s): %v", name, c.addr, err))
			continue
		}
		c.db.SetMaxOpenConns(orDefault(c.cfg.MaxOpen, 10))
		c.db.SetMaxIdleConns(orDefault(c.cfg.MaxIdle, 4))
		c.db.SetConnMaxLifetime(orDefault(c.cfg.MaxLifetime, 30*time.Minute))
		if err := c.ping(ctx); err != nil {
			errs = append(errs, err) // the pool stays: it reconnects when the database is back
		}
	}
	return errors.Join(errs...)
}

// Check pings every connection.
func (d *DB) Check(ctx context.Context) error {
	if len(d.conns) == 0 {
		return fmt.Errorf("no connections (add integrations: sql: connections: NAME: {dsn: ...} to the node's --config file): %w", builtins.ErrNotConfigured)
	}
	var errs []error
	for _, name := range d.names() {
		if err := d.conns[name].ping(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *conn) ping(ctx context.Context) error {
	if c.db == nil {
		return fmt.Errorf("connection %s (%s %s): not open", c.name, c.driver, c.addr)
	}
	if err := c.db.PingContext(ctx); err != nil {
		return fmt.Errorf("connection %s (%s at %s): %v; is the database up, and the dsn right?", c.name, c.driver, c.addr, err)
	}
	return nil
}

// Close closes every pool.
func (d *DB) Close() error {
	var errs []error
	for _, c := range d.conns {
		if c.db != nil {
			errs = append(errs, c.db.Close())
		}
	}
	return errors.Join(errs...)
}

// conn returns the connection called name.
func (d *DB) conn(name, node string) (*conn, error) {
	c := d.conns[name]
	if c == nil {
		have := strings.Join(d.names(), ", ")
		if have == "" {
			have = "none"
		}
		return nil, builtins.Errorf(builtins.CodeBadArgs, "no connection %q on node %s (it has: %s; connections come from the node's --config file)", name, node, have)
	}
	if c.db == nil {
		return nil, builtins.Errorf(builtins.CodeTransport, "connection %s (%s) could not be opened on node %s (see ctl integrations)", name, c.addr, node)
	}
	return c, nil
}

func (d *DB) names() []string {
	out := make([]string, 0, len(d.conns))
	for n := range d.conns {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
