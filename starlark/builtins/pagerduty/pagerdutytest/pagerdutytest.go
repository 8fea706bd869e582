// Package pagerdutytest is a local stand-in for PagerDuty's Events API
// v2, for tests of what pages (the pagerduty integration, alert rules), as
// PagerDuty documents it
// (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/):
// POST /v2/enqueue with a JSON event answers 202 {"status": "success",
// "message": "Event processed", "dedup_key": ...} (a key of its own for a
// trigger without one), or 400 {"status": "invalid event", "message":
// "Event object is invalid", "errors": [...]} for a wrong routing key, an
// unknown event_action, a trigger without summary, source or a valid
// severity, a summary over 1024 characters or a dedup_key over 255, an
// acknowledge or resolve without a dedup_key. It keeps each alert's state
// by dedup key, as PagerDuty would. No real PagerDuty endpoint is reachable
// from this project's machines.
package pagerdutytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"unicode/utf8"
)

// Server is an Events API v2 stand-in on a loopback port. Close it when
// done.
type Server struct {
	*httptest.Server
	// RoutingKey is the integration key it accepts.
	RoutingKey string

	mu       sync.Mutex
	events   []Event
	alerts   map[string]string
	fail     []int
	requests int
}

// Event is an event the stand-in accepted, as sent.
type Event struct {
	RoutingKey string   `json:"routing_key"`
	Action     string   `json:"event_action"`
	DedupKey   string   `json:"dedup_key"`
	Payload    *Payload `json:"payload"`
	Client     string   `json:"client"`
}

// Payload is a trigger's payload.
type Payload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	CustomDetails map[string]any `json:"custom_details"`
}

// NewServer starts a stand-in accepting routingKey.
func NewServer(routingKey string) *Server {
	s := &Server{RoutingKey: routingKey, alerts: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// FailNext makes the next requests get the HTTP statuses given (429,
// 500...), one each, in order.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, statuses...)
}

// Events returns the events accepted so far, in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Alert returns the state of the alert of dedupKey: "triggered",
// "acknowledged", "resolved", or "" if there is none.
func (s *Server) Alert(dedupKey string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alerts[dedupKey]
}

// Requests returns how many requests the stand-in received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if len(s.fail) > 0 {
		status := s.fail[0]
		s.fail = s.fail[1:]
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":"%s","message":"%s"}`, http.StatusText(status), http.StatusText(status))
		return
	}
	if r.URL.Path != "/v2/enqueue" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		invalid(w, "Event object is invalid: not JSON")
		return
	}
	var problems []string
	if e.RoutingKey != s.RoutingKey {
		problems = append(problems, "Invalid routing key")
	}
	if utf8.RuneCountInString(e.DedupKey) > 255 {
		problems = append(problems, "'dedup_key' is longer than 255 characters")
	}
	switch e.Action {
	case "trigger":
		p := e.Payload
		switch {
		case p == nil:
			problems = append(problems, "'payload' is missing or blank")
		default:
			if p.Summary == "" {
				problems = append(problems, "'payload.summary' is missing or blank")
			} else if utf8.RuneCountInString(p.Summary) > 1024 {
				problems = append(problems, "'payload.summary' is longer than 1024 characters")
			}
			if p.Source == "" {
				problems = append(problems, "'payload.source' is missing or blank")
			}
			if !slices.Contains([]string{"critical", "error", "warning", "info"}, p.Severity) {
				problems = append(problems, "'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')")
			}
		}
	case "acknowledge", "resolve":
		if e.DedupKey == "" {
			problems = append(problems, "'dedup_key' is missing or blank")
		}
	default:
		problems = append(problems, "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')")
	}
	if len(problems) > 0 {
		invalid(w, problems...)
		return
	}
	if e.DedupKey == "" {
		e.DedupKey = fmt.Sprintf("generated-%d", len(s.events)+1)
	}
	s.events = append(s.events, e)
	switch st := s.alerts[e.DedupKey]; e.Action {
	case "trigger":
		if st == "" || st == "resolved" {
			s.alerts[e.DedupKey] = "triggered"
		}
	case "acknowledge":
		if st == "triggered" {
			s.alerts[e.DedupKey] = "acknowledged"
		}
	case "resolve":
		if st != "" {
			s.alerts[e.DedupKey] = "resolved"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]string{"status": "success", "message": "Event processed", "dedup_key": e.DedupKey})
}

func invalid(w http.ResponseWriter, errs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": errs})
}
