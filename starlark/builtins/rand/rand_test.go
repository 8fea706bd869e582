package rand_test

import (
	"regexp"
	"testing"

	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/rand"
	"go.starlark.net/starlark"
)

func TestRandInt(t *testing.T) {
	rt := builtinstest.NewRuntime()
	globals, err := rt.Run(builtinstest.NewRegistry(rand.Register), `
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
	calls := rt.Calls()
	if len(calls) != 202 {
		t.Fatalf("got %d steps, want 202", len(calls))
	}
	if c := calls[201]; c.Name != "rand.int" || !c.Local || c.Args != `{"n":10000000000000000000000}` {
		t.Errorf("last call = %+v, want Local rand.int with the exact big n", c)
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestUUID(t *testing.T) {
	rt := builtinstest.NewRuntime()
	globals, err := rt.Run(builtinstest.NewRegistry(rand.Register), `got = [uuid() for _ in range(20)]`, nil)
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
	for _, c := range rt.Calls() {
		if c.Name != "uuid" || !c.Local {
			t.Errorf("call %+v, want Local uuid", c)
		}
	}
}

// TestBadArguments checks that every bad call fails the script, before any step
// runs, with a message that names the builtin and the argument.
func TestBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{"rand.int zero", `rand.int(0)`, `rand.int: for parameter n: got 0, want an int > 0`},
		{"rand.int negative", `rand.int(n=-3)`, `rand.int: for parameter n: got -3, want an int > 0`},
		{"rand.int type", `rand.int("5")`, `rand.int: for parameter n: got string, want int`},
		{"rand.int missing", `rand.int()`, `rand.int: missing argument for n`},
		{"uuid args", `uuid(1)`, `uuid: got 1 arguments, want at most 0`},
	}
	r := builtinstest.NewRegistry(rand.Register)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { builtinstest.CheckBadCall(t, r, tt.src, tt.wantErr) })
	}
}
