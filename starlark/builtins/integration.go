package builtins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"

	"go.starlark.net/starlark"
)

// An Integration connects scripts to an outside service (a database, a
// cache, a queue): its builtins, the configuration a node needs for them,
// and what a node opens once for all their calls (a connection pool). Define
// one with Define and register it with Registry.MustRegisterIntegration; a
// step's Exec reaches the node's instance with Use.
//
// The instance may implement any of Provisioner (open pools once per node),
// Checker (a connection test, run when the node starts and every 30 s) and
// io.Closer (on shutdown, after the node's steps in flight).
type Integration struct {
	// Name is the integration's section in the node configuration
	// ("integrations: NAME: ...") and, by custom, its builtins' module.
	Name string
	// Doc is a one-line description.
	Doc string
	// Steps and Inline are its builtins, registered with it.
	Steps  []*Step
	Inline map[string]starlark.Value

	config func() any                                      // a new configuration holding the defaults
	open   func(ctx context.Context, cfg any) (any, error) // the instance of a configuration
}

// Provisioner is an integration instance that opens what its calls share
// (pools, clients) once per node, when the node starts.
type Provisioner interface {
	Provision(ctx context.Context) error
}

// Checker is an integration instance that can test its connection to the
// service. The error should say which address failed and what to do.
type Checker interface {
	Check(ctx context.Context) error
}

// ErrNotConfigured is what a Checker returns when the node's configuration
// gives the integration nothing to connect to: its state is "unconfigured",
// not failing.
var ErrNotConfigured = errors.New("not configured")

// Define returns an integration whose configuration is a C, starting from
// defaults, and whose node instance open makes from it. C is a struct: the
// node configuration fills its exported fields (named by their `yaml` tag,
// else their lower-cased name); a string field tagged `secret:"true"` is a
// secret, never shown (see Secret). C may be struct{} for an integration
// without configuration.
func Define[C, I any](name, doc string, defaults C, open func(ctx context.Context, cfg C) (I, error)) *Integration {
	if reflect.TypeFor[C]().Kind() != reflect.Struct {
		panic(fmt.Sprintf("builtins: integration %s: its configuration must be a struct, not %s", name, reflect.TypeFor[C]()))
	}
	return &Integration{
		Name: name, Doc: doc,
		config: func() any { c := defaults; return &c },
		open: func(ctx context.Context, cfg any) (any, error) {
			return open(ctx, *cfg.(*C))
		},
	}
}

// NewConfig returns a pointer to a new configuration holding the defaults,
// for a loader to fill.
func (in *Integration) NewConfig() any { return in.config() }

// Open makes the integration's node instance from cfg, a pointer NewConfig
// returned, filled. It records cfg's secrets (Secret) first.
func (in *Integration) Open(ctx context.Context, cfg any) (any, error) {
	for _, s := range SecretsOf(cfg) {
		Secret(s)
	}
	return in.open(ctx, cfg)
}

// Use returns the node's instance of integration name, as Exec's env has it:
// an integration reaches its own clients without the engine knowing their
// type. It fails if the node has no such instance (the integration is not
// registered, or its configuration could not be opened).
func Use[I any](env Env, name string) (I, error) {
	var zero I
	ie, ok := env.(interface{ Integration(name string) any })
	if !ok {
		return zero, fmt.Errorf("integration %s: this node gives its steps no integrations", name)
	}
	v := ie.Integration(name)
	if v == nil {
		return zero, fmt.Errorf("integration %s is not open on node %s (see ctl integrations)", name, env.Node())
	}
	inst, ok := v.(I)
	if !ok {
		return zero, fmt.Errorf("integration %s: its instance is a %T, not a %s", name, v, reflect.TypeFor[I]())
	}
	return inst, nil
}

// MustRegisterIntegration registers in and its builtins. It panics on an
// empty or duplicate name, as MustRegister does.
func (r *Registry) MustRegisterIntegration(in *Integration) {
	if in == nil || in.Name == "" || in.open == nil {
		panic("builtins: MustRegisterIntegration needs an Integration made by Define")
	}
	r.mu.Lock()
	if _, dup := r.integrations[in.Name]; dup {
		r.mu.Unlock()
		panic(fmt.Sprintf("builtins: integration %q registered twice", in.Name))
	}
	r.integrations[in.Name] = in
	r.mu.Unlock()
	for _, s := range in.Steps {
		r.MustRegister(s)
	}
	for name, v := range in.Inline {
		r.MustRegisterInline(name, v)
	}
}

// Integrations returns the registered integrations, by name.
func (r *Registry) Integrations() []*Integration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Integration, 0, len(r.integrations))
	for _, in := range r.integrations {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Secrets. Configuration fields tagged `secret:"true"` hold values that must
// never leave the process: the journal, logs, exports, the API and spans.
// Their values are recorded process-wide when an integration opens, and
// Redact replaces them in any text about to leave (step errors, check
// failures).
var secrets struct {
	mu     sync.RWMutex
	values map[string]bool
}

// Secret records s as a secret value, and its URL-escaped forms (a
// password inside a URL). Values under 4 bytes are not recorded: they would
// redact ordinary words.
func Secret(s string) {
	if len(s) < 4 {
		return
	}
	secrets.mu.Lock()
	defer secrets.mu.Unlock()
	if secrets.values == nil {
		secrets.values = map[string]bool{}
	}
	secrets.values[s] = true
	secrets.values[url.QueryEscape(s)] = true
	secrets.values[url.PathEscape(s)] = true
}

// Redacted replaces a secret in text.
const Redacted = "[redacted]"

// Redact returns text with every recorded secret replaced by Redacted.
func Redact(text string) string {
	secrets.mu.RLock()
	defer secrets.mu.RUnlock()
	for s := range secrets.values {
		if strings.Contains(text, s) {
			text = strings.ReplaceAll(text, s, Redacted)
		}
	}
	return text
}

// stringsIn returns the non-empty strings v holds: itself, or through
// pointers, slices and maps' values.
func stringsIn(v reflect.Value) []string {
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); s != "" {
			return []string{s}
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return stringsIn(v.Elem())
		}
	case reflect.Slice, reflect.Array:
		var out []string
		for i := range v.Len() {
			out = append(out, stringsIn(v.Index(i))...)
		}
		return out
	case reflect.Map:
		var out []string
		for _, k := range v.MapKeys() {
			out = append(out, stringsIn(v.MapIndex(k))...)
		}
		return out
	}
	return nil
}

// SecretsOf returns the non-empty values of cfg's secret fields (cfg: a
// struct or a pointer to one; nested structs, maps and slices of them are
// searched too).
func SecretsOf(cfg any) []string {
	var out []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			t := v.Type()
			for i := range t.NumField() {
				f := t.Field(i)
				if !f.IsExported() {
					continue
				}
				if f.Tag.Get("secret") == "true" {
					out = append(out, stringsIn(v.Field(i))...)
					continue
				}
				walk(v.Field(i))
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(v.MapIndex(k))
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(cfg))
	return out
}

// ResourceDeclarer is an integration instance whose calls consume a
// resource of the node that opened it: it declares the node's resources as
// --resource specs ("sql.db=10": a pool of 10, one unit per call, which its
// steps demand with Step.Resources), so that placement sends its calls only
// to nodes that have them, and no further than they can take, without the
// operator declaring them. An operator's --resource of the same name wins.
type ResourceDeclarer interface {
	Resources() []string
}

// Triggerer is an integration instance that starts runs from outside, such
// as a queue's messages. The node calls Triggers once it is ready, on a
// goroutine of its own, with the function that starts a run; Triggers
// returns when ctx ends (the node is stopping).
type Triggerer interface {
	Triggers(ctx context.Context, start StartFunc) error
}

// StartFunc starts a run of a deployed script for one message. It returns
// once the run is durably accepted (journaled and indexed), or was already,
// for a message with the same Source and Key, by this node or another: the
// caller acknowledges the message then, and not before. An error means no
// run was started for it: deliver it again later, unless the error is
// permanent (errors.Is ErrPermanent: an unknown script, input that is not
// JSON), which no delivery will mend.
type StartFunc func(ctx context.Context, t TriggeredRun) (run string, err error)

// TriggeredRun is a run a message asks for.
type TriggeredRun struct {
	Script string          // a deployed script's name
	Input  json.RawMessage // the run's input: JSON
	Attrs  map[string]string
	// Source names where the message came from ("amqp queue orders"), Key
	// identifies it there (its message id); together they start at most
	// one run, for a week. An empty Key starts a run each time.
	Source, Key string
	// TraceParent is the W3C traceparent of the message that started the
	// run (its publisher's span), if it carried one: the run's span
	// becomes its child, continuing the publisher's trace. Empty starts a
	// trace of the run's own.
	TraceParent string
}

// ErrPermanent marks a StartFunc error that a new delivery of the same
// message would meet again.
var ErrPermanent = errors.New("the message can never start a run")

// Call returns a Step's Exec that decodes the call's journaled arguments
// into an A and calls call with the executing node's instance of
// integration name (Use): what every integration's Exec starts with.
func Call[I, A any](name string, call func(ctx context.Context, env Env, inst I, args A) (any, error)) func(context.Context, Env, json.RawMessage) (any, error) {
	return func(ctx context.Context, env Env, raw json.RawMessage) (any, error) {
		var a A
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, Errorf(CodeBadArgs, "%s: arguments: %v", name, err)
		}
		inst, err := Use[I](env, name)
		if err != nil {
			return nil, Errorf(CodeInternal, "%s: %v", name, err)
		}
		return call(ctx, env, inst, a)
	}
}
