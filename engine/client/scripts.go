package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/droverhq/drover/engine"
)

// Deploy implements engine.API.
func (c *Client) Deploy(ctx context.Context, req engine.DeployRequest) (*engine.Deployment, error) {
	var d engine.Deployment
	return &d, c.do(ctx, http.MethodPost, "/v1/scripts/"+url.PathEscape(req.Script.Name), req, &d)
}

// Rollback implements engine.API.
func (c *Client) Rollback(ctx context.Context, name string, version int, by string) (*engine.Deployment, error) {
	var d engine.Deployment
	return &d, c.do(ctx, http.MethodPost, "/v1/scripts/"+url.PathEscape(name)+"/rollback", engine.RollbackRequest{Version: version, By: by}, &d)
}

// Scripts implements engine.API.
func (c *Client) Scripts(ctx context.Context) ([]engine.Deployment, error) {
	var out struct {
		Scripts []engine.Deployment `json:"scripts"`
	}
	return out.Scripts, c.do(ctx, http.MethodGet, "/v1/scripts", nil, &out)
}

// History implements engine.API.
func (c *Client) History(ctx context.Context, name string) ([]engine.Deployment, error) {
	var out struct {
		History []engine.Deployment `json:"history"`
	}
	return out.History, c.do(ctx, http.MethodGet, "/v1/scripts/"+url.PathEscape(name)+"/history", nil, &out)
}

// ScriptSource implements engine.API.
func (c *Client) ScriptSource(ctx context.Context, name string) (*engine.ScriptVersion, error) {
	var v engine.ScriptVersion
	return &v, c.do(ctx, http.MethodGet, "/v1/scripts/"+url.PathEscape(name), nil, &v)
}
