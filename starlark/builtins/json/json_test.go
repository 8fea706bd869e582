package json_test

import (
	"testing"

	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/json"
)

func TestJSON(t *testing.T) {
	r := builtinstest.NewRegistry(json.Register)
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"encode sorts keys", `json.encode({"b": 1, "a": {"d": [1, 2.5], "c": None}})`, `"{\"a\":{\"c\":null,\"d\":[1,2.5]},\"b\":1}"`},
		{"decode", `json.decode('{"x": [1, true, null]}')`, `{"x": [1, True, None]}`},
		{"decode default", `json.decode("nope", None)`, `None`},
		{"indent", `json.indent('{"a":1}', indent=" ")`, `"{\n \"a\": 1\n}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := builtinstest.NewRuntime().Eval(r, tt.src, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
