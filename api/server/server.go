// Package server serves Drover's HTTP JSON API (package api) for a node:
// routes, JSON errors, HTTP triggers of deployed scripts and live run events
// as Server-Sent Events. docs/api.md is the reference.
//
// Every request is validated before anything is started or written: a bad
// query parameter, body or header gets a 400 and no run starts. Every error,
// unknown paths and methods included, has the JSON shape api.ErrorBody.
package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/api"
)

// Backend is what a Server serves: the API, and what waits and event streams
// need beyond it. engine.Node implements it.
type Backend interface {
	api.API
	// Record returns a run's record from the runs index, without its journal.
	Record(ctx context.Context, id string) (*api.Run, error)
	// OpenEvents checks that run id exists and returns its journal to follow;
	// an error wraps api.ErrUnknownRun for a run the cluster does not know.
	OpenEvents(ctx context.Context, id string) (Events, error)
	// Name is the node's name; NATSURL where NATS clients reach it.
	Name() string
	NATSURL() string
}

// Events is the journal of one run, ready to follow.
type Events interface {
	// Follow calls fn with each entry whose ID is above after, until the
	// run's end entry, fn returns false or ctx ends. It returns an error
	// wrapping api.ErrClosed when the node shuts down.
	Follow(ctx context.Context, after uint64, fn func(api.Event) bool) error
}

// Options configures a Server. The zero value works.
type Options struct {
	// PayloadLimit bounds a run's input, in bytes (default api.DefaultPayloadLimit): the body
	// of POST /v1/run/{name}, a quarter of a POST /v1/runs body.
	PayloadLimit int
	// HeaderAttrs maps request headers of POST /v1/run/{name} to run
	// attributes, e.g. {"X-Customer-Id": "customer"}.
	HeaderAttrs map[string]string
	// TriggerTimeout is how long POST /v1/run/{name} waits for the run's end
	// before answering 504 (default 30s; ?timeout= overrides it).
	TriggerTimeout time.Duration
	// EventsKeepAlive is how long a run's event stream may stay silent before
	// the server sends a comment line, so that proxies keep the connection
	// open (default 15s).
	EventsKeepAlive time.Duration
	// LogsRate caps the lines per second one GET /v1/logs client gets;
	// beyond, lines are dropped and counted (default 2000).
	LogsRate int
	// Logger receives stream failures (default: none).
	Logger *zerolog.Logger
}

// Server is the HTTP JSON API of one node.
type Server struct {
	b    Backend
	opts Options
	log  zerolog.Logger
	mux  *http.ServeMux
	// streams ends open event streams (CloseStreams).
	streams     context.Context
	stopStreams context.CancelFunc
}

// New returns the API of b. It refuses header attributes whose attribute
// names are not valid (api.ErrBadInput).
func New(b Backend, opts Options) (*Server, error) {
	if opts.PayloadLimit <= 0 {
		opts.PayloadLimit = api.DefaultPayloadLimit
	}
	if opts.TriggerTimeout <= 0 {
		opts.TriggerTimeout = 30 * time.Second
	}
	if opts.EventsKeepAlive <= 0 {
		opts.EventsKeepAlive = 15 * time.Second
	}
	if opts.LogsRate <= 0 {
		opts.LogsRate = 2000
	}
	for header, attr := range opts.HeaderAttrs {
		if err := api.CheckAttrName(attr); err != nil {
			return nil, fmt.Errorf("server: header %s: %w (engine --attr-header)", header, err)
		}
	}
	s := &Server{b: b, opts: opts, log: zerolog.Nop(), mux: http.NewServeMux()}
	if opts.Logger != nil {
		s.log = *opts.Logger
	}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.routes()
	return s, nil
}

// routes registers the API:
//
//	POST /v1/runs               start a run (body StartRequest); ?wait=1 waits for the end (?timeout=)
//	GET  /v1/runs               list runs: ?status= &script= &version= &node= &attr=k=v (repeatable) &since=2h &before=ID &limit=
//	GET  /v1/runs/counts        how many of the newest 1,000 matching runs have each status
//	GET  /v1/runs/{id}          one run with its input and steps
//	GET  /v1/runs/{id}/wait     wait for the end: ?timeout=30s; 202 with the record if still running
//	GET  /v1/runs/{id}/export   the run as a portable file (Export)
//	GET  /v1/runs/{id}/events   the run's journal as Server-Sent Events, live until its end
//	POST /v1/runs/{id}/cancel   cancel (body CancelRequest)
//	POST /v1/runs/{id}/resume   resume a blocked or parked run, optionally on another version (body ResumeRequest)
//	POST /v1/runs/{id}/pin      keep the run past retention
//	GET  /v1/runs/{id}/script   the script version the run ran on, with its sources
//	POST /v1/runs/{id}/replay   replay check against the live version or a given script (body ReplayRequest)
//	POST /v1/run/{name}         run the deployed script name: the body is the input (see trigger.go)
//	GET  /v1/logs               run log lines as Server-Sent Events: ?run= or ?attr=k=v &script= &node= &level= &since=1h &follow=true
//	GET  /v1/scripts            the live version of every deployed script
//	POST /v1/scripts/{name}     deploy a version (body DeployRequest)
//	GET  /v1/scripts/{name}     the live version with its sources
//	GET  /v1/scripts/{name}/history  every version, oldest first
//	GET  /v1/scripts/{name}/versions/{v} one version with its sources
//	POST /v1/scripts/{name}/rollback make an earlier version live (body RollbackRequest)
//	GET  /v1/nodes              live nodes with their meters and latest placement decisions
//	GET  /v1/cluster/events     the latest joins, losses and adoptions: ?limit=100
//	GET  /v1/health             node name and NATS URL
func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("POST /v1/runs", s.start)
	m.HandleFunc("GET /v1/runs", s.list)
	m.HandleFunc("GET /v1/runs/counts", s.counts)
	m.HandleFunc("GET /v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, err := s.b.Get(r.Context(), r.PathValue("id"))
		reply(w, d, err)
	})
	m.HandleFunc("GET /v1/runs/{id}/wait", s.wait)
	m.HandleFunc("GET /v1/runs/{id}/events", s.events)
	m.HandleFunc("GET /v1/runs/{id}/export", func(w http.ResponseWriter, r *http.Request) {
		exp, err := s.b.Export(r.Context(), r.PathValue("id"))
		reply(w, exp, err)
	})
	m.HandleFunc("POST /v1/runs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		var req api.CancelRequest
		if decode(w, r, &req) {
			run, err := s.b.Cancel(r.Context(), r.PathValue("id"), req.By, req.Reason)
			reply(w, run, err)
		}
	})
	m.HandleFunc("POST /v1/runs/{id}/resume", func(w http.ResponseWriter, r *http.Request) {
		var req api.ResumeRequest
		if decode(w, r, &req) {
			script, err := s.resumeScript(r.Context(), r.PathValue("id"), req)
			if err != nil {
				writeErr(w, err)
				return
			}
			run, err := s.b.Resume(r.Context(), r.PathValue("id"), script, req.By)
			reply(w, run, err)
		}
	})
	m.HandleFunc("GET /v1/runs/{id}/script", func(w http.ResponseWriter, r *http.Request) {
		v, err := s.b.RunScript(r.Context(), r.PathValue("id"))
		reply(w, v, err)
	})
	m.HandleFunc("POST /v1/runs/{id}/replay", func(w http.ResponseWriter, r *http.Request) {
		var req api.ReplayRequest
		if decode(w, r, &req) {
			rep, err := s.b.ReplayCheck(r.Context(), r.PathValue("id"), req.Script)
			reply(w, rep, err)
		}
	})
	m.HandleFunc("POST /v1/runs/{id}/pin", func(w http.ResponseWriter, r *http.Request) {
		run, err := s.b.Pin(r.Context(), r.PathValue("id"))
		reply(w, run, err)
	})
	m.HandleFunc("POST /v1/run/{name}", s.trigger)
	m.HandleFunc("GET /v1/logs", s.logs)
	m.HandleFunc("GET /v1/scripts", func(w http.ResponseWriter, r *http.Request) {
		scripts, err := s.b.Scripts(r.Context())
		reply(w, map[string]any{"scripts": scripts}, err)
	})
	m.HandleFunc("POST /v1/scripts/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req api.DeployRequest
		if !decode(w, r, &req) {
			return
		}
		req.Script.Name = r.PathValue("name")
		dep, err := s.b.Deploy(r.Context(), req)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, dep)
	})
	m.HandleFunc("GET /v1/scripts/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, err := s.b.ScriptSource(r.Context(), r.PathValue("name"))
		reply(w, v, err)
	})
	m.HandleFunc("GET /v1/scripts/{name}/versions/{version}", func(w http.ResponseWriter, r *http.Request) {
		v, err := strconv.Atoi(r.PathValue("version"))
		if err != nil || v <= 0 {
			writeErr(w, fmt.Errorf("%w: version %q: want a version number, 1 or more (GET /v1/scripts/%s/history lists them)", api.ErrBadInput, r.PathValue("version"), r.PathValue("name")))
			return
		}
		sv, err := s.b.ScriptVersion(r.Context(), r.PathValue("name"), v)
		reply(w, sv, err)
	})
	m.HandleFunc("GET /v1/scripts/{name}/history", func(w http.ResponseWriter, r *http.Request) {
		hist, err := s.b.History(r.Context(), r.PathValue("name"))
		reply(w, map[string]any{"history": hist}, err)
	})
	m.HandleFunc("POST /v1/scripts/{name}/rollback", func(w http.ResponseWriter, r *http.Request) {
		var req api.RollbackRequest
		if decode(w, r, &req) {
			dep, err := s.b.Rollback(r.Context(), r.PathValue("name"), req.Version, req.By)
			reply(w, dep, err)
		}
	})
	m.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		nodes, err := s.b.Nodes(r.Context())
		reply(w, map[string]any{"nodes": nodes}, err)
	})
	m.HandleFunc("GET /v1/cluster/events", func(w http.ResponseWriter, r *http.Request) {
		limit := 100
		if v := r.URL.Query().Get("limit"); v != "" {
			var err error
			if limit, err = strconv.Atoi(v); err != nil || limit <= 0 || limit > 1000 {
				writeErr(w, fmt.Errorf("%w: limit %q: want a number from 1 to 1000", api.ErrBadInput, v))
				return
			}
		}
		events, err := s.b.ClusterEvents(r.Context(), limit)
		reply(w, map[string]any{"events": events}, err)
	})
	m.HandleFunc("GET /v1/integrations", func(w http.ResponseWriter, r *http.Request) {
		nodes, err := s.b.Nodes(r.Context())
		reply(w, map[string]any{"nodes": api.IntegrationsOf(nodes)}, err)
	})
	m.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"node": s.b.Name(), "nats": s.b.NATSURL()})
	})
}

// methods are the methods a route may have, to tell an unknown path (404)
// from a known path asked with another method (405).
var methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// ServeHTTP implements http.Handler. A request no route takes gets a JSON
// error: 405 method_not_allowed, with an Allow header, when its path has
// routes for other methods, else 404 not_found.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range methods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeError(w, http.StatusNotFound, api.CodeNotFound,
			fmt.Sprintf("no API route %s %s; the routes are listed in docs/api.md (GET /v1/runs, POST /v1/run/NAME, …)", r.Method, r.URL.Path), "")
		return
	}
	if slices.Contains(allow, http.MethodGet) {
		allow = append(allow, http.MethodHead)
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed,
		fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, strings.Join(allow, ", ")), "")
}

// CloseStreams ends every open event stream with a shutting_down error event,
// so that clients reconnect elsewhere. Call it when the HTTP server shuts down
// (http.Server.RegisterOnShutdown): Shutdown waits for open responses, and a
// stream is open until its run ends.
func (s *Server) CloseStreams() { s.stopStreams() }

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	f, err := api.ParseListQuery(r.URL.Query())
	if err != nil {
		writeErr(w, err)
		return
	}
	runs, err := s.b.List(r.Context(), f)
	if err != nil {
		writeErr(w, err)
		return
	}
	page := api.RunList{Runs: runs}
	if page.Runs == nil {
		page.Runs = []api.Run{}
	}
	if limit := cmp.Or(f.Limit, 100); len(runs) == limit {
		page.Next = runs[len(runs)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

// counts serves GET /v1/runs/counts: how many of the newest api.CountCap
// runs matching the filter have each status, from one listing.
func (s *Server) counts(w http.ResponseWriter, r *http.Request) {
	f, err := api.ParseListQuery(r.URL.Query())
	if err != nil {
		writeErr(w, err)
		return
	}
	if f.Status != "" || f.Before != "" || f.Limit != 0 {
		writeErr(w, fmt.Errorf("%w: counts are by status, of all matching runs: leave out status, before and limit", api.ErrBadInput))
		return
	}
	f.Limit = api.CountCap + 1
	runs, err := s.b.List(r.Context(), f)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := api.RunCounts{Counts: map[string]int{}, Capped: len(runs) > api.CountCap}
	runs = runs[:min(len(runs), api.CountCap)]
	for _, st := range api.Statuses {
		out.Counts[st] = 0
	}
	for _, run := range runs {
		out.Counts[run.Status]++
	}
	out.Of = len(runs)
	writeJSON(w, http.StatusOK, out)
}

// start serves POST /v1/runs.
func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	wait := r.URL.Query().Get("wait") != ""
	timeout, err := timeoutParam(r, 30*time.Second)
	if err != nil {
		writeErr(w, err)
		return
	}
	var req api.StartRequest
	body := http.MaxBytesReader(w, r.Body, int64(s.opts.PayloadLimit)*4+1<<20)
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		writeErr(w, fmt.Errorf("%w: request body is not a JSON StartRequest: %v", api.ErrBadInput, err))
		return
	}
	run, err := s.b.Start(r.Context(), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	if !wait {
		writeJSON(w, http.StatusCreated, run)
		return
	}
	s.awaitEnd(w, r, run.ID, timeout)
}

// wait serves GET /v1/runs/{id}/wait.
func (s *Server) wait(w http.ResponseWriter, r *http.Request) {
	timeout, err := timeoutParam(r, 30*time.Second)
	if err != nil {
		writeErr(w, err)
		return
	}
	s.awaitEnd(w, r, r.PathValue("id"), timeout)
}

// awaitEnd answers 200 with run id's record once it has stopped, or 202 with
// its record if it has not within timeout.
func (s *Server) awaitEnd(w http.ResponseWriter, r *http.Request, id string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	run, err := s.b.Wait(ctx, id)
	if errors.Is(err, context.DeadlineExceeded) {
		if run, err = s.b.Record(r.Context(), id); err == nil {
			writeJSON(w, http.StatusAccepted, run)
			return
		}
	}
	reply(w, run, err)
}

// timeoutParam reads ?timeout=, a positive duration (def when absent).
func timeoutParam(r *http.Request, def time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get("timeout")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: timeout=%q is not a positive duration (e.g. 5s or 2m)", api.ErrBadInput, v)
	}
	return d, nil
}

// reply writes v, or err as an API error.
func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// decode reads a JSON body (an empty body leaves v as it is); on failure it
// writes a bad_input error and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(v)
	if err != nil && !errors.Is(err, io.EOF) {
		writeErr(w, fmt.Errorf("%w: request body: %v", api.ErrBadInput, err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	status, body := api.ErrorBodyOf(err)
	writeJSON(w, status, body)
}

// writeError writes an ErrorBody with the given status and code.
func writeError(w http.ResponseWriter, status int, code, msg, run string) {
	body := api.NewErrorBody(code, msg)
	body.Error.Run = run
	writeJSON(w, status, body)
}

// resumeScript returns the script a resume request moves run id to: its
// Script, or the deployed Version of the run's script, or nil.
func (s *Server) resumeScript(ctx context.Context, id string, req api.ResumeRequest) (*api.Script, error) {
	if req.Version == 0 {
		return req.Script, nil
	}
	if req.Script != nil || req.Version < 0 {
		return nil, fmt.Errorf("%w: resume on a deployed version (version: N, 1 or more) or on a script (script: {...}), not both", api.ErrBadInput)
	}
	rec, err := s.b.Record(ctx, id)
	if err != nil {
		return nil, err
	}
	sv, err := s.b.ScriptVersion(ctx, rec.Script, req.Version)
	if err != nil {
		return nil, err
	}
	return &api.Script{Name: rec.Script, Main: sv.Main, Files: sv.Sources}, nil
}
