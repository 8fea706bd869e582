package script

import (
	"encoding/json"
	"fmt"

	"github.com/droverhq/drover/api"
)

// StepFailure is the error a script sees (and fails with) when a step cannot
// produce a value: retries exhausted, payload too large, cancelled. The run's
// error then has the step's code.
type StepFailure struct {
	Builtin  string
	Step     string
	Code     string
	Message  string
	Attempts int
}

// Error implements error.
func (e *StepFailure) Error() string {
	if e.Attempts > 1 {
		return fmt.Sprintf("%s (step %s) failed after %d attempts: %s", e.Builtin, e.Step, e.Attempts, e.Message)
	}
	return fmt.Sprintf("%s (step %s) failed: %s", e.Builtin, e.Step, e.Message)
}

// Outcome returns what a step call gives the script for a journaled result:
// its value, or a *StepFailure with its error.
func Outcome(builtin string, res *api.ResultEntry) (json.RawMessage, error) {
	if res.Error != nil {
		return nil, &StepFailure{Builtin: builtin, Step: res.Step, Code: res.Error.Code, Message: res.Error.Message, Attempts: res.Attempts}
	}
	return res.Value, nil
}
