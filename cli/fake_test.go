package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/droverhq/drover/api"
)

// fakeNode is an api.API whose answers a test sets. A method the test
// leaves nil fails the test when a command calls it.
type fakeNode struct {
	api.API
	t *testing.T

	cancel   func(id, by, reason string) (*api.Run, error)
	resume   func(id string, script *api.Script) (*api.Run, error)
	wait     func(ctx context.Context, id string) (*api.Run, error)
	get      func(id string) (*api.RunDetail, error)
	pin      func(id string) (*api.Run, error)
	start    func(req api.StartRequest) (*api.Run, error)
	rollback func(name string, version int) (*api.Deployment, error)
}

func (f *fakeNode) unexpected(method string) {
	f.t.Helper()
	f.t.Fatalf("the command called %s, which the test does not expect", method)
}

func (f *fakeNode) Cancel(_ context.Context, id, by, reason string) (*api.Run, error) {
	if f.cancel == nil {
		f.unexpected("Cancel")
	}
	return f.cancel(id, by, reason)
}

func (f *fakeNode) Resume(_ context.Context, id string, script *api.Script, _ string) (*api.Run, error) {
	if f.resume == nil {
		f.unexpected("Resume")
	}
	return f.resume(id, script)
}

func (f *fakeNode) Wait(ctx context.Context, id string) (*api.Run, error) {
	if f.wait == nil {
		f.unexpected("Wait")
	}
	return f.wait(ctx, id)
}

func (f *fakeNode) Get(_ context.Context, id string) (*api.RunDetail, error) {
	if f.get == nil {
		f.unexpected("Get")
	}
	return f.get(id)
}

func (f *fakeNode) Pin(_ context.Context, id string) (*api.Run, error) {
	if f.pin == nil {
		f.unexpected("Pin")
	}
	return f.pin(id)
}

func (f *fakeNode) Start(_ context.Context, req api.StartRequest) (*api.Run, error) {
	if f.start == nil {
		f.unexpected("Start")
	}
	return f.start(req)
}

func (f *fakeNode) Rollback(_ context.Context, name string, version int, _ string) (*api.Deployment, error) {
	if f.rollback == nil {
		f.unexpected("Rollback")
	}
	return f.rollback(name, version)
}

// invocation is one run of ctl against a fake node.
type invocation struct {
	code           int
	stdout, stderr string
}

func (r invocation) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// ctlOn runs ctl with args against node, as an embedded node or a server.
func ctlOn(t *testing.T, node api.API, embedded bool, args ...string) invocation {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
		dial: func(context.Context, nodeMode) (*conn, error) {
			return &conn{API: node, embedded: embedded, close: func() {}}, nil
		}}
	code := run(context.Background(), args, a)
	return invocation{code, out.String(), errb.String()}
}
