package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus/bustest"
)

// versionScript makes three steps that each echo the version's tag, so that
// a response whose steps came from two versions would show it.
func versionScript(tag string) map[string]string {
	return map[string]string{"main.star": fmt.Sprintf(`
def main(input):
    return [test.echo(%[1]q), test.echo(%[1]q), test.echo(%[1]q)]
`, tag)}
}

// triggerLoad sends total POST /v1/run/{name} requests over conns keep-alive
// connections and returns each request's latency. check sees every response.
func triggerLoad(b *testing.B, url string, conns, total int, check func(status int, version string, body []byte)) []time.Duration {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	lat := make([]time.Duration, total)
	var next atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", strings.NewReader(`{"customer":"acme"}`))
				if err != nil {
					b.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t0)
				check(resp.StatusCode, resp.Header.Get(api.VersionHeader), body)
			}
		}()
	}
	wg.Wait()
	return lat
}

func quantile(d []time.Duration, q float64) float64 {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1e3
}

// BenchmarkHTTPTrigger measures a 3-step deployed script behind POST
// /v1/run/{name} on one node, over real loopback TCP: "seq" one request at a
// time (p50/p99 latency), "64conns" 64 concurrent keep-alive connections
// (req/s, p50/p99), and "64conns+deploys" the same load while the script is
// redeployed 20 times, alternating two versions: it fails on any non-200
// response or any response whose steps mix versions.
func BenchmarkHTTPTrigger(b *testing.B) {
	productionTelemetry()
	var execs atomic.Int64
	n := newTestNode(b, Options{Registry: testRegistry(&execs)})
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	ctx := context.Background()
	deploy := func(tag string) {
		if _, err := n.Deploy(ctx, api.DeployRequest{Script: api.Script{Name: "b3", Main: "main.star", Files: versionScript(tag)}}); err != nil {
			b.Fatal(err)
		}
	}
	deploy("v1")
	url := srv.URL + "/v1/run/b3"
	var failed, mixed atomic.Int64
	check := func(status int, version string, body []byte) {
		if status != http.StatusOK {
			failed.Add(1)
			return
		}
		// The body is ["vX","vX","vX"]: one tag, three times.
		tag := bytes.Trim(bytes.Split(bytes.TrimSpace(body), []byte(","))[0], `["`)
		if !bytes.Equal(bytes.TrimSpace(body), []byte(fmt.Sprintf(`[%q,%q,%q]`, tag, tag, tag))) {
			mixed.Add(1)
		}
	}
	triggerLoad(b, url, 8, 200, check) // warm up connections and caches

	for _, tc := range []struct {
		name    string
		conns   int
		deploys int
	}{{"seq", 1, 0}, {"64conns", 64, 0}, {"64conns+deploys", 64, 20}} {
		b.Run(tc.name, func(b *testing.B) {
			failed.Store(0)
			mixed.Store(0)
			done := make(chan struct{})
			if tc.deploys > 0 {
				// Spread the deploys over the expected duration of the load
				// (about 0.5 ms a request at 64 connections, from "64conns").
				every := time.Duration(b.N) * 300 * time.Microsecond / time.Duration(tc.deploys+1)
				go func() {
					defer close(done)
					for i := 0; i < tc.deploys; i++ {
						time.Sleep(every) // pacing the deploys through the load, not synchronisation
						deploy([]string{"v2", "v1"}[i%2])
					}
				}()
			} else {
				close(done)
			}
			b.ResetTimer()
			start, cpu0 := time.Now(), bustest.ProcessCPU()
			lat := triggerLoad(b, url, tc.conns, b.N, check)
			elapsed, cpu := time.Since(start), bustest.ProcessCPU()-cpu0
			b.StopTimer()
			<-done
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			b.ReportMetric(quantile(lat, 0.5), "p50-ms")
			b.ReportMetric(quantile(lat, 0.99), "p99-ms")
			if f, m := failed.Load(), mixed.Load(); f > 0 || m > 0 {
				b.Fatalf("%d failed responses, %d mixing versions", f, m)
			}
		})
	}
}

// BenchmarkDeployVisible measures deploy-to-visible on a live 3-node
// cluster: from the start of a deploy through one node until every node's
// own view (not a read of the bucket) starts new runs on the new version.
func BenchmarkDeployVisible(b *testing.B) {
	productionTelemetry()
	var execs atomic.Int64
	nodes := startCluster3(b, func(int) Options { return Options{Registry: testRegistry(&execs), NoRecovery: true} })
	ctx := context.Background()
	visible := func(n *Node, version int) bool {
		ls := n.deployer.Current("vis")
		return ls != nil && ls.Deployment.Version >= version
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		d, err := nodes[i%3].Deploy(ctx, api.DeployRequest{Script: api.Script{Name: "vis", Main: "main.star", Files: versionScript(fmt.Sprint("v", i))}})
		if err != nil {
			b.Fatal(err)
		}
		deadline := start.Add(10 * time.Second)
		for _, n := range nodes {
			for !visible(n, d.Version) {
				if time.Now().After(deadline) {
					b.Fatalf("version %d not visible on %s after 10s", d.Version, n.Name())
				}
				time.Sleep(50 * time.Microsecond) // polling interval
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(quantile(lat, 0.5), "p50-ms")
	b.ReportMetric(quantile(lat, 0.99), "p99-ms")
}
