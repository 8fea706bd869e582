package stdlib

import (
	"regexp"
	"testing"

	"go.starlark.net/starlark"
)

func TestRandInt(t *testing.T) {
	rt := newFake(t)
	globals, err := rt.run(t, `
small = [rand.int(3) for _ in range(200)]
one = rand.int(1)
big = rand.int(10 * 1000 * 1000 * 1000 * 1000 * 1000 * 1000 * 1000)
got = (sorted({x: 1 for x in small}.keys()), one, type(big), 0 <= big and big < 10 * 1000 * 1000 * 1000 * 1000 * 1000 * 1000 * 1000)
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 200 draws from 3 values miss one with probability about 3·(2/3)^200.
	if got, want := globals["got"].String(), `([0, 1, 2], 0, "int", True)`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	calls := rt.stepCalls()
	if len(calls) != 202 {
		t.Fatalf("got %d steps, want 202", len(calls))
	}
	if c := calls[201]; c.name != "rand.int" || !c.local || c.args != `{"n":10000000000000000000000}` {
		t.Errorf("last call = %+v, want Local rand.int with the exact big n", c)
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestUUID(t *testing.T) {
	rt := newFake(t)
	globals, err := rt.run(t, `got = [uuid() for _ in range(20)]`, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	list := globals["got"].(*starlark.List)
	for i := 0; i < list.Len(); i++ {
		s, ok := starlark.AsString(list.Index(i))
		if !ok || !uuidV4.MatchString(s) {
			t.Errorf("uuid() = %s, not a UUID v4", list.Index(i))
		}
		if seen[s] {
			t.Errorf("uuid() repeated %s", s)
		}
		seen[s] = true
	}
	for _, c := range rt.stepCalls() {
		if c.name != "uuid" || !c.local {
			t.Errorf("call %+v, want Local uuid", c)
		}
	}
}
