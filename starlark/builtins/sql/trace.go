package sql

import (
	"strings"
	"unicode"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// scope is the instrumentation scope of the statements' client spans.
const scope = "github.com/droverhq/drover/starlark/builtins/sql"

// describe is the name and attributes of a statement's client span, by the
// OpenTelemetry database conventions: the database system (db.system.name,
// and db.system, the name older backends read), the database, the server,
// the operation (the statement's first word) and the statement as written,
// with its placeholders ($1, ?): parameter values are never in a span.
func (c *conn) describe(st statement) (string, []attribute.KeyValue) {
	text := st.Query
	if st.Exec != "" {
		text = st.Exec
	}
	system := map[string]string{"postgres": "postgresql", "mysql": "mysql"}[c.driver]
	op := operation(text)
	attrs := append([]attribute.KeyValue{
		semconv.DBSystemNameKey.String(system),
		attribute.String("db.system", system),
		semconv.DBNamespace(c.database),
		semconv.DBQueryText(builtins.Redact(text)),
		semconv.DBOperationName(op),
	}, telemetry.ServerAttrs(c.addr)...)
	name := op
	if c.database != "" {
		name += " " + c.database
	}
	return name, attrs
}

// operation is a statement's first word ("SELECT", "insert", "WITH"), as
// written.
func operation(text string) string {
	text = strings.TrimLeftFunc(text, func(r rune) bool { return unicode.IsSpace(r) || r == '(' })
	if i := strings.IndexFunc(text, func(r rune) bool { return !unicode.IsLetter(r) }); i >= 0 {
		text = text[:i]
	}
	return text
}
