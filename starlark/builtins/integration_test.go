package builtins_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
)

type shopConfig struct {
	Addr     string
	Password string `secret:"true"`
	Pool     int
}

// shop is a test integration's instance: it records its lifecycle.
type shop struct {
	cfg                    shopConfig
	provisioned, closed    bool
	provisionErr, checkErr error
}

func (s *shop) Provision(context.Context) error { s.provisioned = true; return s.provisionErr }
func (s *shop) Check(context.Context) error     { return s.checkErr }
func (s *shop) Close() error                    { s.closed = true; return nil }

func defineShop(inst **shop, provisionErr, checkErr error) *builtins.Integration {
	in := builtins.Define("shop", "a test shop", shopConfig{Pool: 4}, func(_ context.Context, c shopConfig) (*shop, error) {
		if c.Addr == "bad" {
			return nil, fmt.Errorf("addr %q: want host:port", c.Addr)
		}
		*inst = &shop{cfg: c, provisionErr: provisionErr, checkErr: checkErr}
		return *inst, nil
	})
	in.Steps = []*builtins.Step{{Name: "shop.pool", Exec: func(_ context.Context, env builtins.Env, _ json.RawMessage) (any, error) {
		s, err := builtins.Use[*shop](env, "shop")
		if err != nil {
			return nil, err
		}
		return s.cfg.Pool, nil
	}}}
	return in
}

// TestIntegrationLifecycle: a node opens each integration from its
// configuration, provisions it, checks it, gives it to its steps through
// Use, shows its configuration with secrets redacted, and closes it.
func TestIntegrationLifecycle(t *testing.T) {
	var inst *shop
	r := builtins.NewRegistry()
	r.MustRegisterIntegration(defineShop(&inst, nil, nil))
	if _, err := r.Lookup("shop.pool"); err != nil {
		t.Fatal("the integration's step is not registered:", err)
	}
	cfg := r.Integrations()[0].NewConfig().(*shopConfig)
	cfg.Addr, cfg.Password = "db:5432", "hunter2-secret"
	o := builtins.OpenIntegrations(context.Background(), r, map[string]any{"shop": cfg})
	if inst == nil || !inst.provisioned || inst.cfg.Pool != 4 || inst.cfg.Password != "hunter2-secret" {
		t.Fatalf("instance: %+v", inst)
	}
	st := o.Check(context.Background())
	if len(st) != 1 || st[0].State != builtins.StateOK || st[0].Config["password"] != builtins.Redacted || st[0].Config["addr"] != "db:5432" || st[0].Config["pool"] != 4 {
		t.Fatalf("status: %+v", st)
	}
	env := &builtins.NodeEnv{Name: "n1", Opened: o}
	v, err := r.Integrations()[0].Steps[0].Exec(context.Background(), env, nil)
	if err != nil || v != 4 {
		t.Fatalf("step through Use: %v %v", v, err)
	}
	if err := o.Close(); err != nil || !inst.closed {
		t.Fatalf("close: %v, closed %v", err, inst.closed)
	}
}

// TestIntegrationFailures: an integration that cannot open, provision or
// pass its check is failing, with a message naming it and no secret in it;
// one with nothing to connect to is unconfigured. The others still open.
func TestIntegrationFailures(t *testing.T) {
	const secret = "pw-0f7a9c"
	for _, c := range []struct {
		name               string
		addr               string
		provision, check   error
		state, wantMessage string
	}{
		{"open", "bad", nil, nil, builtins.StateFailing, `integration shop: open: addr "bad": want host:port`},
		{"provision", "db:1", errors.New("dial db:1 as user:" + secret + ": connection refused"), nil, builtins.StateFailing, "integration shop: provision: dial db:1 as user:[redacted]: connection refused"},
		{"check", "db:1", nil, errors.New("ping db:1 with " + secret + ": timeout"), builtins.StateFailing, "integration shop: check: ping db:1 with [redacted]: timeout"},
		{"unconfigured", "", nil, fmt.Errorf("no addr: %w", builtins.ErrNotConfigured), builtins.StateUnconfigured, "no addr: not configured"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var inst *shop
			r := builtins.NewRegistry()
			r.MustRegisterIntegration(defineShop(&inst, c.provision, c.check))
			r.MustRegisterIntegration(builtins.Define("other", "", struct{}{}, func(context.Context, struct{}) (string, error) { return "up", nil }))
			cfg := r.Integrations()[1].NewConfig().(*shopConfig)
			cfg.Addr, cfg.Password = c.addr, secret
			o := builtins.OpenIntegrations(context.Background(), r, map[string]any{"shop": cfg})
			st := o.Statuses()
			if c.name != "provision" {
				st = o.Check(context.Background())
			}
			if st[1].Name != "shop" || st[1].State != c.state || st[1].Error != c.wantMessage {
				t.Fatalf("shop: %+v, want %s %q", st[1], c.state, c.wantMessage)
			}
			if c.name == "provision" { // the service is up by the next check: back to ok
				if st := o.Check(context.Background()); st[1].State != builtins.StateOK {
					t.Fatalf("after a passing check: %+v", st[1])
				}
			}
			if st[0].Name != "other" || st[0].State != builtins.StateOK || o.Get("other") != "up" {
				t.Fatalf("other: %+v", st[0])
			}
			if c.name == "open" && o.Get("shop") != nil {
				t.Fatal("an integration that could not be opened has an instance")
			}
			if c.name == "provision" && o.Get("shop") == nil {
				t.Fatal("an integration that could not be provisioned lost its instance: it could never come back")
			}
			if _, err := builtins.Use[*shop](&builtins.NodeEnv{Name: "n1", Opened: o}, "nope"); err == nil || !strings.Contains(err.Error(), "integration nope is not open on node n1") {
				t.Fatalf("Use of an unknown integration: %v", err)
			}
		})
	}
}

func TestUseErrors(t *testing.T) {
	env := builtinstest.NewEnv()
	env.Integrations = map[string]any{"shop": "not a shop"}
	if _, err := builtins.Use[*shop](env, "shop"); err == nil || !strings.Contains(err.Error(), "its instance is a string") {
		t.Fatalf("wrong type: %v", err)
	}
	if s, err := builtins.Use[string](env, "shop"); err != nil || s != "not a shop" {
		t.Fatalf("Use from the test kit's Env: %q %v", s, err)
	}
}

func TestRegisterIntegrationTwicePanics(t *testing.T) {
	var inst *shop
	r := builtins.NewRegistry()
	r.MustRegisterIntegration(defineShop(&inst, nil, nil))
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), `integration "shop" registered twice`) {
			t.Fatalf("panic: %v", p)
		}
	}()
	r.MustRegisterIntegration(defineShop(&inst, nil, nil))
}

func TestRedact(t *testing.T) {
	builtins.Secret("abc") // too short to redact
	builtins.Secret("tok-123456")
	if got := builtins.Redact("abc: Bearer tok-123456, again tok-123456"); got != "abc: Bearer [redacted], again [redacted]" {
		t.Fatalf("redact: %q", got)
	}
}

// TestSecretsOfEveryShape: secret fields that are lists, maps or pointers of
// strings are recorded too, and a secret's URL-escaped form is redacted.
func TestSecretsOfEveryShape(t *testing.T) {
	tok := "ptr-secret-1"
	cfg := struct {
		Keys    []string          `secret:"true"`
		Headers map[string]string `secret:"true"`
		Token   *string           `secret:"true"`
		Plain   string
	}{Keys: []string{"list-secret-1"}, Headers: map[string]string{"x": "map-secret-1"}, Token: &tok, Plain: "not secret"}
	got := builtins.SecretsOf(&cfg)
	if strings.Join(got, ",") != "list-secret-1,map-secret-1,ptr-secret-1" {
		t.Fatalf("secrets: %v", got)
	}
	builtins.Secret("p@ss w/rd!")
	if got := builtins.Redact("amqp://u:p%40ss+w%2Frd%21@h/ and p@ss%20w%2Frd%21"); strings.Contains(got, "ss") {
		t.Fatalf("escaped forms: %q", got)
	}
}
