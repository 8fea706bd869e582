package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestFormatVersion(t *testing.T) {
	setting := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"release", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
			Settings: setting("vcs", "git", "vcs.revision", "f80dacd0c1e2", "vcs.time", "2026-11-30T10:00:00Z", "vcs.modified", "false")},
			"v1.2.3, revision f80dacd0c1e2, committed 2026-11-30T10:00:00Z, built with go1.26.8"},
		{"modified tree", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: setting("vcs.revision", "f80dacd0c1e2", "vcs.time", "2026-11-30T10:00:00Z", "vcs.modified", "true")},
			"devel, revision f80dacd0c1e2 (modified), committed 2026-11-30T10:00:00Z, built with go1.26.8"},
		{"no vcs stamp", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "devel, built with go1.26.8"},
		{"no build info", nil, "unknown (no build information), built with " + runtime.Version()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatVersion(tt.bi); got != tt.want {
				t.Fatalf("formatVersion = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestErrorPrintedOnce checks that a command's error is printed once, with
// the command's name once, even when the error already starts with it as the
// engine package's errors do.
func TestErrorPrintedOnce(t *testing.T) {
	for _, msg := range []string{"boom", "engine: boom", "engine: engine: boom"} {
		root := &cobra.Command{Use: "engine", RunE: func(*cobra.Command, []string) error { return failure(errors.New(msg)) }}
		var stdout, stderr bytes.Buffer
		code := execute(context.Background(), root, nil, strings.NewReader(""), &stdout, &stderr)
		if code != ExitFailure || stderr.String() != "engine: boom\n" || stdout.Len() != 0 {
			t.Errorf("error %q: exit %d, stderr %q", msg, code, stderr.String())
		}
	}
}

// TestEnvironmentDocumented checks that docs/cli.md#environment, the table
// both commands' docs share, lists every variable the commands' help lists,
// and that each command's help lists the ones it reads.
func TestEnvironmentDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "\n## Environment\n")
	if !ok {
		t.Fatal("docs/cli.md has no Environment section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	for _, v := range environment {
		users := map[bool]string{true: "ctl", false: ""}[v.ctl]
		if v.engine {
			users = strings.TrimPrefix(users+", engine", ", ")
		}
		if row := "| `" + v.name + "` | " + users + " |"; !strings.Contains(table, row) {
			t.Errorf("the Environment table of docs/cli.md lacks a row starting %q", row)
		}
		if strings.Contains(environmentHelp(true), v.name) != v.engine || strings.Contains(environmentHelp(false), v.name) != v.ctl {
			t.Errorf("%s: the help of ctl or engine lists it wrongly", v.name)
		}
	}
}
