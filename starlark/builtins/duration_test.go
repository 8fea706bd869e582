package builtins

import (
	"strings"
	"testing"
	"time"

	libtime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

func TestDurationUnpack(t *testing.T) {
	tests := []struct {
		name    string
		in      starlark.Value
		want    time.Duration
		wantErr string
	}{
		{name: "millis", in: starlark.String("250ms"), want: 250 * time.Millisecond},
		{name: "seconds", in: starlark.String("2s"), want: 2 * time.Second},
		{name: "minutes", in: starlark.String("10m"), want: 10 * time.Minute},
		{name: "compound", in: starlark.String("1h30m"), want: 90 * time.Minute},
		{name: "zero", in: starlark.String("0s"), want: 0},
		{name: "lib time duration", in: libtime.Duration(3 * time.Second), want: 3 * time.Second},
		{name: "garbage", in: starlark.String("2x"), wantErr: `"2x" is not a duration (want e.g. "250ms", "2s", "10m")`},
		{name: "bare number", in: starlark.String("5"), wantErr: `"5" is not a duration`},
		{name: "empty", in: starlark.String(""), wantErr: `"" is not a duration`},
		{name: "negative", in: starlark.String("-1s"), wantErr: `"-1s" is negative`},
		{name: "negative lib duration", in: libtime.Duration(-time.Second), wantErr: `-1s is negative`},
		{name: "int", in: starlark.MakeInt(5), wantErr: "got int, want string"},
		{name: "none", in: starlark.None, wantErr: "got NoneType, want string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := d.Unpack(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unpack(%s) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unpack(%s): %v", tt.in, err)
			}
			if d.Std() != tt.want {
				t.Fatalf("Unpack(%s) = %v, want %v", tt.in, d.Std(), tt.want)
			}
		})
	}
}

func TestDurationInUnpackArgs(t *testing.T) {
	bad := starlark.String("2x")
	tests := []struct {
		name    string
		args    starlark.Tuple
		kwargs  []starlark.Tuple
		wantErr string
	}{
		{"positional", starlark.Tuple{bad}, nil, `http.get: for parameter timeout: "2x" is not a duration (want e.g. "250ms", "2s", "10m")`},
		{"keyword", nil, []starlark.Tuple{{starlark.String("timeout"), bad}}, `http.get: for parameter timeout: "2x" is not a duration (want e.g. "250ms", "2s", "10m")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := Duration(30 * time.Second)
			err := UnpackArgs("http.get", tt.args, tt.kwargs, "timeout?", &timeout)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error = %v, want %s", err, tt.wantErr)
			}
			if timeout.String() != "30s" {
				t.Fatalf("default changed to %s after a failed unpack", timeout)
			}
		})
	}
}
