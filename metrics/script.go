package metrics

import (
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// The kinds of script metrics (metrics.count, metrics.gauge,
// metrics.histogram).
const (
	KindCount     = "count"
	KindGauge     = "gauge"
	KindHistogram = "histogram"
)

// Limits of script metrics.
const (
	// MaxNameLen is the longest script metric name, in bytes.
	MaxNameLen = 200
	// MaxTagLen is the longest tag value, in bytes; longer ones are cut.
	MaxTagLen = 200
	// MaxScriptSeries bounds the Prometheus series (name and tag values)
	// of script metrics a node keeps: Prometheus keeps each until the
	// process ends. DogStatsD is not bounded by it: its client forgets
	// a series once it has sent it.
	MaxScriptSeries = 10000
)

// Why script metrics are dropped: the reason tag of script_metrics.dropped.
const (
	dropNames   = "too_many_names"  // the name would be one more than MaxScriptMetrics
	dropKind    = "kind"            // the name was first used with another kind
	dropInvalid = "invalid"         // an unknown kind, a value not finite, a negative count
	dropLabels  = "labels"          // Prometheus only: tags other than the name's first ones
	dropSeries  = "too_many_series" // Prometheus only: MaxScriptSeries reached
	dropName    = "name_collision"  // Prometheus only: another name maps to the same one
)

// scripts holds the script metrics seen so far, by name.
type scripts struct {
	m   *Metrics
	max int

	mu       sync.Mutex
	families map[string]*family // by sanitised name
	promName map[string]string  // Prometheus name → the name that has it
	series   int                // Prometheus series, all families
}

// family is one script metric name: its kind and, for Prometheus, the
// label names of its first use and the series seen.
type family struct {
	kind   string
	labels []string // sorted: script first, then the tag keys
	vec    prometheus.Collector
	seen   map[string]bool // label values joined by \xff
}

// Script records a metric a script emitted: kind is KindCount (value added,
// whole and not negative), KindGauge (value set) or KindHistogram (value
// observed). It is script.<name> in DogStatsD and drover_script_<name> in
// Prometheus (a count is drover_script_<name>_total), with the node, and
// the tags: tags["script"] names the script (the engine sets it), "node" is
// ignored. Names and tags are sanitised: names keep lower-case letters,
// digits, _ and . (up to MaxNameLen bytes), tag keys lower-case letters,
// digits and _, tag values letters, digits and _-:./ (up to MaxTagLen
// bytes); any other character becomes _.
//
// A name is one of at most Config.MaxScriptMetrics per node, and keeps the
// kind of its first use; in Prometheus, also the tag keys of its first use
// (a tag missing later is ""; a call with another key is not recorded
// there). What is dropped is counted in script_metrics.dropped by reason.
func (m *Metrics) Script(kind, name string, value float64, tags map[string]string) {
	if m == nil || (m.client == nil && m.prom == nil) {
		return
	}
	m.script.record(kind, name, value, tags)
}

func (s *scripts) record(kind, name string, value float64, tags map[string]string) {
	m := s.m
	switch {
	case kind != KindCount && kind != KindGauge && kind != KindHistogram,
		math.IsNaN(value) || math.IsInf(value, 0),
		kind == KindCount && value < 0:
		m.dropped(dropInvalid)
		return
	}
	name = metricName(name)
	keys, values := scriptTags(tags)

	s.mu.Lock()
	f, ok := s.families[name]
	if !ok {
		if len(s.families) >= s.max {
			s.mu.Unlock()
			m.dropped(dropNames)
			return
		}
		f = s.newFamily(kind, name, keys)
	}
	if f.kind != kind {
		s.mu.Unlock()
		m.dropped(dropKind)
		return
	}
	prom := s.promSeries(f, keys, values)
	s.mu.Unlock()

	if m.client != nil {
		dd := make([]string, len(keys))
		for i, k := range keys {
			dd[i] = k + ":" + values[i]
		}
		switch kind {
		case KindCount:
			_ = m.client.Count("script."+name, int64(math.Round(value)), dd, 1)
		case KindGauge:
			_ = m.client.Gauge("script."+name, value, dd, 1)
		case KindHistogram:
			_ = m.client.Histogram("script."+name, value, dd, 1)
		}
	}
	switch p := prom.(type) {
	case prometheus.Counter:
		p.Add(value)
	case prometheus.Gauge:
		p.Set(value)
	case prometheus.Observer:
		p.Observe(value)
	}
}

// newFamily adds the family name, first used with kind and the tag keys;
// s.mu is held.
func (s *scripts) newFamily(kind, name string, keys []string) *family {
	if s.families == nil {
		s.families, s.promName = map[string]*family{}, map[string]string{}
	}
	f := &family{kind: kind, labels: keys, seen: map[string]bool{}}
	s.families[name] = f
	if s.m.prom == nil {
		return f
	}
	pname := "drover_script_" + strings.ReplaceAll(name, ".", "_")
	if kind == KindCount {
		pname += "_total"
	}
	if _, taken := s.promName[pname]; taken {
		s.m.dropped(dropName) // this name stays out of Prometheus
		return f
	}
	help := "Script metric " + name + " (" + kind + ")."
	var vec prometheus.Collector
	switch kind {
	case KindCount:
		vec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: pname, Help: help}, keys)
	case KindGauge:
		vec = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: pname, Help: help}, keys)
	case KindHistogram:
		vec = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: pname, Help: help,
			Buckets:                     scriptBuckets,
			NativeHistogramBucketFactor: 1.1, // for scrapers that read native histograms
		}, keys)
	}
	r := prometheus.WrapRegistererWith(prometheus.Labels{"node": s.m.node}, s.m.reg)
	if err := r.Register(vec); err != nil {
		s.m.dropped(dropName) // a name of the node's own, or a histogram's suffix
		return f
	}
	s.promName[pname] = name
	f.vec = vec
	return f
}

// scriptBuckets are the classic buckets of script histograms, whose unit
// is the script's own: 16 from 0.001 to 10⁹, each about 6.3 times the last.
var scriptBuckets = prometheus.ExponentialBucketsRange(0.001, 1e9, 16)

// promSeries returns the Prometheus series of f for the tag keys and
// values (nil: not recorded in Prometheus); s.mu is held.
func (s *scripts) promSeries(f *family, keys, values []string) any {
	if f.vec == nil {
		return nil
	}
	lv := make([]string, len(f.labels))
	j := 0
	for i, l := range f.labels {
		for j < len(keys) && keys[j] < l {
			s.m.dropped(dropLabels) // a key the first use did not have
			return nil
		}
		if j < len(keys) && keys[j] == l {
			lv[i] = values[j]
			j++
		}
	}
	if j < len(keys) {
		s.m.dropped(dropLabels)
		return nil
	}
	id := strings.Join(lv, "\xff")
	if !f.seen[id] {
		if s.series >= MaxScriptSeries {
			s.m.dropped(dropSeries)
			return nil
		}
		s.series++
		f.seen[id] = true
	}
	switch v := f.vec.(type) {
	case *prometheus.CounterVec:
		return v.WithLabelValues(lv...)
	case *prometheus.GaugeVec:
		return v.WithLabelValues(lv...)
	case *prometheus.HistogramVec:
		return v.WithLabelValues(lv...)
	}
	return nil
}

// dropped counts a script metric dropped for reason.
func (m *Metrics) dropped(reason string) {
	if m.client != nil {
		_ = m.client.Count("script_metrics.dropped", 1, []string{"reason:" + reason}, 1)
	}
	if m.prom != nil {
		m.prom.dropped.WithLabelValues(reason).Inc()
	}
}

// scriptTags returns the sanitised tag keys, sorted, and their sanitised
// values; "node" is the node's own and left out.
func scriptTags(tags map[string]string) (keys, values []string) {
	keys = make([]string, 0, len(tags))
	byKey := make(map[string]string, len(tags))
	for k, v := range tags {
		k = tagKey(k)
		if k == "node" {
			continue
		}
		if _, dup := byKey[k]; !dup {
			keys = append(keys, k)
		}
		byKey[k] = tagValue(v)
	}
	sort.Strings(keys)
	values = make([]string, len(keys))
	for i, k := range keys {
		values[i] = byKey[k]
	}
	return keys, values
}

// metricName sanitises a script metric's name: lower-case letters, digits,
// _ and ., starting with a letter, at most MaxNameLen bytes.
func metricName(s string) string {
	return sanitise(s, MaxNameLen, func(c byte) bool {
		return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.'
	})
}

// tagKey sanitises a tag key: lower-case letters, digits and _, starting
// with a letter (a valid Prometheus label name, not a reserved one).
func tagKey(s string) string {
	return sanitise(s, MaxTagLen, func(c byte) bool {
		return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_'
	})
}

// tagValue sanitises a tag value: letters, digits and _-:./ (what a
// DogStatsD tag keeps as it is), at most MaxTagLen bytes. "" stays "".
func tagValue(s string) string {
	if len(s) <= MaxTagLen && strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 || !tagChar(byte(r)) }) < 0 {
		return s // the usual case: nothing to copy
	}
	out := []byte(s)
	if len(out) > MaxTagLen {
		out = out[:MaxTagLen]
	}
	for i, c := range out {
		if !tagChar(c) {
			out[i] = '_'
		}
	}
	return string(out)
}

func tagChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || c == ':' || c == '.' || c == '/'
}

// sanitise lower-cases s, replaces each byte ok refuses with _, prefixes
// a result that does not start with a letter with "m_", and cuts it to
// max bytes.
func sanitise(s string, max int, ok func(byte) bool) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !ok(c) {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] < 'a' || b[0] > 'z' {
		b = append([]byte("m_"), b...)
	}
	if len(b) > max {
		b = b[:max]
	}
	return string(b)
}
