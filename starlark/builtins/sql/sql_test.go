package sql_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/sql"
)

// The databases this machine runs (docs/integrations.md); DROVER_TEST_PG and
// DROVER_TEST_MYSQL point elsewhere.
var (
	pgDSN    = builtinstest.FromEnv("DROVER_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
	mysqlDSN = builtinstest.FromEnv("DROVER_TEST_MYSQL", "root@tcp(127.0.0.1:3306)/test")
)

// open opens the sql integration as a node does, with connections pg and
// my (or conns), and a runtime whose steps use it.
func open(t *testing.T, conns map[string]sql.Connection) (*builtins.Registry, *builtinstest.Runtime) {
	t.Helper()
	if conns == nil {
		conns = map[string]sql.Connection{"pg": {DSN: pgDSN}, "my": {Driver: "mysql", DSN: mysqlDSN}}
	}
	r, rt, st := builtinstest.OpenIntegration(t, sql.Register, &sql.Config{Connections: conns})
	if st.State != builtins.StateOK {
		t.Fatalf("the test databases must be up: %s", st.Error)
	}
	return r, rt
}

func eval(t *testing.T, r *builtins.Registry, rt *builtinstest.Runtime, expr string) string {
	t.Helper()
	v, err := rt.Eval(r, expr, nil)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v.String()
}

// table makes a fresh table for one test on both databases.
func table(t *testing.T, r *builtins.Registry, rt *builtinstest.Runtime, ddl map[string]string) string {
	t.Helper()
	name := fmt.Sprintf("drover_t%d", time.Now().UnixNano())
	for conn, cols := range ddl {
		eval(t, r, rt, fmt.Sprintf(`sql.exec(%q, "create table %s (%s)")`, conn, name, cols))
		t.Cleanup(func() { rt.Eval(r, fmt.Sprintf(`sql.exec(%q, "drop table %s")`, conn, name), nil) })
	}
	return name
}

func TestQueryTypes(t *testing.T) {
	r, rt := open(t, nil)
	got := eval(t, r, rt, `sql.query("pg", "select 1 as i, 2.5::float8 as f, 1.10::numeric(5,2) as n, 'héllo' as s, true as b, null as z, '\\x0102'::bytea as raw, timestamptz '2024-03-01 12:00:00+02' as ts, date '2024-03-01' as d, '{\"a\":[1,2]}'::jsonb as j, point(1,2) as p, array[1,2] as arr, $1::int + 1 as param", [41])`)
	want := `[{"arr": "{1,2}", "b": True, "d": "2024-03-01T00:00:00Z", "f": 2.5, "i": 1, "j": {"a": [1, 2]}, "n": "1.10", "p": "(1,2)", "param": 42, "raw": "AQI=", "s": "héllo", "ts": "2024-03-01T10:00:00Z", "z": None}]`
	if got != want {
		t.Errorf("postgres:\n got %s\nwant %s", got, want)
	}
	got = eval(t, r, rt, `sql.query("my", "select 1 as i, cast(2.5 as double) as f, cast(1.10 as decimal(5,2)) as n, 'héllo' as s, null as z, cast(x'0102' as binary(2)) as raw, timestamp('2024-03-01 12:00:00') as ts, json_object('a', json_array(1,2)) as j, ? + 1 as param", [41])`)
	// MariaDB's JSON is LONGTEXT: a string (MySQL 8's JSON type is a value).
	want = `[{"f": 2.5, "i": 1, "j": "{\"a\": [1, 2]}", "n": "1.10", "param": 42, "raw": "AQI=", "s": "héllo", "ts": "2024-03-01T12:00:00Z", "z": None}]`
	if got != want {
		t.Errorf("mysql:\n got %s\nwant %s", got, want)
	}
}

// TestExecAndTx: statements change rows and say how many; a transaction's
// statements commit together, or a failing one rolls them all back.
func TestExecAndTx(t *testing.T) {
	r, rt := open(t, nil)
	tbl := table(t, r, rt, map[string]string{"pg": "id int primary key, name text", "my": "id int auto_increment primary key, name text"})
	if got := eval(t, r, rt, fmt.Sprintf(`sql.exec("pg", "insert into %s values ($1, $2), ($3, $4)", [1, "a", 2, "b"])`, tbl)); got != `{"last_insert_id": None, "rows_affected": 2}` {
		t.Errorf("pg exec: %s", got)
	}
	if got := eval(t, r, rt, fmt.Sprintf(`sql.exec("my", "insert into %s (name) values (?)", ["a"])`, tbl)); got != `{"last_insert_id": 1, "rows_affected": 1}` {
		t.Errorf("mysql exec: %s", got)
	}
	got := eval(t, r, rt, fmt.Sprintf(`sql.tx("pg", [{"exec": "update %[1]s set name = $1 where id = $2", "params": ["z", 1]}, {"query": "select name from %[1]s order by id"}])`, tbl))
	if got != `[{"last_insert_id": None, "rows_affected": 1}, [{"name": "z"}, {"name": "b"}]]` {
		t.Errorf("tx: %s", got)
	}
	_, err := rt.Eval(r, fmt.Sprintf(`sql.tx("pg", [{"exec": "update %[1]s set name = 'lost'"}, {"exec": "insert into %[1]s values (1, 'dup')"}])`, tbl), nil)
	if err == nil || !strings.Contains(err.Error(), "statement 2 of 2, rolled back: connection pg: exec: duplicate key value violates unique constraint") || !strings.Contains(err.Error(), "SQLSTATE 23505") {
		t.Fatalf("failing tx: %v", err)
	}
	if got := eval(t, r, rt, fmt.Sprintf(`sql.query("pg", "select count(*) as n from %s where name = 'lost'")`, tbl)); got != `[{"n": 0}]` {
		t.Errorf("the failed transaction's first statement stayed: %s", got)
	}
}

// TestErrors: each mistake fails the step with a message that says what and
// where; none is retried but a connection that cannot be reached.
func TestErrors(t *testing.T) {
	r, rt := open(t, nil)
	for _, c := range []struct{ expr, want string }{
		{`sql.query("pg", "selec 1")`, `connection pg: query: syntax error at or near "selec" (SQLSTATE 42601)`},
		{`sql.query("my", "selec 1")`, `connection my: query: You have an error in your SQL syntax`},
		{`sql.query("pg", "select $1::int")`, `connection pg: query: expected 1 arguments, got 0`},
		{`sql.query("my", "select ?", [1, 2])`, `connection my: query: sql: expected 1 arguments, got 2`},
		{`sql.query("pg", "select * from no_such_table")`, `relation "no_such_table" does not exist (SQLSTATE 42P01)`},
		{`sql.query("nope", "select 1")`, `no connection "nope" on node test-node (it has: my, pg; connections come from the node's --config file)`},
		{`sql.query("pg", "select 1", "1")`, `sql.query: for parameter params: got string, want a list`},
		{`sql.query("pg", "  ")`, `sql.query: for parameter sql: empty SQL`},
		{`sql.tx("pg", [{"params": [1]}])`, `sql.tx: for parameter statements[0]: empty SQL (a sql.tx statement needs "query" or "exec")`},
		{`sql.tx("pg", [{"exec": "select 1", "params": 3}])`, `sql.tx: for parameter statements[0].params: got int, want a list`},
		{`sql.query("pg", "select $1", [{1: 2}])`, `sql.query: for parameter params[0]`},
		{`sql.tx("pg", [])`, `sql.tx: for parameter statements: no statements`},
		{`sql.tx("pg", [{"exec": "select 1", "query": "select 2"}])`, `give "query" or "exec", not both`},
		{`sql.tx("pg", [{"run": "select 1"}])`, `unknown key "run"`},
		{`sql.tx("pg", ["select 1"])`, `got string, want a dict`},
	} {
		_, err := rt.Eval(r, c.expr, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.expr, err, c.want)
		}
	}
}

// TestPoolReused: sequential steps share one connection of the pool rather
// than opening one each.
func TestPoolReused(t *testing.T) {
	r, rt := open(t, nil)
	pids := map[string]bool{}
	for range 20 {
		v, err := rt.Eval(r, `sql.query("pg", "select pg_backend_pid() as pid")[0]["pid"]`, nil)
		if err != nil {
			t.Fatal(err)
		}
		pids[v.String()] = true
	}
	if len(pids) != 1 {
		t.Fatalf("20 sequential queries used %d backends: %v", len(pids), pids)
	}
}

// TestConfigErrors: a connection without a DSN or with an unknown driver is
// refused when the node opens it; a database that does not answer is
// failing, with the connection, its address and what to check; a node with
// no connections is unconfigured.
func TestConfigErrors(t *testing.T) {
	r := builtins.NewRegistry()
	sql.Register(r)
	for _, c := range []struct {
		conns map[string]sql.Connection
		state string
		want  string
	}{
		{map[string]sql.Connection{"db": {}}, builtins.StateFailing, "integration sql: open: connection db: no dsn"},
		{map[string]sql.Connection{"db": {Driver: "oracle", DSN: "x"}}, builtins.StateFailing, `connection db: driver "oracle": want postgres or mysql`},
		{map[string]sql.Connection{"db": {DSN: "host=x"}}, builtins.StateFailing, "connection db: no driver"},
		{map[string]sql.Connection{"db": {DSN: "postgres://app:pw-sekrit-1@127.0.0.1:1/x"}}, builtins.StateFailing, "connection db (postgres at 127.0.0.1:1)"},
		{nil, builtins.StateUnconfigured, "no connections"},
	} {
		o := builtins.OpenIntegrations(context.Background(), r, map[string]any{"sql": &sql.Config{Connections: c.conns}})
		st := o.Check(context.Background())[0]
		o.Close()
		if st.State != c.state || !strings.Contains(st.Error, c.want) || strings.Contains(st.Error, "pw-sekrit-1") {
			t.Errorf("%v: %s %q, want %s %q", c.conns, st.State, st.Error, c.state, c.want)
		}
	}
}

// TestReviewedEdges: sql.tx of one statement is still a list of results;
// MySQL FLOAT and a BIGINT UNSIGNED above int64 come back as numbers; an
// integer parameter beyond int64 reaches a numeric column exactly.
func TestReviewedEdges(t *testing.T) {
	r, rt := open(t, nil)
	if got := eval(t, r, rt, `sql.tx("pg", [{"query": "select 1 as x"}])`); got != `[[{"x": 1}]]` {
		t.Errorf("one-statement tx: %s", got)
	}
	if got := eval(t, r, rt, `sql.query("my", "select cast(1.5 as float) as f, cast(18446744073709551615 as unsigned) as u")`); got != `[{"f": 1.5, "u": 18446744073709551615}]` {
		t.Errorf("mysql float and unsigned: %s", got)
	}
	if got := eval(t, r, rt, `sql.query("pg", "select $1::numeric::text as n", [123456789012345678901234567890])`); got != `[{"n": "123456789012345678901234567890"}]` {
		t.Errorf("a big integer parameter: %s", got)
	}
}
