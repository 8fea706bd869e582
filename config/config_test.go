package config

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
)

type server struct {
	Addr    string
	Timeout time.Duration
}

type greetConfig struct {
	Greeting string
	Token    string `secret:"true"`
	Port     int
	Servers  map[string]server
	Tags     []string `yaml:"tag_list"`
}

func registry() *builtins.Registry {
	r := builtins.NewRegistry()
	r.MustRegisterIntegration(builtins.Define("greet", "greets", greetConfig{Greeting: "hello", Port: 7}, func(_ context.Context, c greetConfig) (greetConfig, error) { return c, nil }))
	r.MustRegisterIntegration(builtins.Define("plain", "no settings", struct{}{}, func(context.Context, struct{}) (int, error) { return 1, nil }))
	return r
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParse(t *testing.T) {
	src := `
integrations:
  greet:
    token: ${TOKEN}
    port: ${PORT}
    servers:
      a: {addr: "${HOST}:1", timeout: 3s}
    tag_list: [x, "$${literal}"]
  plain:
`
	node, err := Parse("drover.yaml", []byte(src), registry(), env(map[string]string{"TOKEN": "s3cret-token", "PORT": "5432", "HOST": "db"}))
	if err != nil {
		t.Fatal(err)
	}
	configs := node.Integrations
	g := configs["greet"].(*greetConfig)
	if g.Greeting != "hello" || g.Token != "s3cret-token" || g.Port != 5432 || g.Servers["a"].Addr != "db:1" || g.Servers["a"].Timeout != 3*time.Second || strings.Join(g.Tags, ",") != "x,${literal}" {
		t.Fatalf("greet config: %+v", g)
	}
	if _, ok := configs["plain"].(*struct{}); !ok {
		t.Fatalf("plain config: %#v", configs["plain"])
	}
	if node, err := Parse("empty.yaml", nil, registry(), env(nil)); err != nil || len(node.Integrations) != 0 {
		t.Fatalf("empty file: %v %v", node, err)
	}
}

// TestParseErrors: each mistake is reported with the file, the line and
// what to do, before anything is opened.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"unset variable", "integrations:\n  greet:\n    token: ${NOPE}\n", `drover.yaml:3: ${NOPE} is not set in the environment`},
		{"unclosed", "integrations:\n  greet:\n    token: ${NOPE\n", `drover.yaml:3: "${NOPE": ${ without its }`},
		{"unknown integration", "integrations:\n  sqll:\n    dsn: x\n", `drover.yaml:2: integration "sqll" is not in this engine build (it has: greet, plain)`},
		{"unknown setting", "integrations:\n  greet:\n    greting: hi\n", `drover.yaml:3: integrations.greet has no setting "greting" (it has: greeting, port, servers, tag_list, token)`},
		{"nested unknown", "integrations:\n  greet:\n    servers:\n      a: {adr: x}\n", `drover.yaml:4: integrations.greet.servers.a has no setting "adr"`},
		{"unknown top level", "integration:\n  greet: {}\n", `drover.yaml:1: the file has no setting "integration" (it has: `},
		{"breaker setting", "breakers:\n  default: {failure: 3}\n", `drover.yaml:2: breakers.default has no setting "failure" (it has: cooldown, failures)`},
		{"wrong type", "integrations:\n  greet:\n    port: many\n", "cannot unmarshal !!str `many` into int"},
		{"not yaml", "integrations: [\n", "drover.yaml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("drover.yaml", []byte(c.src), registry(), env(nil))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load("/nonexistent/drover.yaml", registry(), env(nil)); err == nil || !strings.Contains(err.Error(), "/nonexistent/drover.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestParseIntegrationsNotAMapping(t *testing.T) {
	if _, err := Parse("drover.yaml", []byte("integrations: [greet]\n"), registry(), env(nil)); err == nil || !strings.Contains(err.Error(), "drover.yaml:1: integrations: want a mapping") {
		t.Fatalf("integrations as a list: %v", err)
	}
}

func TestParseBreakers(t *testing.T) {
	src := "breakers:\n  default: {failures: 3, cooldown: 30s}\n  targets:\n    \"http api.example.com\": {failures: 1}\n"
	node, err := Parse("drover.yaml", []byte(src), registry(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	b := node.Breakers
	if b.Default.Failures != 3 || b.Default.Cooldown != 30*time.Second || b.Targets["http api.example.com"].Failures != 1 {
		t.Fatalf("breakers: %+v", b)
	}
}

// TestApplyEnv: DROVER_<INTEGRATION>_<SETTING> sets top-level settings, over
// the file's; a bad value names the variable (a secret's value redacted); a
// nested setting is the file's alone.
func TestApplyEnv(t *testing.T) {
	node, err := Parse("drover.yaml", []byte("integrations:\n  greet:\n    greeting: hi\n    port: 1\n"), registry(), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	used, err := ApplyEnv(node, registry(), env(map[string]string{"DROVER_GREET_PORT": "8080", "DROVER_GREET_TOKEN": "tok", "DROVER_GREET_TAG_LIST": "a, b,"}))
	if err != nil {
		t.Fatal(err)
	}
	g := node.Integrations["greet"].(*greetConfig)
	if g.Greeting != "hi" || g.Port != 8080 || g.Token != "tok" || strings.Join(g.Tags, "|") != "a|b" || len(used) != 3 {
		t.Fatalf("greet: %+v, used %v", g, used)
	}
	// Without a file, the environment alone configures.
	node = &Node{}
	if _, err := ApplyEnv(node, registry(), env(map[string]string{"DROVER_GREET_GREETING": "yo"})); err != nil || node.Integrations["greet"].(*greetConfig).Greeting != "yo" || node.Integrations["greet"].(*greetConfig).Port != 7 {
		t.Fatalf("from the environment alone: %+v %v", node.Integrations["greet"], err)
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DROVER_GREET_PORT": "many"}, `DROVER_GREET_PORT="many": want a whole number`},
		{map[string]string{"DROVER_GREET_SERVERS": "x"}, "DROVER_GREET_SERVERS=\"x\": this setting is set in the configuration file only"},
	} {
		if _, err := ApplyEnv(&Node{}, registry(), env(c.env)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.env, err, c.want)
		}
	}
}

// TestExpandedNullIsAString: a variable whose value YAML would read as null
// sets the setting to that text, not to nothing.
func TestExpandedNullIsAString(t *testing.T) {
	node, err := Parse("drover.yaml", []byte("integrations:\n  greet:\n    greeting: ${G}\n    token: ${T}\n"), registry(), env(map[string]string{"G": "null", "T": "~"}))
	if err != nil {
		t.Fatal(err)
	}
	if g := node.Integrations["greet"].(*greetConfig); g.Greeting != "null" || g.Token != "~" {
		t.Fatalf("greet: %+v", g)
	}
}

// TestInlineSettings: the settings of an inlined struct are the
// integration's own.
func TestInlineSettings(t *testing.T) {
	type base struct {
		Addr string
	}
	type cfg struct {
		Base base `yaml:",inline"`
		Pool int
	}
	r := builtins.NewRegistry()
	r.MustRegisterIntegration(builtins.Define("x", "", cfg{}, func(_ context.Context, c cfg) (cfg, error) { return c, nil }))
	node, err := Parse("drover.yaml", []byte("integrations:\n  x:\n    addr: h:1\n    pool: 2\n"), r, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c := node.Integrations["x"].(*cfg); c.Base.Addr != "h:1" || c.Pool != 2 {
		t.Fatalf("x: %+v", c)
	}
}
