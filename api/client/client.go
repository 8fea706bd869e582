// Package client talks to a Drover node's HTTP JSON API. A *Client implements
// api.API, so callers (ctl, tests) work the same against a remote node and an
// in-process one.
package client

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/droverhq/drover/api"
)

// Client is an api.API over HTTP.
type Client struct {
	base string
	http *http.Client
	// unreachable ends the error of a request the node did not answer.
	unreachable string
}

var _ api.API = (*Client)(nil)

// New returns a client for the node at baseURL (e.g. http://127.0.0.1:8080).
func New(baseURL string) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), http: &http.Client{}}
}

// WithUnreachableHint sets what the error of a request the node did not
// answer suggests (by default: check that engine runs, --server, DROVER_URL).
func (c *Client) WithUnreachableHint(hint string) *Client {
	c.unreachable = hint
	return c
}

// unreachableErr is the error of a request to the node that failed with err.
func (c *Client) unreachableErr(err error) error {
	hint := cmp.Or(c.unreachable, "is `engine` running there? check --server / DROVER_URL")
	return fmt.Errorf("drover node at %s: %w (%s)", c.base, err, hint)
}

// Start implements api.API.
func (c *Client) Start(ctx context.Context, req api.StartRequest) (*api.Run, error) {
	var run api.Run
	return &run, c.do(ctx, http.MethodPost, "/v1/runs", req, &run)
}

// Wait implements api.API: it long-polls until the run ends or ctx ends.
func (c *Client) Wait(ctx context.Context, id string) (*api.Run, error) {
	for {
		var run api.Run
		if err := c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id)+"/wait?timeout=25s", nil, &run); err != nil {
			return nil, err
		}
		if run.Stopped() {
			return &run, nil
		}
	}
}

// Get implements api.API.
func (c *Client) Get(ctx context.Context, id string) (*api.RunDetail, error) {
	var d api.RunDetail
	return &d, c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id), nil, &d)
}

// List implements api.API.
func (c *Client) List(ctx context.Context, f api.ListFilter) ([]api.Run, error) {
	q := f.Query()
	var out struct {
		Runs []api.Run `json:"runs"`
	}
	return out.Runs, c.do(ctx, http.MethodGet, "/v1/runs?"+q.Encode(), nil, &out)
}

// Export implements api.API.
func (c *Client) Export(ctx context.Context, id string) (*api.Export, error) {
	var e api.Export
	return &e, c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id)+"/export", nil, &e)
}

// Cancel implements api.API.
func (c *Client) Cancel(ctx context.Context, id, by, reason string) (*api.Run, error) {
	var run api.Run
	return &run, c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/cancel", api.CancelRequest{By: by, Reason: reason}, &run)
}

// Resume implements api.API.
func (c *Client) Resume(ctx context.Context, id string, script *api.Script, by string) (*api.Run, error) {
	var run api.Run
	return &run, c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/resume", api.ResumeRequest{Script: script, By: by}, &run)
}

// Pin implements api.API.
func (c *Client) Pin(ctx context.Context, id string) (*api.Run, error) {
	var run api.Run
	return &run, c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/pin", nil, &run)
}

// Nodes implements api.API.
func (c *Client) Nodes(ctx context.Context) ([]api.NodeInfo, error) {
	var out struct {
		Nodes []api.NodeInfo `json:"nodes"`
	}
	return out.Nodes, c.do(ctx, http.MethodGet, "/v1/nodes", nil, &out)
}

// ClusterEvents implements api.API.
func (c *Client) ClusterEvents(ctx context.Context, limit int) ([]api.ClusterEvent, error) {
	var out struct {
		Events []api.ClusterEvent `json:"events"`
	}
	return out.Events, c.do(ctx, http.MethodGet, "/v1/cluster/events?limit="+strconv.Itoa(limit), nil, &out)
}

// Events calls fn with every journal entry of run id, in the order it was
// written, as GET /v1/runs/{id}/events streams them: first the entries
// already journaled, then each new one as it is written. It returns nil after
// the run's end entry, when fn returns false or when the node ends the stream;
// ctx.Err() when ctx ends; api's error values (ErrUnknownRun, ErrClosed
// when the node shuts down) otherwise.
func (c *Client) Events(ctx context.Context, id string, fn func(api.Event) bool) error {
	return c.stream(ctx, "/v1/runs/"+url.PathEscape(id)+"/events", "events of run "+id, fn)
}

// Logs implements api.API: GET /v1/logs, a stream of "line" events (the
// line as data) and "dropped" ones ({"dropped": n}).
func (c *Client) Logs(ctx context.Context, q api.LogQuery, fn func(api.LogLine) bool) error {
	if err := q.Check(); err != nil {
		return err
	}
	return c.stream(ctx, "/v1/logs?"+q.Query().Encode(), "logs", func(e api.Event) bool {
		switch e.Kind {
		case "line":
			return fn(api.LogLine{Line: e.Data})
		case "dropped":
			var d api.LogLine
			if json.Unmarshal(e.Data, &d) != nil || d.Dropped <= 0 {
				return true
			}
			return fn(api.LogLine{Dropped: d.Dropped})
		}
		return true
	})
}

// stream reads the Server-Sent Events at path (what names them in errors)
// and calls fn with each, until fn returns false or the stream ends.
func (c *Client) stream(ctx context.Context, path, what string, fn func(api.Event) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.unreachableErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return fmt.Errorf("drover node at %s: HTTP %d: %s", c.base, resp.StatusCode, bytes.TrimSpace(data))
		}
		return eb.Err()
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("drover node at %s: %s: got Content-Type %q, want text/event-stream (a node older than this client?)", c.base, what, ct)
	}
	if err := readEvents(resp.Body, fn); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("drover node at %s: %s: %w", c.base, what, err)
	}
	return nil
}

// readEvents parses a text/event-stream body (the WHATWG format: fields id,
// event and data, comment lines starting with a colon, a blank line ending an
// event) and calls fn with each event until the end entry, fn returns false
// or the body ends.
func readEvents(body io.Reader, fn func(api.Event) bool) error {
	r := bufio.NewReader(body)
	var ev api.Event
	var data []byte
	seen, hasData := false, false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" {
				return nil // the node ended the response
			}
			return err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if !seen {
				continue
			}
			if ev.Kind == "error" {
				var eb api.ErrorBody
				if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
					return fmt.Errorf("the node ended the stream: %s", data)
				}
				return eb.Err()
			}
			ev.Data = data
			if !fn(ev) || ev.Kind == "end" {
				return nil
			}
			ev, data, seen, hasData = api.Event{}, nil, false, false
			continue
		}
		if line[0] == ':' {
			continue // a comment: the keep-alive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		seen = true
		switch field {
		case "id":
			if ev.ID, err = strconv.ParseUint(value, 10, 64); err != nil {
				return fmt.Errorf("event id %q is not a number", value)
			}
		case "event":
			ev.Kind = api.EntryKind(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
		}
	}
}

// do sends a request and decodes the answer into out, or the API error into
// api's error values (ErrUnknownRun, ErrBadInput, *CompileError).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unreachableErr(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return fmt.Errorf("drover node at %s: HTTP %d: %s", c.base, resp.StatusCode, bytes.TrimSpace(data))
		}
		return eb.Err()
	}
	return json.Unmarshal(data, out)
}
