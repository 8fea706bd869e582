package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/droverhq/drover/api"
)

// Deploy implements api.API.
func (c *Client) Deploy(ctx context.Context, req api.DeployRequest) (*api.Deployment, error) {
	var d api.Deployment
	return &d, c.do(ctx, http.MethodPost, "/v1/scripts/"+url.PathEscape(req.Script.Name), req, &d)
}

// Rollback implements api.API.
func (c *Client) Rollback(ctx context.Context, name string, version int, by string) (*api.Deployment, error) {
	var d api.Deployment
	return &d, c.do(ctx, http.MethodPost, "/v1/scripts/"+url.PathEscape(name)+"/rollback", api.RollbackRequest{Version: version, By: by}, &d)
}

// Scripts implements api.API.
func (c *Client) Scripts(ctx context.Context) ([]api.Deployment, error) {
	var out struct {
		Scripts []api.Deployment `json:"scripts"`
	}
	return out.Scripts, c.do(ctx, http.MethodGet, "/v1/scripts", nil, &out)
}

// History implements api.API.
func (c *Client) History(ctx context.Context, name string) ([]api.Deployment, error) {
	var out struct {
		History []api.Deployment `json:"history"`
	}
	return out.History, c.do(ctx, http.MethodGet, "/v1/scripts/"+url.PathEscape(name)+"/history", nil, &out)
}

// ScriptSource implements api.API.
func (c *Client) ScriptSource(ctx context.Context, name string) (*api.ScriptVersion, error) {
	var v api.ScriptVersion
	return &v, c.do(ctx, http.MethodGet, "/v1/scripts/"+url.PathEscape(name), nil, &v)
}

// ScriptVersion implements api.API.
func (c *Client) ScriptVersion(ctx context.Context, name string, version int) (*api.ScriptVersion, error) {
	var v api.ScriptVersion
	return &v, c.do(ctx, http.MethodGet, "/v1/scripts/"+url.PathEscape(name)+"/versions/"+strconv.Itoa(version), nil, &v)
}

// RunScript implements api.API.
func (c *Client) RunScript(ctx context.Context, id string) (*api.ScriptVersion, error) {
	var v api.ScriptVersion
	return &v, c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id)+"/script", nil, &v)
}

// ReplayCheck implements api.API.
func (c *Client) ReplayCheck(ctx context.Context, id string, script *api.Script) (*api.ReplayReport, error) {
	var rep api.ReplayReport
	return &rep, c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/replay", api.ReplayRequest{Script: script}, &rep)
}
