package bus

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRunLogWriteOnceAndFence: with RunLog, an entry on a subject of its own
// is still written once (a retried write of the same entry is a duplicate,
// another entry is refused), and a fenced append is refused after another
// writer's.
func TestRunLogWriteOnceAndFence(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Options{Name: "t", DataDir: t.TempDir(), RunLog: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run := uniqueRun(t)
	subj := JournalSubject(run, "result", "1")
	if _, dup, err := b.AppendOnce(ctx, subj, run+"/r1", nil, []byte(`"a"`)); err != nil || dup {
		t.Fatalf("first write: dup %v, %v", dup, err)
	}
	if _, dup, err := b.AppendOnce(ctx, subj, run+"/r1-retry", nil, []byte(`"a"`)); err != nil || !dup {
		t.Fatalf("the same entry again: dup %v, %v; want a duplicate", dup, err)
	}
	if _, _, err := b.AppendOnce(ctx, subj, run+"/r1-other", nil, []byte(`"b"`)); !errors.Is(err, ErrExists) {
		t.Fatalf("another entry on the subject: %v, want ErrExists", err)
	}
	log := JournalSubject(run, "log", "")
	s1, err := b.AppendFenced(ctx, log, run+"/l1", 0, []byte(`1`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendFenced(ctx, log, run+"/l2", s1, []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendFenced(ctx, log, run+"/l3", s1, []byte(`3`)); !errors.Is(err, ErrConflict) {
		t.Fatalf("a fenced append behind the log: %v, want ErrConflict", err)
	}
	if last, err := b.LastSeq(ctx, log); err != nil || last <= s1 {
		t.Fatalf("last sequence of the log: %d, %v", last, err)
	}
	if msgs, err := b.Read(ctx, log); err != nil || len(msgs) != 2 {
		t.Fatalf("the log holds %d entries, %v; want 2", len(msgs), err)
	}
}

// TestRunLogsStay: a data dir whose journal was made with one message per
// subject gets run logs when opened with RunLog (its entries stay); once it
// has them, a bus opened without RunLog keeps them, and an update back to
// one message per subject, as a node of an earlier release would make it at
// start (which would truncate every run's log to its last entry), is refused
// with the log intact.
func TestRunLogsStay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	open := func(runLog bool) *Bus {
		t.Helper()
		b, err := Open(ctx, Options{Name: "t", DataDir: dir, RunLog: runLog})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open(false)
	run := uniqueRun(t)
	if _, err := b.Append(ctx, JournalSubject(run, "start", ""), run+"/start", nil, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = open(true)
	log := JournalSubject(run, "log", "")
	s1, err := b.AppendFenced(ctx, log, run+"/l1", 0, []byte(`1`))
	if err == nil {
		_, err = b.AppendFenced(ctx, log, run+"/l2", s1, []byte(`2`))
	}
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = open(false)
	defer b.Close()
	if !b.RunLog() {
		t.Fatal("a bus opened without RunLog on a journal with run logs does not use them")
	}
	old := b.writeOnceJournalConfig(0)
	if _, err := b.js.UpdateStream(ctx, old); err == nil || !strings.Contains(err.Error(), "TTL") {
		t.Fatalf("an update back to one message per subject: %v, want it refused", err)
	}
	msgs, err := b.Read(ctx, JournalFilter(run))
	if err != nil || len(msgs) != 3 {
		t.Fatalf("after the refused update the run holds %d messages (%v), want its start and a log of 2", len(msgs), err)
	}
}

// TestEnableRunLog: a cluster's journal gets run logs in place (every
// partition), while a node that has not switched yet still writes entries
// once; a bus opened after uses the logs.
func TestEnableRunLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Open(ctx, Options{Name: "a", DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	late, err := Open(ctx, Options{Name: "late", URL: a.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if a.RunLog() || late.RunLog() {
		t.Fatal("run logs before EnableRunLog")
	}
	run := uniqueRun(t)
	subj := JournalSubject(run, "result", "1")
	if _, _, err := late.AppendOnce(ctx, subj, run+"/r1", nil, []byte(`"a"`)); err != nil {
		t.Fatal(err)
	}
	if err := a.EnableRunLog(ctx); err != nil || !a.RunLog() {
		t.Fatalf("EnableRunLog: %v (run logs %v)", err, a.RunLog())
	}
	for p := range 2 {
		s, err := a.js.Stream(ctx, JournalStreamOf(p))
		if err != nil || s.CachedInfo().Config.MaxMsgsPerSubject != -1 || !s.CachedInfo().Config.AllowMsgTTL {
			t.Fatalf("partition %d after EnableRunLog: %v %+v", p, err, s.CachedInfo().Config)
		}
	}
	// late has not switched: its entries are still written once.
	if _, _, err := late.AppendOnce(ctx, subj, run+"/r1-other", nil, []byte(`"b"`)); !errors.Is(err, ErrExists) {
		t.Fatalf("a second entry from a node not switched yet: %v, want ErrExists", err)
	}
	if err := late.EnableRunLog(ctx); err != nil || !late.RunLog() {
		t.Fatalf("EnableRunLog again, on another node: %v", err)
	}
	after, err := Open(ctx, Options{Name: "after", URL: a.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.RunLog() {
		t.Fatal("a bus opened on a journal with run logs does not use them")
	}
	log := JournalSubject(run, "log", "")
	s1, err := after.AppendFenced(ctx, log, run+"/l1", 0, []byte(`1`))
	if err == nil {
		_, err = a.AppendFenced(ctx, log, run+"/l2", s1, []byte(`2`))
	}
	if err != nil {
		t.Fatal(err)
	}
}
