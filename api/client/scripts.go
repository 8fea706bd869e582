package client

import (
	"context"
	"net/http"
	"net/url"

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
