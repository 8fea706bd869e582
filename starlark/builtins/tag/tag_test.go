package tag_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/tag"
)

func TestTag(t *testing.T) {
	rt := builtinstest.NewRuntime()
	globals, err := rt.Run(builtinstest.NewRegistry(tag.Register), `got = tag(customer="acme", attempt=3, vip=True)
tag(region="eu")`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := globals["got"].String(); got != "None" {
		t.Fatalf("tag returned %s", got)
	}
	want := map[string]string{"customer": "acme", "attempt": "3", "vip": "true", "region": "eu"}
	if got := rt.Tags(); !reflect.DeepEqual(got, want) {
		t.Errorf("tags = %v, want %v", got, want)
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
		{"tag empty", `tag()`, `tag: want at least one attribute, e.g. tag(customer="acme")`},
		{"tag positional", `tag("x")`, `tag: got 1 positional arguments, want keyword arguments only, e.g. tag(customer="acme")`},
		{"tag float", `tag(x=1.5)`, `tag: for attribute x: got float, want string, int or bool`},
		{"tag none", `tag(x=None)`, `tag: for attribute x: got NoneType, want string, int or bool`},
		{"tag name", `tag(**{"bad-name": "v"})`, `tag: attribute name bad-name is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)`},
		{"tag name digit", `tag(**{"1x": "v"})`, `tag: attribute name 1x is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)`},
		{"tag long name", `tag(**{"a" * 65: "v"})`, `tag: attribute name ` + strings.Repeat("a", 65) + ` is 65 bytes long, over the limit of 64`},
		{"tag long value", `tag(x="v" * 257)`, `tag: for attribute x: the value is 257 bytes long, over the limit of 256`},
	}
	r := builtinstest.NewRegistry(tag.Register)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { builtinstest.CheckBadCall(t, r, tt.src, tt.wantErr) })
	}
}
