package meter

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseResource(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ResourceSpec
		wantErr error
		errHas  string // part of the message that tells what to write
	}{
		{name: "rate per hour", in: "github_api=5000/h,host=api.github.com",
			want: ResourceSpec{Name: "github_api", Kind: KindRate, Rate: 5000.0 / 3600, Burst: 5000, Scope: ScopeNode, Builtins: []string{"http.*"}, Hosts: []string{"api.github.com"}}},
		{name: "rate with burst", in: "sms=10/s,burst=20,builtin=sms.send",
			want: ResourceSpec{Name: "sms", Kind: KindRate, Rate: 10, Burst: 20, Scope: ScopeNode, Builtins: []string{"sms.send"}}},
		{name: "pool", in: "db=20", want: ResourceSpec{Name: "db", Kind: KindPool, Size: 20, Scope: ScopeNode}},
		{name: "cluster pool", in: " db = 16 , scope=cluster, builtin=sql.*",
			want: ResourceSpec{Name: "db", Kind: KindPool, Size: 16, Scope: ScopeCluster, Builtins: []string{"sql.*"}}},
		{name: "group scope", in: "partner=5/s,scope=group:nat-a,builtin=http.*,host=*.Partner.com",
			want: ResourceSpec{Name: "partner", Kind: KindRate, Rate: 5, Burst: 5, Scope: "group:nat-a", Builtins: []string{"http.*"}, Hosts: []string{"*.partner.com"}}},
		{name: "duration period", in: "q=100/15m", want: ResourceSpec{Name: "q", Kind: KindRate, Rate: 100.0 / 900, Burst: 100, Scope: ScopeNode}},
		{name: "fractional count gets burst 1", in: "slow=0.5/s", want: ResourceSpec{Name: "slow", Kind: KindRate, Rate: 0.5, Burst: 1, Scope: ScopeNode}},
		{name: "two builtin globs", in: "x=3,builtin=a.*,builtin=b.get", want: ResourceSpec{Name: "x", Kind: KindPool, Size: 3, Scope: ScopeNode, Builtins: []string{"a.*", "b.get"}}},
		{name: "no value", in: "github_api", wantErr: ErrBadResource, errHas: "NAME=N/PERIOD"},
		{name: "bad period", in: "github_api=5000/x", wantErr: ErrBadResource, errHas: "github_api=5000/h"},
		{name: "empty period", in: "a=5/", wantErr: ErrBadResource, errHas: "no period"},
		{name: "zero rate", in: "a=0/s", wantErr: ErrBadResource, errHas: "positive"},
		{name: "fractional pool", in: "db=2.5", wantErr: ErrBadResource, errHas: "pool"},
		{name: "burst on pool", in: "db=20,burst=5", wantErr: ErrBadResource, errHas: "write db=20"},
		{name: "bad burst", in: "a=5/s,burst=0.5", wantErr: ErrBadResource, errHas: "at least 1"},
		{name: "bad scope", in: "a=5/s,scope=region", wantErr: ErrBadResource, errHas: "group:NAME"},
		{name: "empty group", in: "a=5/s,scope=group:", wantErr: ErrBadResource, errHas: "group:NAME"},
		{name: "unknown option", in: "a=5/s,per=ip", wantErr: ErrBadResource, errHas: "burst, scope, builtin and host"},
		{name: "option without value", in: "a=5/s,burst", wantErr: ErrBadResource, errHas: "needs a value"},
		{name: "bad glob", in: "a=5/s,builtin=[", wantErr: ErrBadResource, errHas: "glob"},
		{name: "bad name", in: "a b=5/s", wantErr: ErrBadResource, errHas: "letters"},
		{name: "reserved name", in: "memory=20", wantErr: ErrBadResource, errHas: "measured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResource(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), tt.in) {
					t.Fatalf("error %q should name the declaration and contain %q", err, tt.errHas)
				}
				return
			}
			if math.Abs(got.Rate-tt.want.Rate) > 1e-12 {
				t.Fatalf("rate = %v, want %v", got.Rate, tt.want.Rate)
			}
			got.Rate = tt.want.Rate
			if got.Name != tt.want.Name || got.Kind != tt.want.Kind || got.Burst != tt.want.Burst || got.Size != tt.want.Size ||
				got.Scope != tt.want.Scope || !slices.Equal(got.Builtins, tt.want.Builtins) || !slices.Equal(got.Hosts, tt.want.Hosts) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			// String round-trips.
			again, err := ParseResource(got.String())
			if err != nil || again.String() != got.String() {
				t.Fatalf("round trip of %q: %q, %v", got.String(), again.String(), err)
			}
		})
	}
}

func TestParseResourcesDuplicate(t *testing.T) {
	if _, err := ParseResources([]string{"a=1", "b=2/s", "a=3"}); !errors.Is(err, ErrBadResource) {
		t.Fatalf("err = %v, want ErrBadResource", err)
	}
	specs, err := ParseResources([]string{"a=1", "b=2/s"})
	if err != nil || len(specs) != 2 {
		t.Fatalf("specs = %v, %v", specs, err)
	}
}

func TestScope(t *testing.T) {
	tests := []struct {
		name   string
		scope  Scope
		shared bool
		group  string
	}{
		{"node", ScopeNode, false, ""},
		{"empty", "", false, ""},
		{"cluster", ScopeCluster, true, ""},
		{"group", GroupScope("nat-a"), true, "nat-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.scope.Shared() != tt.shared || tt.scope.Group() != tt.group {
				t.Fatalf("%q: shared %v group %q", tt.scope, tt.scope.Shared(), tt.scope.Group())
			}
		})
	}
}

func TestMatches(t *testing.T) {
	gh, _ := ParseResource("github_api=5000/h,host=api.github.com")
	anyHost, _ := ParseResource("out=10/s,builtin=http.*")
	wild, _ := ParseResource("gh=10/s,host=*.github.com,builtin=http.get")
	none, _ := ParseResource("lic=5")
	tests := []struct {
		name    string
		spec    ResourceSpec
		builtin string
		args    string
		want    bool
	}{
		{"host matches", gh, "http.get", `{"url":"https://api.github.com/repos"}`, true},
		{"host with port and case", gh, "http.post", `{"body":"x","url":"https://API.GitHub.com:443/x"}`, true},
		{"other host", gh, "http.get", `{"url":"https://example.com/"}`, false},
		{"not http", gh, "kv.get", `{"url":"https://api.github.com/"}`, false},
		{"no url", gh, "http.get", `{}`, false},
		{"bad json", gh, "http.get", `{`, false},
		{"any host", anyHost, "http.get", `{"url":"https://x.org"}`, true},
		{"any host, no args", anyHost, "http.get", ``, true},
		{"host glob", wild, "http.get", `{"url":"https://uploads.github.com/"}`, true},
		{"host glob, other builtin", wild, "http.post", `{"url":"https://uploads.github.com/"}`, false},
		{"unbound", none, "http.get", `{"url":"https://x.org"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.spec.Matches(tt.builtin, json.RawMessage(tt.args)); got != tt.want {
				t.Fatalf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := NewTokenBucket(10, 20, t0) // 10/s, burst 20
	if ok, _ := b.Take(20, t0); !ok {
		t.Fatal("a full bucket should give its burst")
	}
	ok, wait := b.Take(1, t0)
	if ok || wait <= 0 || wait > 101*time.Millisecond {
		t.Fatalf("empty bucket: ok=%v wait=%v, want a wait of 100ms", ok, wait)
	}
	if ok, _ := b.Take(1, t0.Add(wait)); !ok {
		t.Fatal("waiting the returned time should be enough")
	}
	if ok, wait := b.Take(21, t0.Add(time.Hour)); ok || wait >= 0 {
		t.Fatalf("more than the burst: ok=%v wait=%v, want never (negative)", ok, wait)
	}
	if got := b.Free(t0.Add(time.Hour)); got != 20 {
		t.Fatalf("refill is capped at the burst: %v", got)
	}
	if ok, _ := b.Take(5, t0.Add(-time.Hour)); !ok { // a clock going back earns nothing but spends
		t.Fatal("take with an older clock")
	}
	b.Put(3, t0.Add(time.Hour))
	if got := b.Free(t0.Add(time.Hour)); got != 18 {
		t.Fatalf("after put: %v, want 18", got)
	}
	b.SetLimit(5, 10, t0.Add(time.Hour))
	if r, bu := b.Limit(); r != 5 || bu != 10 || b.Free(t0.Add(time.Hour)) != 10 {
		t.Fatalf("after SetLimit: rate %v burst %v free %v", r, bu, b.Free(t0.Add(time.Hour)))
	}
	zero := NewTokenBucket(0, 1, t0)
	zero.Take(1, t0)
	if ok, wait := zero.Take(1, t0.Add(time.Hour)); ok || wait >= 0 {
		t.Fatalf("a zero rate never refills: %v %v", ok, wait)
	}
}

func TestTokenBucketConcurrent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := NewTokenBucket(1, 100, t0)
	got := make(chan int, 8)
	for range 8 {
		go func() {
			n := 0
			for range 50 {
				if ok, _ := b.Take(1, t0); ok {
					n++
				}
			}
			got <- n
		}()
	}
	total := 0
	for range 8 {
		total += <-got
	}
	if total != 100 {
		t.Fatalf("took %d tokens from a burst of 100", total)
	}
}
