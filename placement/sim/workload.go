package sim

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/droverhq/drover/meter"
)

const (
	mib = 1 << 20
	gib = 1 << 30

	// hop is the dispatch hop of a step placed off its coordinator.
	hop = 200 * time.Microsecond
	// transfer is the extra time of a data-local step run elsewhere.
	transfer = 300 * time.Millisecond
)

// A kind of step: what it costs and what it demands.
type kind struct {
	builtin string
	weight  float64 // share of arrivals
	cpu     func(r *rand.Rand) float64
	meanCPU float64 // core-seconds, for the arrival rate
	par     float64 // cores it can keep busy
	io      float64 // seconds off the CPU (network, database)
	mem     float64 // bytes it really uses (none is declared anywhere)
	args    json.RawMessage
	local   bool           // its data lives on one node
	declare []meter.Demand // what its integration declares (cores, memory)
}

func fixed(v float64) func(*rand.Rand) float64 { return func(*rand.Rand) float64 { return v } }

// Heavy-tailed CPU: Pareto with shape 1.5 and mean 0.2s, truncated at 10s.
const (
	paretoShape = 1.5
	paretoScale = 0.2 * (paretoShape - 1) / paretoShape
	paretoCap   = 10.0
)

func pareto(r *rand.Rand) float64 {
	return math.Min(paretoScale/math.Pow(1-r.Float64(), 1/paretoShape), paretoCap)
}

// paretoMean is the mean of the truncated Pareto.
var paretoMean = paretoShape*paretoScale/(paretoShape-1) -
	math.Pow(paretoScale, paretoShape)*math.Pow(paretoCap, 1-paretoShape)/(paretoShape-1)

// kinds is the workload's mix.
var kinds = []*kind{
	{builtin: "sim.tiny", weight: 0.42, cpu: fixed(0.002), meanCPU: 0.002, par: 1, mem: 10 * mib},
	{builtin: "sim.crunch", weight: 0.25, cpu: pareto, meanCPU: paretoMean, par: 1, mem: 100 * mib,
		declare: []meter.Demand{{Resource: meter.Memory, Amount: 100 * mib}}},
	{builtin: "sim.render", weight: 0.05, cpu: fixed(2), meanCPU: 2, par: 4, mem: 1 * gib,
		declare: []meter.Demand{{Resource: meter.CPU, Amount: 4}, {Resource: meter.Memory, Amount: 1 * gib}}},
	{builtin: "sim.transform", weight: 0.03, cpu: fixed(0.3), meanCPU: 0.3, par: 1, mem: 6 * gib, // memory under-declared
		declare: []meter.Demand{{Resource: meter.Memory, Amount: 256 * mib}}},
	{builtin: "http.get", weight: 0.10, cpu: fixed(0.002), meanCPU: 0.002, par: 1, io: 0.15, mem: 20 * mib,
		args: json.RawMessage(`{"url":"https://api.partner.example/v1/items"}`)},
	{builtin: "sql.query", weight: 0.08, cpu: fixed(0.01), meanCPU: 0.01, par: 1, io: 0.6, mem: 50 * mib,
		args: json.RawMessage(`{"sql":"select 1"}`)},
	{builtin: "sim.scan", weight: 0.07, cpu: fixed(0.1), meanCPU: 0.1, par: 1, mem: 500 * mib, local: true,
		declare: []meter.Demand{{Resource: meter.Memory, Amount: 500 * mib}}},
}

// meanCPU is the CPU of an average step.
func meanCPU() float64 {
	m := 0.0
	for _, k := range kinds {
		m += k.weight * k.meanCPU
	}
	return m
}

// Bursts: every burstPeriod the arrival rate triples for burstLen; the rate
// between bursts is lowered so that the mean load is the scenario's.
const (
	burstPeriod = 10 * time.Second
	burstLen    = 1500 * time.Millisecond
	burstFactor = 3.0
)

// arrivals draws the steps that arrive during window at mean load (the
// fraction of the cluster's cores their CPU needs).
func arrivals(r *rand.Rand, load float64, window time.Duration, cores float64, nodes int) []*step {
	lambda := load * cores / meanCPU()
	frac := burstLen.Seconds() / burstPeriod.Seconds()
	base := lambda / (1 - frac + burstFactor*frac)
	peak := base * burstFactor
	offset := time.Duration(r.Int64N(int64(burstPeriod)))
	inBurst := func(t time.Duration) bool { return (t+offset)%burstPeriod < burstLen }
	var steps []*step
	t := 0.0
	for {
		t += r.ExpFloat64() / peak
		at := time.Duration(t * float64(time.Second))
		if at >= window {
			return steps
		}
		if !inBurst(at) && r.Float64() >= base/peak {
			continue
		}
		u, k := r.Float64(), kinds[len(kinds)-1]
		for _, c := range kinds {
			if u < c.weight {
				k = c
				break
			}
			u -= c.weight
		}
		st := &step{id: len(steps), kind: k, arrive: at, cpu: k.cpu(r), prefer: -1}
		if k.local {
			st.prefer = r.IntN(nodes)
		}
		st.ideal = k.io + st.cpu/k.par
		steps = append(steps, st)
	}
}

// lowerBound is an offline bound on the makespan no placement can beat: the
// latest arrival plus its ideal time; the CPU work arriving after any instant
// spread over every live core; the API calls arriving after any instant
// through all source IPs' buckets; the database time through the pool.
func lowerBound(steps []*step, cores float64, kill time.Duration, killedCores float64, apiRate, apiBurst float64, dbPool float64) time.Duration {
	ss := append([]*step(nil), steps...)
	sort.SliceStable(ss, func(i, j int) bool { return ss[i].arrive < ss[j].arrive })
	lb := 0.0
	var work, db float64
	api := 0
	for i := len(ss) - 1; i >= 0; i-- {
		st := ss[i]
		a := st.arrive.Seconds()
		lb = math.Max(lb, a+st.ideal)
		work += st.cpu
		lb = math.Max(lb, finishWork(a, work, cores, kill.Seconds(), cores-killedCores))
		if st.kind.builtin == "http.get" {
			api++
			lb = math.Max(lb, a+math.Max(0, (float64(api)-apiBurst)/apiRate)+st.ideal)
		}
		if st.kind.builtin == "sql.query" {
			db += st.ideal
			lb = math.Max(lb, a+db/dbPool)
		}
	}
	return time.Duration(lb * float64(time.Second))
}

// finishWork returns when work core-seconds starting at s can finish on
// cores, which drop to after at kill (kill ≤ 0: never).
func finishWork(s, work, cores, kill, after float64) float64 {
	switch before := (kill - s) * cores; {
	case kill <= 0:
		return s + work/cores
	case s >= kill:
		return s + work/after
	case work <= before:
		return s + work/cores
	default:
		return kill + (work-before)/after
	}
}
