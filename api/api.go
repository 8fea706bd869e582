package api

import "context"

// API is what ctl and the control panel use: implemented in-process by
// engine.Node and over HTTP by api/client.Client.
type API interface {
	// Start begins a run and returns its record; the run goes on in the
	// background. A script that does not compile, input that is not JSON or
	// a bad attribute is refused before anything is journaled.
	Start(ctx context.Context, req StartRequest) (*Run, error)
	// Wait blocks until run id ends or is blocked, or ctx ends.
	Wait(ctx context.Context, id string) (*Run, error)
	// Get returns a run with its input, tags and steps.
	Get(ctx context.Context, id string) (*RunDetail, error)
	// List returns the runs matching f, newest first.
	List(ctx context.Context, f ListFilter) ([]Run, error)
	// Export returns a run as a self-contained, portable file.
	Export(ctx context.Context, id string) (*Export, error)
	// Cancel stops a run, journaling who cancelled it and why.
	Cancel(ctx context.Context, id, by, reason string) (*Run, error)
	// Resume adopts an unfinished run again, optionally on another version.
	Resume(ctx context.Context, id string, script *Script, by string) (*Run, error)
	// Pin keeps a run past retention.
	Pin(ctx context.Context, id string) (*Run, error)
	// RunScript returns the script version a run ran on, with its sources.
	RunScript(ctx context.Context, id string) (*ScriptVersion, error)
	// ReplayCheck replays a finished (or unfinished: its prefix) run against
	// script, or with none against the live version of its script, executing
	// nothing; a divergence is in the report, not an error.
	ReplayCheck(ctx context.Context, id string, script *Script) (*ReplayReport, error)
	// Nodes returns the live nodes with their latest meter readings.
	Nodes(ctx context.Context) ([]NodeInfo, error)
	// ClusterEvents returns the latest limit cluster events (joins, losses,
	// adoptions), newest first.
	ClusterEvents(ctx context.Context, limit int) ([]ClusterEvent, error)
	// Events calls fn with each journal entry of a run, then live ones,
	// until the run's end or fn returns false (GET /v1/runs/{id}/events).
	Events(ctx context.Context, id string, fn func(Event) bool) error
	// Logs calls fn with the run log lines q selects: those stored, then,
	// with q.Follow, live ones from every node, until ctx ends or fn
	// returns false (GET /v1/logs). A query that selects nothing sensible
	// is refused (ErrBadInput) before anything is read.
	Logs(ctx context.Context, q LogQuery, fn func(LogLine) bool) error

	// Deploy checks a script version and makes it the live version of its name.
	Deploy(ctx context.Context, req DeployRequest) (*Deployment, error)
	// Rollback makes an earlier version live again, as a new version.
	Rollback(ctx context.Context, name string, version int, by string) (*Deployment, error)
	// Scripts returns the live version of every deployed script.
	Scripts(ctx context.Context) ([]Deployment, error)
	// History returns every version of a deployed script, oldest first.
	History(ctx context.Context, name string) ([]Deployment, error)
	// ScriptSource returns the live version of a script with its sources.
	ScriptSource(ctx context.Context, name string) (*ScriptVersion, error)
	// ScriptVersion returns one version of a deployed script with its sources.
	ScriptVersion(ctx context.Context, name string, version int) (*ScriptVersion, error)
}

// CancelRequest is the body of POST /v1/runs/{id}/cancel.
type CancelRequest struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// ResumeRequest is the body of POST /v1/runs/{id}/resume.
type ResumeRequest struct {
	Script *Script `json:"script,omitempty"`
	// Version resumes the run on that deployed version of its script
	// (instead of Script).
	Version int    `json:"version,omitempty"`
	By      string `json:"by,omitempty"`
}
