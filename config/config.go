// Package config reads a node's configuration file (`engine --config
// drover.yaml`): for now its integrations section, each integration's
// settings decoded into the typed configuration it declares
// (builtins.Define).
//
//	integrations:
//	  greet:
//	    greeting: hello
//	    token: ${GREET_TOKEN}
//
// ${NAME} in a value is replaced by the environment variable NAME; an unset
// one is an error (write $${ for a literal ${). Every problem names the file
// and line: a section for an integration this build does not have, a field
// its configuration does not have, a value of the wrong type.
package config

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/droverhq/drover/alert"
	"github.com/droverhq/drover/breaker"
	"github.com/droverhq/drover/logship"
	"github.com/droverhq/drover/metrics"
	"github.com/droverhq/drover/starlark/builtins"
)

// file is the configuration file's layout (its integrations' sections are
// read one by one, against each integration's configuration).
type file struct {
	Integrations map[string]yaml.Node `yaml:"integrations"`
	Breakers     breaker.Config       `yaml:"breakers"`
	Metrics      metrics.Config       `yaml:"metrics"`
	Alerts       alert.Config         `yaml:"alerts"`
	Logs         logship.Config       `yaml:"logs"`
}

// Node is what a configuration file says of a node.
type Node struct {
	// Integrations are the configurations of the integrations the file has
	// a section for, by name: each a pointer its NewConfig returned, filled.
	Integrations map[string]any
	// Breakers configures its circuit breakers.
	Breakers breaker.Config
	// Metrics configures its metrics (DogStatsD, Prometheus).
	Metrics metrics.Config
	// Alerts are its alert rules.
	Alerts alert.Config
	// Logs ships its log lines to Logstash and Elasticsearch.
	Logs logship.Config
}

// Load reads the configuration file at path: the configuration of each of
// r's integrations the file has a section for, and of the node's circuit
// breakers. lookup reads the environment (os.LookupEnv).
func Load(path string, r *builtins.Registry, lookup func(string) (string, bool)) (*Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, r, lookup)
}

// Parse is Load of data, read from a file named name.
func Parse(name string, data []byte, r *builtins.Registry, lookup func(string) (string, bool)) (*Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	node := &Node{Integrations: map[string]any{}}
	if len(root.Content) == 0 {
		return node, nil // empty file
	}
	if err := expand(name, &root, lookup); err != nil {
		return nil, err
	}
	if err := known(name, root.Content[0], reflect.TypeFor[file](), ""); err != nil {
		return nil, err
	}
	byName := map[string]*builtins.Integration{}
	var names []string
	for _, in := range r.Integrations() {
		byName[in.Name] = in
		names = append(names, in.Name)
	}
	for key, into := range map[string]any{"breakers": &node.Breakers, "metrics": &node.Metrics, "alerts": &node.Alerts, "logs": &node.Logs} {
		if b := section(root.Content[0], key); b != nil {
			if err := b.Decode(into); err != nil {
				return nil, fmt.Errorf("config: %s: %s: %w", name, key, err)
			}
		}
	}
	if err := node.Logs.Validate(); err != nil {
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	configs := node.Integrations
	sections := section(root.Content[0], "integrations")
	if sections == nil {
		return node, nil
	}
	if sections.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config: %s:%d: integrations: want a mapping of integration names to their settings", name, sections.Line)
	}
	for i := 0; i+1 < len(sections.Content); i += 2 {
		key, node := sections.Content[i], sections.Content[i+1]
		in := byName[key.Value]
		if in == nil {
			have := "none"
			if len(names) > 0 {
				have = strings.Join(names, ", ")
			}
			return nil, fmt.Errorf("config: %s:%d: integration %q is not in this engine build (it has: %s)", name, key.Line, key.Value, have)
		}
		cfg := in.NewConfig()
		if node.Tag == "!!null" {
			configs[in.Name] = cfg // a section without settings: the defaults
			continue
		}
		if err := known(name, node, reflect.TypeOf(cfg), "integrations."+in.Name); err != nil {
			return nil, err
		}
		if err := node.Decode(cfg); err != nil {
			return nil, fmt.Errorf("config: %s: integration %s: %w", name, in.Name, err)
		}
		configs[in.Name] = cfg
	}
	return node, nil
}

// section returns the value of key in the mapping n, or nil.
func section(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// expand replaces ${NAME} in every scalar value below n (not in keys).
func expand(name string, n *yaml.Node, lookup func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return nil
		}
		v, err := expandString(n.Value, lookup)
		if err != nil {
			return fmt.Errorf("config: %s:%d: %w", name, n.Line, err)
		}
		if v != n.Value {
			n.Value = v
			quoted := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle|yaml.TaggedStyle) != 0
			switch v {
			case "", "~", "null", "Null", "NULL":
				n.Tag = "!!str" // a value, not YAML's null: the setting is what the variable holds
			default:
				if !quoted {
					n.Tag = "" // plain: the expanded value's own type shows (a port, a flag)
				}
			}
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if err := expand(name, n.Content[i], lookup); err != nil {
				return err
			}
		}
	default:
		for _, c := range n.Content {
			if err := expand(name, c, lookup); err != nil {
				return err
			}
		}
	}
	return nil
}

// expandString replaces ${NAME} in s; $${ is a literal ${.
func expandString(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // $${: a literal ${
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q: ${ without its } (write $${ for a literal ${)", s)
		}
		v := s[i+2 : i+end]
		if v == "" || strings.ContainsAny(v, " ${") {
			return "", fmt.Errorf("%q: ${%s} is not an environment variable's name", s, v)
		}
		val, ok := lookup(v)
		if !ok {
			return "", fmt.Errorf("${%s} is not set in the environment (set it, or write $${%s} for a literal)", v, v)
		}
		b.WriteString(s[:i])
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

// known checks that every key of the mapping n names a field of t (a struct
// or a pointer to one), recursively, so that a misspelt setting is an error
// at its line rather than a default silently kept.
func known(name string, n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Duration](), t == reflect.TypeFor[yaml.Node]():
		return nil // a value of its own; a section, checked against its integration
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		settings(t, fields)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i]
			ft, ok := fields[key.Value]
			if !ok {
				return fmt.Errorf("config: %s:%d: %s has no setting %q (it has: %s)", name, key.Line, orTop(path), key.Value, strings.Join(sortedNames(fields), ", "))
			}
			if err := known(name, n.Content[i+1], ft, join(path, key.Value)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := known(name, n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			if err := known(name, c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// settings adds the settings of struct t to fields, by name, those of its
// `yaml:",inline"` fields included.
func settings(t reflect.Type, fields map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if _, opts, _ := strings.Cut(f.Tag.Get("yaml"), ","); strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				settings(ft, fields)
				continue
			}
		}
		fields[builtins.FieldName(f)] = f.Type
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

func sortedNames(m map[string]reflect.Type) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// EnvPrefix begins the environment variables that set an integration's
// top-level settings: DROVER_<INTEGRATION>_<SETTING>, both upper-cased
// (DROVER_REDIS_ADDR, DROVER_CACHE_SERVERS, DROVER_AMQP_URL).
const EnvPrefix = "DROVER_"

// ApplyEnv sets, in node, every top-level setting of r's integrations that
// an environment variable DROVER_<INTEGRATION>_<SETTING> gives (lookup
// reads the environment): strings, numbers, booleans, durations, and lists
// of strings (comma-separated). A variable wins over the file. It returns
// the variables it used, for the node's log.
func ApplyEnv(node *Node, r *builtins.Registry, lookup func(string) (string, bool)) ([]string, error) {
	if node.Integrations == nil {
		node.Integrations = map[string]any{}
	}
	var used []string
	for _, in := range r.Integrations() {
		cfg, ok := node.Integrations[in.Name]
		if !ok {
			cfg = in.NewConfig()
		}
		v := reflect.ValueOf(cfg).Elem()
		set := false
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			name := EnvPrefix + strings.ToUpper(in.Name+"_"+builtins.FieldName(f))
			s, ok := lookup(name)
			if !ok {
				continue
			}
			if err := setField(v.Field(i), s); err != nil {
				return nil, fmt.Errorf("config: %s=%q: %w", name, redactIfSecret(f, s), err)
			}
			used, set = append(used, name), true
		}
		if set {
			node.Integrations[in.Name] = cfg
		}
	}
	return used, nil
}

func redactIfSecret(f reflect.StructField, s string) string {
	if f.Tag.Get("secret") == "true" {
		return builtins.Redacted
	}
	return s
}

// setField parses s into a top-level setting.
func setField(v reflect.Value, s string) error {
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as 500ms or 10s")
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want a whole number")
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		v.SetBool(b)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var list []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("this setting is set in the configuration file only (--config)")
	}
	return nil
}
