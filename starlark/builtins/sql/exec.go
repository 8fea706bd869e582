package sql

import (
	"context"
	dbsql "database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// statement is one statement of a call: its SQL and its parameters.
type statement struct {
	Query  string `json:"query,omitempty"` // returns rows
	Exec   string `json:"exec,omitempty"`  // returns what it changed
	Params []any  `json:"params"`
}

// call is the journaled arguments of sql.query, sql.exec and sql.tx.
type call struct {
	Conn       string      `json:"conn"`
	Statements []statement `json:"statements"`
	Tx         bool        `json:"tx,omitempty"` // sql.tx: in a transaction, a result per statement
}

func steps() []*builtins.Step {
	return []*builtins.Step{
		{Name: "sql.query", Doc: "rows of a query, as a list of dicts", Args: oneArgs(true), Exec: execCall, Target: target, Resources: demand},
		{Name: "sql.exec", Doc: "run a statement; what it changed", Args: oneArgs(false), Exec: execCall, Target: target, Resources: demand},
		{Name: "sql.tx", Doc: "several statements in one transaction", Args: txArgs, Exec: execCall, Target: target, Resources: demand},
	}
}

// target is a call's breaker target: its connection.
func target(_ builtins.Env, raw json.RawMessage) string {
	if c := connOf(raw); c != "" {
		return "sql " + c
	}
	return ""
}

// demand is what a call consumes: a unit of its connection's pool
// (DB.Resources).
func demand(raw json.RawMessage) []builtins.Demand {
	if c := connOf(raw); c != "" {
		return []builtins.Demand{{Resource: resource(c), Amount: 1}}
	}
	return nil
}

// connOf is a call's connection name.
func connOf(raw json.RawMessage) string {
	var c struct {
		Conn string `json:"conn"`
	}
	json.Unmarshal(raw, &c)
	return c.Conn
}

// oneArgs parses (conn, sql, params=[]) of sql.query or sql.exec.
func oneArgs(query bool) func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	return func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
		var conn, text string
		var params starlark.Value = starlark.NewList(nil)
		if err := builtins.UnpackArgs(b.Name(), args, kwargs, "conn", &conn, "sql", &text, "params?", &params); err != nil {
			return nil, err
		}
		st, err := newStatement(b.Name(), "", text, params, query)
		if err != nil {
			return nil, err
		}
		return call{Conn: conn, Statements: []statement{st}}, nil
	}
}

// txArgs parses (conn, statements) of sql.tx: each statement a dict with
// "query" or "exec", and "params".
func txArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	var conn string
	var list *starlark.List
	if err := builtins.UnpackArgs(b.Name(), args, kwargs, "conn", &conn, "statements", &list); err != nil {
		return nil, err
	}
	if list.Len() == 0 {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "statements", Err: errors.New(`no statements: give a list of {"exec": ...} or {"query": ...} dicts`)}
	}
	c := call{Conn: conn, Tx: true}
	for i := range list.Len() {
		param := fmt.Sprintf("statements[%d]", i)
		d, ok := list.Index(i).(*starlark.Dict)
		if !ok {
			return nil, &builtins.ArgError{Func: b.Name(), Param: param, Err: fmt.Errorf(`got %s, want a dict such as {"exec": "insert ...", "params": [1]}`, list.Index(i).Type())}
		}
		var text string
		query := false
		for _, k := range d.Keys() {
			switch k {
			case starlark.String("query"), starlark.String("exec"):
				if text != "" {
					return nil, &builtins.ArgError{Func: b.Name(), Param: param, Err: errors.New(`give "query" or "exec", not both`)}
				}
				s, _, _ := d.Get(k)
				str, ok := s.(starlark.String)
				if !ok {
					return nil, &builtins.ArgError{Func: b.Name(), Param: param, Err: fmt.Errorf("%s: got %s, want a string", k, s.Type())}
				}
				text, query = string(str), k == starlark.String("query")
			case starlark.String("params"):
			default:
				return nil, &builtins.ArgError{Func: b.Name(), Param: param, Err: fmt.Errorf(`unknown key %s (want "query" or "exec", and "params")`, k)}
			}
		}
		params, found, _ := d.Get(starlark.String("params"))
		if !found {
			params = starlark.NewList(nil)
		}
		st, err := newStatement(b.Name(), param, text, params, query)
		if err != nil {
			return nil, err
		}
		c.Statements = append(c.Statements, st)
	}
	return c, nil
}

// newStatement checks one statement's SQL and parameters; within is the
// statement's place in sql.tx's list ("" for sql.query and sql.exec).
func newStatement(fn, within, text string, params starlark.Value, query bool) (statement, error) {
	sqlParam, paramsParam := "sql", "params"
	if within != "" {
		sqlParam, paramsParam = within, within+".params"
	}
	if strings.TrimSpace(text) == "" {
		return statement{}, &builtins.ArgError{Func: fn, Param: sqlParam, Err: errors.New(`empty SQL (a sql.tx statement needs "query" or "exec")`)}
	}
	var seq starlark.Indexable
	switch p := params.(type) {
	case *starlark.List:
		seq = p
	case starlark.Tuple:
		seq = p
	default:
		return statement{}, &builtins.ArgError{Func: fn, Param: paramsParam, Err: fmt.Errorf("got %s, want a list: values travel as parameters ($1 or ?), never inside the SQL", params.Type())}
	}
	st := statement{Params: make([]any, 0, seq.Len())}
	for i := range seq.Len() {
		v, err := builtins.ToJSON(seq.Index(i))
		if err != nil {
			return statement{}, &builtins.ArgError{Func: fn, Param: fmt.Sprintf("%s[%d]", paramsParam, i), Err: err}
		}
		st.Params = append(st.Params, v)
	}
	if query {
		st.Query = text
	} else {
		st.Exec = text
	}
	return st, nil
}

// execCall runs a call's statements: one alone, or several in a transaction.
func execCall(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
	var c call
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "sql: arguments: %v", err)
	}
	d, err := builtins.Use[*DB](env, "sql")
	if err != nil {
		return nil, builtins.Errorf(builtins.CodeInternal, "sql: %v", err)
	}
	cn, err := d.conn(c.Conn, env.Node())
	if err != nil {
		return nil, err
	}
	if !c.Tx {
		return cn.run(ctx, cn.db, c.Statements[0])
	}
	tx, err := cn.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, cn.failure("begin", err)
	}
	defer tx.Rollback()
	results := make([]any, 0, len(c.Statements))
	for i, st := range c.Statements {
		r, err := cn.run(ctx, tx, st)
		if err != nil {
			var se *builtins.StepError
			if errors.As(err, &se) {
				se.Message = fmt.Sprintf("statement %d of %d, rolled back: %s", i+1, len(c.Statements), se.Message)
			}
			return nil, err
		}
		results = append(results, r)
	}
	if err := tx.Commit(); err != nil {
		return nil, cn.failure("commit", err)
	}
	return results, nil
}

// querier is a pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*dbsql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (dbsql.Result, error)
}

// run runs one statement, in a client span of its own.
func (c *conn) run(ctx context.Context, q querier, st statement) (any, error) {
	ctx, span := telemetry.StartClient(ctx, scope, func() (string, []attribute.KeyValue) { return c.describe(st) })
	defer span.End()
	v, err := c.runStatement(ctx, q, st)
	if err != nil && span.IsRecording() {
		builtins.FailSpan(span, err)
	}
	return v, err
}

// runStatement runs one statement.
func (c *conn) runStatement(ctx context.Context, q querier, st statement) (any, error) {
	params := make([]any, len(st.Params))
	for i, p := range st.Params {
		params[i] = param(p)
	}
	if st.Exec != "" {
		res, err := q.ExecContext(ctx, st.Exec, params...)
		if err != nil {
			return nil, c.failure("exec", err)
		}
		out := map[string]any{"rows_affected": nil, "last_insert_id": nil}
		if n, err := res.RowsAffected(); err == nil {
			out["rows_affected"] = n
		}
		if c.driver == "mysql" {
			if id, err := res.LastInsertId(); err == nil {
				out["last_insert_id"] = id
			}
		}
		return out, nil
	}
	rows, err := q.QueryContext(ctx, st.Query, params...)
	if err != nil {
		return nil, c.failure("query", err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, c.failure("query", err)
	}
	out := []any{}
	dest := make([]any, len(types))
	for rows.Next() {
		vals := make([]any, len(types))
		for i := range dest {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, c.failure("query", err)
		}
		row := make(map[string]any, len(types))
		for i, t := range types {
			v, err := value(vals[i], t.DatabaseTypeName())
			if err != nil {
				return nil, builtins.Errorf("sql", "connection %s: column %s (%s): %v", c.name, t.Name(), t.DatabaseTypeName(), err)
			}
			row[t.Name()] = v
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, c.failure("query", err)
	}
	return out, nil
}

// param converts a journaled parameter into what the driver takes: whole
// numbers as int64, other numbers as float64, lists and dicts as JSON text.
func param(p any) any {
	switch v := p.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if !strings.ContainsAny(string(v), ".eE") {
			return string(v) // a whole number beyond int64: exact, as text (numeric columns take it)
		}
		f, _ := v.Float64()
		return f
	case map[string]any, []any:
		b, _ := json.Marshal(v)
		return string(b)
	}
	return p
}

// value converts a scanned column value into a JSON-safe one, by the
// column's database type.
func value(v any, dbType string) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case int64, float64, bool, uint64:
		return x, nil
	case float32:
		return float64(x), nil
	case int32:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int:
		return int64(x), nil
	case uint32:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint8:
		return uint64(x), nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case string:
		return textValue(x, dbType)
	case []byte:
		switch strings.ToUpper(dbType) {
		case "BYTEA", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "BIT", "GEOMETRY":
			return base64.StdEncoding.EncodeToString(x), nil
		}
		if !utf8.Valid(x) {
			return base64.StdEncoding.EncodeToString(x), nil
		}
		return textValue(string(x), dbType)
	}
	return nil, fmt.Errorf("a %T, which has no JSON form", v)
}

// textValue converts a column's text form: MySQL returns integers and
// floats as text, and JSON columns are parsed into values.
func textValue(s, dbType string) (any, error) {
	switch strings.ToUpper(dbType) {
	case "INT", "INTEGER", "TINYINT", "SMALLINT", "MEDIUMINT", "BIGINT", "INT2", "INT4", "INT8", "YEAR":
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
	case "UNSIGNED INT", "UNSIGNED BIGINT", "UNSIGNED TINYINT", "UNSIGNED SMALLINT", "UNSIGNED MEDIUMINT":
		if i, err := strconv.ParseUint(s, 10, 64); err == nil {
			return i, nil
		}
	case "FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8":
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f, nil
		}
	case "JSON", "JSONB":
		if json.Valid([]byte(s)) {
			return json.RawMessage(s), nil
		}
	}
	return s, nil
}

// failure turns a driver error into the step's error: a database's own
// error is "sql" (retried when it is a serialization failure or a
// deadlock); a connection that failed is "transport", retried.
func (c *conn) failure(what string, err error) error {
	var pe *pgconn.PgError
	var me *mysql.MySQLError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		return &builtins.StepError{Code: "sql", Retryable: pe.Code == "40001" || pe.Code == "40P01",
			Message: fmt.Sprintf("connection %s: %s: %s (SQLSTATE %s)", c.name, what, pe.Message, pe.Code)}
	case errors.As(err, &me):
		return &builtins.StepError{Code: "sql", Retryable: me.Number == 1213 || me.Number == 1205,
			Message: fmt.Sprintf("connection %s: %s: %s (MySQL error %d)", c.name, what, me.Message, me.Number)}
	case errors.Is(err, driver.ErrBadConn), errors.As(err, &ne), pgconn.SafeToRetry(err):
		return &builtins.StepError{Code: builtins.CodeTransport, Retryable: true,
			Message: fmt.Sprintf("connection %s (%s at %s): %s: %v", c.name, c.driver, c.addr, what, err)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err // the engine says which deadline
	}
	return &builtins.StepError{Code: "sql", Message: fmt.Sprintf("connection %s: %s: %v", c.name, what, err)}
}
