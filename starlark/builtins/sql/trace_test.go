package sql_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/starlark/builtins/sql"
	"github.com/droverhq/drover/telemetry/telemetrytest"
)

// TestSpans: each statement is a client span with the database
// conventions' attributes: its text as written, with its placeholders, and
// never a parameter's value or the connection's password; a failing
// statement fails its span.
func TestSpans(t *testing.T) {
	u, err := url.Parse(pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	password, ok := u.User.Password()
	if !ok {
		password = "pw-sql-77c1" // the test database trusts local connections: any password does
		u.User = url.UserPassword(u.User.Username(), password)
	}
	r, rt := open(t, map[string]sql.Connection{"pg": {DSN: u.String()}, "my": {Driver: "mysql", DSN: mysqlDSN}})
	rec := telemetrytest.Record(t)
	const param = "param-value-9f3e"
	eval(t, r, rt, fmt.Sprintf(`sql.query("pg", "select $1::text as s, '%s' as p", [%q])`, password, param))
	eval(t, r, rt, fmt.Sprintf(`sql.query("my", "select ? as s", [%q])`, param))
	eval(t, r, rt, fmt.Sprintf(`sql.tx("pg", [{"query": "select $1::text as a", "params": [%q]}, {"exec": "select 2"}])`, param))
	if _, err := rt.Eval(r, `sql.query("pg", "select * from no_such_table")`, nil); err == nil {
		t.Fatal("a query of a missing table succeeded")
	}
	pgHost, pgPort := u.Hostname(), u.Port()
	for _, c := range []struct {
		name  string
		attrs map[string]string
		fails bool
	}{
		{"select " + strings.TrimPrefix(u.Path, "/"), map[string]string{"db.system.name": "postgresql", "db.system": "postgresql", "db.namespace": strings.TrimPrefix(u.Path, "/"),
			"server.address": pgHost, "server.port": pgPort, "db.operation.name": "select", "db.query.text": "select $1::text as s, '[redacted]' as p"}, false},
		{"select test", map[string]string{"db.system.name": "mysql", "db.query.text": "select ? as s", "db.namespace": "test"}, false},
	} {
		found := false
		for _, s := range rec.Ended() {
			a := telemetrytest.Attrs(s)
			if s.Name() != c.name || a["db.system.name"] != c.attrs["db.system.name"] || a["db.query.text"] != c.attrs["db.query.text"] {
				continue
			}
			found = true
			for k, want := range c.attrs {
				if a[k] != want {
					t.Errorf("%s: %s = %q, want %q", c.name, k, a[k], want)
				}
			}
			if s.SpanKind() != trace.SpanKindClient || (s.Status().Code == codes.Error) != c.fails {
				t.Errorf("%s: kind %s, status %v", c.name, s.SpanKind(), s.Status())
			}
		}
		if !found {
			t.Errorf("no span %q with %v", c.name, c.attrs)
		}
	}
	var tx, failed int
	for _, s := range rec.Ended() {
		a := telemetrytest.Attrs(s)
		for k, v := range a {
			if strings.Contains(v, param) || strings.Contains(v, password) {
				t.Errorf("span %s: %s = %q: a parameter's value or the password", s.Name(), k, v)
			}
		}
		switch a["db.query.text"] {
		case "select $1::text as a", "select 2":
			tx++
		case "select * from no_such_table":
			if s.Status().Code == codes.Error && a["error.type"] == "sql" && strings.Contains(s.Status().Description, "SQLSTATE 42P01") {
				failed++
			}
		}
	}
	if tx != 2 || failed != 1 {
		t.Errorf("%d spans of the transaction's 2 statements, %d failed span of a missing table; spans: %d", tx, failed, len(rec.Ended()))
	}
}
