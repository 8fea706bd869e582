package bus

import (
	"context"
	"errors"
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
