package metrics

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestScriptMetrics(t *testing.T) {
	m, a := newUDP(t, Config{})
	tags := map[string]string{"script": "order.star", "region": "eu"}
	m.Script(KindCount, "orders.charged", 1, tags)
	m.Script(KindCount, "orders.charged", 2, tags)
	m.Script(KindGauge, "cart.size", 3.5, tags)
	m.Script(KindHistogram, "charge.amount", 10, tags)
	m.Script(KindHistogram, "charge.amount", 30, tags)

	want := []string{"node:n1", "region:eu", "script:order.star"}
	a.waitTotal(t, m, "drover.script.orders.charged", "c", 3, want...)
	a.waitLast(t, m, "drover.script.cart.size", 3.5, want...)
	a.waitTotal(t, m, "drover.script.charge.amount", "h", 40, want...)

	for _, c := range []struct {
		name string
		want float64
	}{
		{"drover_script_orders_charged_total", 3},
		{"drover_script_cart_size", 3.5},
		{"drover_script_charge_amount", 2}, // observations
	} {
		if got := promValue(t, m, c.name, "script", "order.star", "region", "eu"); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestScriptSanitising(t *testing.T) {
	m, a := newUDP(t, Config{})
	m.Script(KindCount, "Orders-Charged!", 1, map[string]string{
		"script":        "billing/order.star",
		"Customer Tier": "gold plan, #1|x",
		"2fa":           "on",
		"node":          "spoofed", // the node's own: ignored
	})
	want := []string{"node:n1", "script:billing/order.star", "customer_tier:gold_plan___1_x", "m_2fa:on"}
	a.waitTotal(t, m, "drover.script.orders_charged_", "c", 1, want...)
	if got := promValue(t, m, "drover_script_orders_charged__total", "script", "billing/order.star", "customer_tier", "gold_plan___1_x", "m_2fa", "on"); got != 1 {
		t.Errorf("Prometheus: sanitised series = %v, want 1", got)
	}
}

func TestSanitise(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		name, in, want string
		f              func(string) string
	}{
		{"name kept", "orders.charged_2", "orders.charged_2", metricName},
		{"name lower-cased", "Orders.Charged", "orders.charged", metricName},
		{"name bad chars", "a-b c/d:é", "a_b_c_d___", metricName},
		{"name digit first", "2xx", "m_2xx", metricName},
		{"name empty", "", "m_", metricName},
		{"name cut", long, long[:MaxNameLen], metricName},
		{"key kept", "region", "region", tagKey},
		{"key dots", "a.b", "a_b", tagKey},
		{"key underscore first", "_x", "m__x", tagKey},
		{"value kept", "api.example.com:443/v1-x_y", "api.example.com:443/v1-x_y", tagValue},
		{"value case kept", "EU-West", "EU-West", tagValue},
		{"value separators", "a,b|c#d e", "a_b_c_d_e", tagValue},
		{"value newline", "a\nb", "a_b", tagValue},
		{"value unicode", "zürich", "z__rich", tagValue},
		{"value empty", "", "", tagValue},
		{"value cut", long, long[:MaxTagLen], tagValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f(tt.in); got != tt.want {
				t.Errorf("%q → %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestScriptNameCap checks that a node reports at most MaxScriptMetrics
// names: a call of another name is dropped and counted.
func TestScriptNameCap(t *testing.T) {
	m, a := newUDP(t, Config{MaxScriptMetrics: 3})
	for i := range 5 {
		m.Script(KindCount, "m"+strconv.Itoa(i), 1, nil)
	}
	m.Script(KindCount, "m0", 1, nil) // a name it has: kept

	a.waitTotal(t, m, "drover.script_metrics.dropped", "c", 2, "node:n1", "reason:too_many_names")
	a.waitTotal(t, m, "drover.script.m0", "c", 2, "node:n1")
	a.waitTotal(t, m, "drover.script.m2", "c", 1, "node:n1")
	for _, name := range []string{"drover.script.m3", "drover.script.m4"} {
		if s := a.samples(t, name); len(s) > 0 {
			t.Errorf("%s was sent over the cap: %v", name, s)
		}
	}
	if got := promValue(t, m, "drover_dropped_script_metrics_total", "reason", "too_many_names"); got != 2 {
		t.Errorf("Prometheus dropped{too_many_names} = %v, want 2", got)
	}
	if got := promValue(t, m, "drover_script_m3_total"); got != 0 {
		t.Errorf("Prometheus has m3 over the cap")
	}
}

func TestScriptDefaultCap(t *testing.T) {
	clearDDEnv(t)
	m, err := New(Config{}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range DefaultMaxScriptMetrics + 10 {
		m.Script(KindGauge, "g"+strconv.Itoa(i), 1, nil)
	}
	if got := promValue(t, m, "drover_dropped_script_metrics_total", "reason", "too_many_names"); got != 10 {
		t.Errorf("dropped{too_many_names} = %v, want 10", got)
	}
}

// TestScriptDrops checks each other reason a script metric is dropped,
// in full or from Prometheus only.
func TestScriptDrops(t *testing.T) {
	clearDDEnv(t)
	m, err := New(Config{}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	m.Script(KindCount, "c", 1, map[string]string{"a": "1"})
	m.Script(KindGauge, "c", 1, map[string]string{"a": "1"})           // kind
	m.Script(KindCount, "c", -1, nil)                                  // invalid
	m.Script(KindGauge, "g", math.NaN(), nil)                          // invalid
	m.Script(KindGauge, "g", math.Inf(1), nil)                         // invalid
	m.Script("timer", "t", 1, nil)                                     // invalid
	m.Script(KindCount, "c", 1, map[string]string{"b": "1"})           // labels
	m.Script(KindCount, "c", 1, map[string]string{"a": "1", "z": "1"}) // labels
	m.Script(KindCount, "c", 1, nil)                                   // a missing: ""
	m.Script(KindCount, "x.y", 1, nil)
	m.Script(KindCount, "x_y", 1, nil) // same Prometheus name: name_collision

	for reason, want := range map[string]float64{"kind": 1, "invalid": 4, "labels": 2, "name_collision": 1} {
		if got := promValue(t, m, "drover_dropped_script_metrics_total", "reason", reason); got != want {
			t.Errorf("dropped{%s} = %v, want %v", reason, got, want)
		}
	}
	if got := promValue(t, m, "drover_script_c_total", "a", "1"); got != 1 {
		t.Errorf(`c{a="1"} = %v, want 1`, got)
	}
	if got := promValue(t, m, "drover_script_c_total", "a", ""); got != 1 {
		t.Errorf(`c{a=""} = %v, want 1`, got)
	}
	if got := promValue(t, m, "drover_script_x_y_total"); got != 1 {
		t.Errorf("x_y_total = %v, want 1 (x.y's)", got)
	}
}

// TestScriptSeriesCap checks that Prometheus keeps at most MaxScriptSeries
// series of script metrics.
func TestScriptSeriesCap(t *testing.T) {
	clearDDEnv(t)
	m, err := New(Config{}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxScriptSeries + 5 {
		m.Script(KindCount, "per.customer", 1, map[string]string{"customer": strconv.Itoa(i)})
	}
	m.Script(KindCount, "per.customer", 1, map[string]string{"customer": "0"}) // a series it has
	if got := promValue(t, m, "drover_dropped_script_metrics_total", "reason", "too_many_series"); got != 5 {
		t.Errorf("dropped{too_many_series} = %v, want 5", got)
	}
	if got := promValue(t, m, "drover_script_per_customer_total", "customer", "0"); got != 2 {
		t.Errorf("customer 0 = %v, want 2", got)
	}
}
