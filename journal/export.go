package journal

import (
	"encoding/json"
	"fmt"

	"github.com/droverhq/drover/api"
)

// ParseExport reads a portable run file, checking its format and integrity:
// the journal parses and the script is the run's version. Every error wraps
// api.ErrBadInput.
func ParseExport(data []byte) (*api.Export, error) {
	var probe struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: not a Drover run file (truncated or corrupted JSON: %v)", api.ErrBadInput, err)
	}
	if probe.Format != api.ExportFormat {
		if probe.Format == "" {
			return nil, fmt.Errorf("%w: not a Drover run file (no \"format\" field; want %q)", api.ErrBadInput, api.ExportFormat)
		}
		return nil, fmt.Errorf("%w: run file format %q is not supported by this version (it reads %q); use a matching ctl", api.ErrBadInput, probe.Format, api.ExportFormat)
	}
	var e api.Export
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: run file is corrupted: %v", api.ErrBadInput, err)
	}
	if _, err := Parse(e.Journal); err != nil {
		return nil, fmt.Errorf("%w: run file %s: %v", api.ErrBadInput, e.Run.ID, err)
	}
	if e.Script.Hash() != e.Run.Hash {
		return nil, fmt.Errorf("%w: run file %s: its script does not match the run's version hash (edited or corrupted)", api.ErrBadInput, e.Run.ID)
	}
	return &e, nil
}
