package engine

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/replay"
	"github.com/droverhq/drover/starlark/builtins"
	_ "github.com/droverhq/drover/starlark/builtins/all"
)

// untar extracts the gzipped tar archive at path into dir.
func untar(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(target), 0o755)
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A data dir written before journals were sealed (testdata/mkfixture) is
// upgraded on start: its ended runs are sealed, and read, export and replay
// exactly as they did; its parked run stays parked.
func TestUpgradeSealsOldDataDir(t *testing.T) {
	dir := t.TempDir()
	untar(t, "testdata/datadir-unsealed.tar.gz", dir)
	// The fixture's entries are older than the default retention allows
	// after a while: keep them.
	n := newTestNode(t, Options{Name: "old", DataDir: filepath.Join(dir, "data"), Registry: builtins.Default, JournalMaxAge: 100 * 365 * 24 * time.Hour})
	ctx := context.Background()
	files, _ := filepath.Glob(filepath.Join(dir, "exports", "*.json"))
	if len(files) != 3 {
		t.Fatalf("fixture exports: %v", files)
	}
	for _, f := range files {
		id := strings.TrimSuffix(filepath.Base(f), ".json")
		bustest.PollUntil(t, func() bool {
			subs, err := n.bus.JournalSubjects(ctx, bus.JournalFilter(id))
			return err == nil && len(subs) == 1 && strings.HasSuffix(subs[0], ".sealed.0")
		})
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var want api.Export
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		got, err := n.Export(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// Marshalled again, both are compact.
		gotJ, _ := json.Marshal([]any{got.Run.Status, got.Run.Result, got.Journal})
		wantJ, _ := json.Marshal([]any{want.Run.Status, want.Run.Result, want.Journal})
		if string(gotJ) != string(wantJ) {
			t.Fatalf("run %s (%s) after sealing:\n got %s\nwant %s", id, want.Run.Script, gotJ, wantJ)
		}
		if got.Run.Status == api.StatusCancelled {
			continue // a replay does not cancel: it runs the script on
		}
		rep, err := replay.Replay(ctx, got, replay.Options{Registry: builtins.Default})
		if err != nil || !rep.Matches {
			t.Fatalf("replay of %s after sealing: %+v %v", id, rep, err)
		}
	}
	list, err := n.List(ctx, api.ListFilter{})
	if err != nil || len(list) != 4 {
		t.Fatalf("runs after the upgrade: %d %v", len(list), err)
	}
	for _, r := range list {
		if r.Script == "parked" && r.WakeAt == nil && r.Status != api.StatusCompleted {
			t.Fatalf("the parked run: %+v", r)
		}
	}
}
