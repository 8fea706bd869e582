package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// LogQuery selects run log lines (GET /v1/logs, ctl logs).
type LogQuery struct {
	// Run selects one run's lines, from every node, in order.
	Run string `json:"run,omitempty"`
	// Attrs, Script and Node select the lines of runs with every one of
	// these attributes (tag() included), of that script, written on that
	// node.
	Attrs  map[string]string `json:"attrs,omitempty"`
	Script string            `json:"script,omitempty"`
	Node   string            `json:"node,omitempty"`
	// Level is the lowest level shown: debug (default), info, warn, error.
	Level string `json:"level,omitempty"`
	// Since reads back the lines of this long ago to now (of a run: all of
	// them when zero).
	Since time.Duration `json:"since,omitempty"`
	// Follow goes on with the lines written from now on, until the caller
	// stops.
	Follow bool `json:"follow,omitempty"`
}

// LogLine is one line of a run's log: the line (a JSON object with level,
// time, node, run, script, version, trace_id, span_id, attrs, message and
// the fields the line was written with), or, when Dropped is above zero, a
// note that this many lines were dropped because the reader was too slow.
type LogLine struct {
	Line    json.RawMessage `json:"line,omitempty"`
	Dropped int             `json:"dropped,omitempty"`
}

// Ready reports whether l is the mark a live tail sends once it is in
// place, before any line (neither a line nor a count of dropped ones):
// every line written from then on reaches it. Callers that print lines skip
// it.
func (l LogLine) Ready() bool { return l.Line == nil && l.Dropped == 0 }

// Query returns q as the query of GET /v1/logs.
func (q LogQuery) Query() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("run", q.Run)
	set("script", q.Script)
	set("node", q.Node)
	set("level", q.Level)
	for k, a := range q.Attrs {
		v.Add("attr", k+"="+a)
	}
	if q.Since > 0 {
		v.Set("since", q.Since.String())
	}
	if q.Follow {
		v.Set("follow", "true")
	}
	return v
}

// ParseLogQuery reads a LogQuery from the query of GET /v1/logs, refusing
// (ErrBadInput) what Query would never write.
func ParseLogQuery(v url.Values) (LogQuery, error) {
	q := LogQuery{Run: v.Get("run"), Script: v.Get("script"), Node: v.Get("node"), Level: v.Get("level")}
	var err error
	if q.Attrs, err = parseAttrQuery(v["attr"]); err != nil {
		return q, err
	}
	if s := v.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return q, fmt.Errorf("%w: since %q: want a duration such as 30m, 2h or 24h", ErrBadInput, s)
		}
		q.Since = d
	}
	switch f := v.Get("follow"); f {
	case "", "false", "0":
	case "true", "1":
		q.Follow = true
	default:
		return q, fmt.Errorf("%w: follow %q: want true or false", ErrBadInput, f)
	}
	return q, q.Check()
}

// Check refuses a query that selects nothing sensible (ErrBadInput).
func (q LogQuery) Check() error {
	switch q.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("%w: level %q: want debug, info, warn or error", ErrBadInput, q.Level)
	}
	for k := range q.Attrs {
		if err := CheckAttrName(k); err != nil {
			return err
		}
	}
	if q.Run == "" && len(q.Attrs) == 0 && q.Script == "" && q.Node == "" {
		return fmt.Errorf("%w: logs of what? give a run id, or at least one of attr (customer=acme), script or node", ErrBadInput)
	}
	if q.Run == "" && q.Since <= 0 && !q.Follow {
		return fmt.Errorf("%w: logs of several runs need since (read back, e.g. 1h) or follow (live), or both", ErrBadInput)
	}
	return nil
}
