package bus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
)

// KeepValue stores a value again only when it was stored longer ago than
// the refresh period, so that it outlives entries written now; a value that
// is gone is ErrNotFound.
func TestKeepValue(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	ctx := context.Background()
	data := []byte(`"a large value"`)
	if err := b.PutValue(ctx, "sha256-test", data); err != nil {
		t.Fatal(err)
	}
	first, err := b.ValueStored(ctx, "sha256-test")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.KeepValue(ctx, "sha256-test"); err != nil {
		t.Fatal(err)
	}
	if again, _ := b.ValueStored(ctx, "sha256-test"); !again.Equal(first) {
		t.Fatalf("a fresh value was stored again (%s, then %s)", first, again)
	}
	defer bus.SetValueRefresh(0)()
	if err := b.KeepValue(ctx, "sha256-test"); err != nil {
		t.Fatal(err)
	}
	if again, _ := b.ValueStored(ctx, "sha256-test"); !again.After(first) {
		t.Fatalf("an old value was not stored again (%s, then %s)", first, again)
	}
	if got, err := b.GetValue(ctx, "sha256-test"); err != nil || string(got) != string(data) {
		t.Fatalf("after keeping: %s %v", got, err)
	}
	if err := b.KeepValue(ctx, "sha256-gone"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("a value that is gone: %v, want ErrNotFound", err)
	}
}
