package api

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Deployment is one version of a deployed script.
type Deployment struct {
	Name    string    `json:"name"`
	Version int       `json:"version"` // 1, 2, ... per name
	Hash    string    `json:"hash"`    // content hash of the bundle (Script.Hash)
	Main    string    `json:"main"`
	Files   []string  `json:"files"` // file names of the bundle, sorted
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at"`
	// Note says how the version came about, e.g. "rollback to version 3".
	Note string `json:"note,omitempty"`
	// Replayed is how many past runs were replayed against it before the
	// deploy (DeployRequest.CheckReplay).
	Replayed int `json:"replayed,omitempty"`
}

// DeployRequest is the body of POST /v1/scripts/{name}.
type DeployRequest struct {
	Script Script `json:"script"` // the bundle; its Name is set from the URL
	By     string `json:"by,omitempty"`
	// CheckReplay replays the latest CheckReplay finished runs of the name
	// against the new version and refuses the deploy if any diverges.
	CheckReplay int `json:"check_replay,omitempty"`
}

// RollbackRequest is the body of POST /v1/scripts/{name}/rollback.
type RollbackRequest struct {
	Version int    `json:"version,omitempty"` // 0: the version live before the current one
	By      string `json:"by,omitempty"`
}

// ScriptVersion is a deployment with its sources (GET /v1/scripts/{name}).
type ScriptVersion struct {
	Deployment
	Sources map[string]string `json:"sources"`
}

// ReplayCheckError refuses a deploy whose new version no longer replays some
// of the name's past runs.
type ReplayCheckError struct {
	Name      string
	Checked   int
	Divergent []DivergentRun
}

// DivergentRun is one run that the new version does not replay.
type DivergentRun struct {
	Run   string `json:"run"`
	Error string `json:"error"`
}

// Unwrap returns ErrReplayDiverged.
func (e *ReplayCheckError) Unwrap() error { return ErrReplayDiverged }

// Error implements error.
func (e *ReplayCheckError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "deploy of %s refused: %d of the %d runs replayed diverge from the new version (the live version is unchanged)", e.Name, len(e.Divergent), e.Checked)
	for _, d := range e.Divergent {
		fmt.Fprintf(&b, "\n  run %s: %s", d.Run, strings.ReplaceAll(d.Error, "\n", "\n    "))
	}
	return b.String()
}

var scriptNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// CheckScriptName refuses (ErrBadInput) a deployed script's name that is not
// 1 to 64 letters, digits, '-' or '_'.
func CheckScriptName(name string) error {
	if !scriptNameRE.MatchString(name) {
		return fmt.Errorf("%w: script name %q: use 1 to 64 letters, digits, '-' or '_' (e.g. checkout)", ErrBadInput, name)
	}
	return nil
}
