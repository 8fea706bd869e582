// Package client talks to a Drover node's HTTP JSON API. A *Client implements
// engine.API, so callers (ctl, tests) work the same against a remote node and an
// in-process one.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/droverhq/drover/engine"
)

// Client is an engine.API over HTTP.
type Client struct {
	base string
	http *http.Client
}

var _ engine.API = (*Client)(nil)

// New returns a client for the node at baseURL (e.g. http://127.0.0.1:8080).
func New(baseURL string) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), http: &http.Client{}}
}

// Start implements engine.API.
func (c *Client) Start(ctx context.Context, req engine.StartRequest) (*engine.Run, error) {
	var run engine.Run
	return &run, c.do(ctx, http.MethodPost, "/v1/runs", req, &run)
}

// Wait implements engine.API: it long-polls until the run ends or ctx ends.
func (c *Client) Wait(ctx context.Context, id string) (*engine.Run, error) {
	for {
		var run engine.Run
		if err := c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id)+"/wait?timeout=25s", nil, &run); err != nil {
			return nil, err
		}
		if run.Stopped() {
			return &run, nil
		}
	}
}

// Get implements engine.API.
func (c *Client) Get(ctx context.Context, id string) (*engine.RunDetail, error) {
	var d engine.RunDetail
	return &d, c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id), nil, &d)
}

// List implements engine.API.
func (c *Client) List(ctx context.Context, f engine.ListFilter) ([]engine.Run, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Script != "" {
		q.Set("script", f.Script)
	}
	for k, v := range f.Attrs {
		q.Add("attr", k+"="+v)
	}
	if f.Since > 0 {
		q.Set("since", f.Since.String())
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var out struct {
		Runs []engine.Run `json:"runs"`
	}
	return out.Runs, c.do(ctx, http.MethodGet, "/v1/runs?"+q.Encode(), nil, &out)
}

// Export implements engine.API.
func (c *Client) Export(ctx context.Context, id string) (*engine.Export, error) {
	var e engine.Export
	return &e, c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id)+"/export", nil, &e)
}

// Cancel implements engine.API.
func (c *Client) Cancel(ctx context.Context, id, by, reason string) (*engine.Run, error) {
	var run engine.Run
	return &run, c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/cancel", engine.CancelRequest{By: by, Reason: reason}, &run)
}

// Resume implements engine.API.
func (c *Client) Resume(ctx context.Context, id string, script *engine.Script, by string) (*engine.Run, error) {
	var run engine.Run
	return &run, c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/resume", engine.ResumeRequest{Script: script, By: by}, &run)
}

// Pin implements engine.API.
func (c *Client) Pin(ctx context.Context, id string) (*engine.Run, error) {
	var run engine.Run
	return &run, c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/pin", nil, &run)
}

// Nodes implements engine.API.
func (c *Client) Nodes(ctx context.Context) ([]engine.NodeInfo, error) {
	var out struct {
		Nodes []engine.NodeInfo `json:"nodes"`
	}
	return out.Nodes, c.do(ctx, http.MethodGet, "/v1/nodes", nil, &out)
}

// do sends a request and decodes the answer into out, or the API error into
// the engine's error values (ErrUnknownRun, ErrBadInput, *CompileError).
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
		return fmt.Errorf("drover node at %s: %w (is `engine` running there? check --server / DROVER_URL)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var eb engine.ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return fmt.Errorf("drover node at %s: HTTP %d: %s", c.base, resp.StatusCode, bytes.TrimSpace(data))
		}
		return apiError(eb)
	}
	return json.Unmarshal(data, out)
}

func apiError(eb engine.ErrorBody) error {
	msg := eb.Error.Message
	switch eb.Error.Code {
	case engine.CodeCompileError:
		return &engine.CompileError{Errors: eb.Error.Errors, Script: scriptName(msg)}
	case engine.CodeUnknownRun:
		return wrap(engine.ErrUnknownRun, msg)
	case engine.CodeBadInput:
		return wrap(engine.ErrBadInput, msg)
	case engine.CodeShuttingDown:
		return wrap(engine.ErrClosed, msg)
	}
	return fmt.Errorf("%s", msg)
}

// remoteError keeps the server's message while matching a sentinel with errors.Is.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func wrap(sentinel error, msg string) error { return &remoteError{sentinel, msg} }

func scriptName(msg string) string {
	s := strings.TrimPrefix(msg, "script ")
	name, _, _ := strings.Cut(s, " ")
	return name
}
