package meter

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Errors returned by this package.
var (
	// ErrBadResource is wrapped by ParseResource and NewResources when a
	// resource declaration cannot be understood; the message names the
	// declaration and says what to write instead.
	ErrBadResource = errors.New("meter: bad resource declaration")
	// ErrExceedsCapacity is returned (wrapped) when a step demands more units
	// than a resource can ever hold: more than a pool's size or a bucket's burst.
	ErrExceedsCapacity = errors.New("meter: demand exceeds the resource's capacity")
)

// Kind says whether a resource is a rate or a pool.
type Kind string

// The kinds of custom resources.
const (
	// KindRate is a token bucket: units refill at a rate up to a burst, and a
	// step's units are spent, not returned.
	KindRate Kind = "rate"
	// KindPool is a concurrency limit: a step holds its units while it runs.
	KindPool Kind = "pool"
)

// Scope says which nodes share one instance of a resource.
type Scope string

// The scopes without a name; a group scope is "group:NAME" (see GroupScope).
const (
	// ScopeNode gives every node its own instance (e.g. a limit per source IP
	// when every node has its own IP). It is the default.
	ScopeNode Scope = "node"
	// ScopeCluster shares one instance across the whole cluster (e.g. an API
	// key's quota, a database's connection limit).
	ScopeCluster Scope = "cluster"
)

// GroupScope returns the scope shared by the nodes that declare the same
// group, e.g. the nodes behind one NAT address.
func GroupScope(name string) Scope { return Scope("group:" + name) }

// Shared reports whether nodes share one instance of the resource.
func (s Scope) Shared() bool { return s != ScopeNode && s != "" }

// Group returns the group's name for a group scope, and "" otherwise.
func (s Scope) Group() string {
	g, _ := strings.CutPrefix(string(s), "group:")
	if g == string(s) {
		return ""
	}
	return g
}

// Names of demands that are not custom resources but hints: the cores and
// bytes of memory a Go integration expects one call to use. Placement uses
// them until it has measured the builtin (and cores while measurements,
// taken on busy nodes, show fewer); no node declares them and Resources does
// not limit them.
const (
	CPU    = "cpu"
	Memory = "memory"
)

// A Demand is an amount of a named resource that one step consumes. It has the
// shape of builtins.Demand (convert with meter.Demand(d)).
type Demand struct {
	Resource string  `json:"resource"`
	Amount   float64 `json:"amount"`
}

// A ResourceSpec declares one custom resource of a node, as parsed from node
// configuration by ParseResource.
type ResourceSpec struct {
	// Name identifies the resource; Go integrations demand it by this name.
	Name string
	// Kind is KindRate or KindPool.
	Kind Kind
	// Rate is the refill rate in units per second (KindRate only).
	Rate float64
	// Burst is the most units a bucket holds (KindRate only); it defaults
	// to the count of the declaration (5000 for "5000/h").
	Burst float64
	// Size is a pool's number of units (KindPool only).
	Size int
	// Scope says which nodes share the resource (default ScopeNode).
	Scope Scope
	// Builtins are globs (path.Match syntax, e.g. "http.*") of the builtins
	// that consume one unit per call. Empty means only Go integrations that
	// declare the resource consume it.
	Builtins []string
	// Hosts, if set, restrict the binding to calls whose "url" argument has a
	// matching host (globs, e.g. "*.github.com").
	Hosts []string
}

// Capacity is the most units the resource can hold: a bucket's burst or a
// pool's size.
func (s ResourceSpec) Capacity() float64 {
	if s.Kind == KindPool {
		return float64(s.Size)
	}
	return s.Burst
}

// String returns the declaration in the syntax ParseResource reads.
func (s ResourceSpec) String() string {
	var b strings.Builder
	b.WriteString(s.Name)
	b.WriteByte('=')
	if s.Kind == KindPool {
		b.WriteString(strconv.Itoa(s.Size))
	} else {
		b.WriteString(formatRate(s.Rate))
		fmt.Fprintf(&b, ",burst=%s", strconv.FormatFloat(s.Burst, 'f', -1, 64))
	}
	if s.Scope != "" && s.Scope != ScopeNode {
		b.WriteString(",scope=" + string(s.Scope))
	}
	for _, g := range s.Builtins {
		b.WriteString(",builtin=" + g)
	}
	for _, h := range s.Hosts {
		b.WriteString(",host=" + h)
	}
	return b.String()
}

func formatRate(perSecond float64) string {
	for _, u := range []struct {
		unit string
		d    time.Duration
	}{{"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}} {
		n := perSecond * u.d.Seconds()
		if n >= 1 && math.Abs(n-math.Round(n)) < 1e-9 {
			return strconv.FormatFloat(math.Round(n), 'f', -1, 64) + "/" + u.unit
		}
	}
	return strconv.FormatFloat(perSecond, 'g', -1, 64) + "/s"
}

const resourceSyntax = `write NAME=N/PERIOD for a rate (e.g. github_api=5000/h, sms=10/s,burst=20) or NAME=N for a pool (e.g. db=20), then options scope=node|cluster|group:NAME, builtin=GLOB, host=GLOB`

// ParseResource reads one resource declaration, as given in node
// configuration or on the command line:
//
//	github_api=5000/h,host=api.github.com        a rate, bound to http.* calls to one host
//	sms=10/s,burst=20,builtin=sms.send           a rate with an explicit burst
//	db=20,scope=cluster,builtin=sql.*            a pool of 20 shared by the cluster
//	partner=5/s,scope=group:nat-a,builtin=http.* a rate shared by the nodes of group nat-a
//
// A rate's period is s, m, h, d (also sec, min, hour, day) or a Go duration
// such as 15m. A host binding without a builtin binding applies to http.*.
func ParseResource(s string) (ResourceSpec, error) {
	bad := func(format string, a ...any) (ResourceSpec, error) {
		return ResourceSpec{}, fmt.Errorf("%w %q: %s", ErrBadResource, s, fmt.Sprintf(format, a...))
	}
	name, rest, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return bad("no value; %s", resourceSyntax)
	}
	name = strings.TrimSpace(name)
	if !validName(name) {
		return bad("name %q must be letters, digits, '_', '-' or '.'", name)
	}
	if name == CPU || name == Memory {
		return bad("%s is measured on every node, not declared; pick another name for a custom resource", name)
	}
	parts := strings.Split(rest, ",")
	spec := ResourceSpec{Name: name, Scope: ScopeNode}
	value := strings.TrimSpace(parts[0])
	if count, per, isRate := strings.Cut(value, "/"); isRate {
		n, err := strconv.ParseFloat(strings.TrimSpace(count), 64)
		if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
			return bad("rate count %q must be a positive number; %s", count, resourceSyntax)
		}
		d, err := parsePeriod(strings.TrimSpace(per))
		if err != nil {
			return bad("%v; write the period as s, m, h, d or a duration such as 15m (e.g. %s=%s/h)", err, name, count)
		}
		spec.Kind, spec.Rate, spec.Burst = KindRate, n/d.Seconds(), math.Max(1, n)
	} else {
		n, err := strconv.Atoi(value)
		if err != nil || n <= 0 {
			return bad("value %q is neither a rate nor a pool size; %s", value, resourceSyntax)
		}
		spec.Kind, spec.Size = KindPool, n
	}
	for _, opt := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(opt), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return bad("option %q needs a value (e.g. burst=20, scope=cluster, builtin=http.*, host=api.github.com)", opt)
		}
		switch k {
		case "burst":
			if spec.Kind != KindRate {
				return bad("burst applies to rates; a pool's only limit is its size (write %s=%d)", name, spec.Size)
			}
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n < 1 || math.IsInf(n, 0) {
				return bad("burst %q must be a number of at least 1", v)
			}
			spec.Burst = n
		case "scope":
			sc := Scope(v)
			if g := sc.Group(); sc != ScopeNode && sc != ScopeCluster && !validName(g) {
				return bad("scope %q must be node, cluster or group:NAME", v)
			}
			spec.Scope = sc
		case "builtin":
			if _, err := path.Match(v, ""); err != nil {
				return bad("builtin glob %q: %v", v, err)
			}
			spec.Builtins = append(spec.Builtins, v)
		case "host":
			v = strings.ToLower(v)
			if _, err := path.Match(v, ""); err != nil {
				return bad("host glob %q: %v", v, err)
			}
			spec.Hosts = append(spec.Hosts, v)
		default:
			return bad("unknown option %q; the options are burst, scope, builtin and host", k)
		}
	}
	if len(spec.Hosts) > 0 && len(spec.Builtins) == 0 {
		spec.Builtins = []string{"http.*"}
	}
	return spec, nil
}

// ParseResources reads several declarations and rejects a name declared twice.
func ParseResources(decls []string) ([]ResourceSpec, error) {
	var specs []ResourceSpec
	seen := map[string]bool{}
	for _, d := range decls {
		s, err := ParseResource(d)
		if err != nil {
			return nil, err
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("%w %q: resource %q is declared twice; declare each name once", ErrBadResource, d, s.Name)
		}
		seen[s.Name] = true
		specs = append(specs, s)
	}
	return specs, nil
}

func parsePeriod(s string) (time.Duration, error) {
	switch s {
	case "s", "sec", "second":
		return time.Second, nil
	case "m", "min", "minute":
		return time.Minute, nil
	case "h", "hr", "hour":
		return time.Hour, nil
	case "d", "day":
		return 24 * time.Hour, nil
	case "":
		return 0, errors.New("no period after '/'")
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("unknown period %q", s)
	}
	return d, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// Matches reports whether one call of builtin with args consumes a unit of
// the resource: its builtin matches one of the globs and, when hosts are
// set, the host of its "url" argument matches one of them. args is the
// step's canonical JSON.
func (s ResourceSpec) Matches(builtin string, args json.RawMessage) bool {
	if !s.matchesBuiltin(builtin) {
		return false
	}
	if len(s.Hosts) == 0 {
		return true
	}
	return s.matchesHost(urlHost(args))
}

func (s ResourceSpec) matchesBuiltin(builtin string) bool {
	for _, g := range s.Builtins {
		if ok, _ := path.Match(g, builtin); ok {
			return true
		}
	}
	return false
}

func (s ResourceSpec) matchesHost(host string) bool {
	if host == "" {
		return false
	}
	for _, g := range s.Hosts {
		if ok, _ := path.Match(g, host); ok {
			return true
		}
	}
	return false
}

// urlHost returns the lower-case host (without port) of the "url" member of a
// JSON object, or "".
func urlHost(args json.RawMessage) string {
	var a struct {
		URL string `json:"url"`
	}
	if len(args) == 0 || json.Unmarshal(args, &a) != nil || a.URL == "" {
		return ""
	}
	u, err := url.Parse(a.URL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}
