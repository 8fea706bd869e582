package builtins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"
)

// States of an integration on a node (IntegrationStatus.State).
const (
	StateOK           = "ok"           // opened, and its last check passed (or it has none)
	StateFailing      = "failing"      // it could not be opened, provisioned or checked
	StateUnconfigured = "unconfigured" // its configuration gives it nothing to connect to
)

// IntegrationStatus is an integration's state on one node, as
// `ctl integrations` and GET /v1/integrations show it.
type IntegrationStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Error says why it is failing: which address, what to do. Secrets
	// are redacted.
	Error string `json:"error,omitempty"`
	// Checked is when the state was last established.
	Checked time.Time `json:"checked"`
	// Config is its configuration, each secret shown as Redacted.
	Config map[string]any `json:"config,omitempty"`
}

// Opened is a node's integrations, opened from its configuration: what a
// step's Env gives through Use, and their states.
type Opened struct {
	mu   sync.Mutex
	list []*opened
}

type opened struct {
	in     *Integration
	config any
	inst   any // nil when opening failed
	status IntegrationStatus
}

// How long a node waits for an integration to open or answer a check.
const (
	ProvisionTimeout = 10 * time.Second
	CheckTimeout     = 5 * time.Second
)

// OpenIntegrations opens every integration of r on this node: the
// configuration configs holds for it (a pointer its NewConfig returned,
// filled; none: its defaults), then Provision. A failure does not stop the
// others: it is the integration's state. One that could not be opened has
// no instance; one that could not be provisioned keeps its instance (the
// service may come up later), failing until a check passes. Check them next
// (Opened.Check).
func OpenIntegrations(ctx context.Context, r *Registry, configs map[string]any) *Opened {
	o := &Opened{}
	for _, in := range r.Integrations() {
		cfg, ok := configs[in.Name]
		if !ok {
			cfg = in.NewConfig()
		}
		op := &opened{in: in, config: cfg, status: IntegrationStatus{Name: in.Name, State: StateOK, Checked: time.Now().UTC(), Config: ConfigView(cfg)}}
		inst, err := in.Open(ctx, cfg)
		if err != nil {
			// A configuration that cannot be opened stays so: no instance.
			op.status.State, op.status.Error = StateFailing, Redact(fmt.Sprintf("integration %s: open: %v", in.Name, err))
			o.list = append(o.list, op)
			continue
		}
		op.inst = inst
		if p, ok := inst.(Provisioner); ok {
			pctx, cancel := context.WithTimeout(ctx, ProvisionTimeout)
			err = p.Provision(pctx)
			cancel()
			if err != nil {
				// The service may come up later: the instance stays, failing
				// until a check passes (Checker), its steps failing meanwhile.
				op.status.State, op.status.Error = StateFailing, Redact(fmt.Sprintf("integration %s: provision: %v", in.Name, err))
			}
		}
		o.list = append(o.list, op)
	}
	return o
}

// Get returns the instance of integration name, or nil.
func (o *Opened) Get(name string) any {
	if o == nil {
		return nil
	}
	for _, op := range o.list {
		if op.in.Name == name {
			return op.inst
		}
	}
	return nil
}

// DeclaredResources returns the resource specs the opened instances declare
// (ResourceDeclarer).
func (o *Opened) DeclaredResources() []string {
	var out []string
	if o == nil {
		return out
	}
	for _, op := range o.list {
		if d, ok := op.inst.(ResourceDeclarer); ok {
			out = append(out, d.Resources()...)
		}
	}
	return out
}

// Triggerers returns the opened instances that start runs, by integration
// name.
func (o *Opened) Triggerers() map[string]Triggerer {
	out := map[string]Triggerer{}
	if o == nil {
		return out
	}
	for _, op := range o.list {
		if t, ok := op.inst.(Triggerer); ok {
			out[op.in.Name] = t
		}
	}
	return out
}

// Check runs every opened integration's check, at most CheckTimeout each,
// concurrently, and returns the states.
func (o *Opened) Check(ctx context.Context) []IntegrationStatus {
	if o == nil {
		return nil
	}
	var wg sync.WaitGroup
	for _, op := range o.list {
		c, ok := op.inst.(Checker)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			err := c.Check(cctx)
			cancel()
			st := IntegrationStatus{Name: op.in.Name, State: StateOK, Checked: time.Now().UTC(), Config: op.status.Config}
			switch {
			case errors.Is(err, ErrNotConfigured):
				st.State, st.Error = StateUnconfigured, Redact(err.Error())
			case err != nil:
				st.State, st.Error = StateFailing, Redact(fmt.Sprintf("integration %s: check: %v", op.in.Name, err))
			}
			o.mu.Lock()
			op.status = st
			o.mu.Unlock()
		}()
	}
	wg.Wait()
	return o.Statuses()
}

// Statuses returns every integration's last state, by name.
func (o *Opened) Statuses() []IntegrationStatus {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]IntegrationStatus, len(o.list))
	for i, op := range o.list {
		out[i] = op.status
	}
	return out
}

// Close closes every instance that is an io.Closer, and returns their
// errors joined.
func (o *Opened) Close() error {
	if o == nil {
		return nil
	}
	var errs []error
	for _, op := range o.list {
		if c, ok := op.inst.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("integration %s: close: %s", op.in.Name, Redact(err.Error())))
			}
		}
	}
	return errors.Join(errs...)
}

// ConfigView returns cfg (a struct, or a pointer to one) as a map of its
// fields by their configuration names, each secret field's value replaced
// by Redacted (or "" when empty).
func ConfigView(cfg any) map[string]any {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	view, _ := configValue(v).(map[string]any)
	if len(view) == 0 {
		return nil
	}
	return view
}

func configValue(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return configValue(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := FieldName(f)
			if name == "-" {
				continue
			}
			if f.Tag.Get("secret") == "true" {
				if v.Field(i).IsZero() {
					m[name] = ""
				} else {
					m[name] = Redacted
				}
				continue
			}
			m[name] = configValue(v.Field(i))
		}
		return m
	case reflect.Map:
		m := map[string]any{}
		for _, k := range v.MapKeys() {
			m[fmt.Sprint(k.Interface())] = configValue(v.MapIndex(k))
		}
		return m
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = configValue(v.Index(i))
		}
		return out
	}
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	return v.Interface()
}

// FieldName is the configuration name of a struct field: its `yaml` tag's
// name, else its name in lower case.
func FieldName(f reflect.StructField) string {
	if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" {
		return tag
	}
	return strings.ToLower(f.Name)
}
