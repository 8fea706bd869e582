package meter

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
)

// Host is what a node measures about its machine.
type Host struct {
	// CPU is the utilisation of all cores since the previous sample, from 0
	// to 1 (the first sample covers the time since boot).
	CPU float64 `json:"cpu"`
	// Cores is the number of cores the node may use: runtime.NumCPU, lowered
	// by a cgroup CPU quota.
	Cores int `json:"cores"`
	// Runnable is the number of tasks ready to run now: the larger of the
	// machine's runnable threads (procs_running in /proc/stat) and this
	// process's running and runnable goroutines, which the OS cannot see
	// queue behind GOMAXPROCS.
	Runnable float64 `json:"runnable"`
	// MemUsed and MemTotal are bytes of memory in use and available to the
	// node (the cgroup's limit when lower than the machine's); MemTotal is 0
	// when unknown.
	MemUsed  uint64 `json:"mem_used"`
	MemTotal uint64 `json:"mem_total"`
}

// A Sampler measures the host. On Linux it reads /proc/stat (CPU time
// deltas), /proc/meminfo and the cgroup v2 limits; where those are missing it
// falls back to the Go runtime's own figures (this process's CPU time and
// memory). The zero value is ready to use and safe for concurrent use.
type Sampler struct {
	// FS holds proc/ and sys/ (default: the root file system). Tests pass an
	// fstest.MapFS.
	FS fs.FS

	mu                  sync.Mutex
	prevBusy, prevTotal float64
	havePrev            bool
}

// Sample measures the host now.
func (s *Sampler) Sample() Host {
	fsys := s.FS
	if fsys == nil {
		fsys = os.DirFS("/")
	}
	h := Host{Cores: runtime.NumCPU()}
	if q, err := readCgroupCPU(fsys); err == nil && q > 0 && q < float64(h.Cores) {
		h.Cores = int(math.Ceil(q))
	}
	busy, total, running, err := readProcStat(fsys)
	if err != nil {
		busy, total = runtimeCPU()
	}
	h.Runnable = max(running, runtimeRunnable())
	s.mu.Lock()
	if s.havePrev && total > s.prevTotal {
		h.CPU = (busy - s.prevBusy) / (total - s.prevTotal)
	} else if total > 0 {
		h.CPU = busy / total
	}
	s.prevBusy, s.prevTotal, s.havePrev = busy, total, true
	s.mu.Unlock()
	h.CPU = math.Min(math.Max(h.CPU, 0), 1)

	if total, avail, err := readMeminfo(fsys); err == nil {
		h.MemTotal, h.MemUsed = total, total-min(avail, total)
	} else {
		h.MemUsed = runtimeMemory()
	}
	if limit, current, err := readCgroupMemory(fsys); err == nil && limit > 0 && (h.MemTotal == 0 || limit < h.MemTotal) {
		h.MemTotal, h.MemUsed = limit, current
	}
	return h
}

func readProcStat(fsys fs.FS) (busy, total, running float64, err error) {
	b, err := fs.ReadFile(fsys, "proc/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	if busy, total, err = parseProcStat(b); err != nil {
		return 0, 0, 0, err
	}
	if _, after, ok := bytes.Cut(b, []byte("\nprocs_running ")); ok {
		line, _, _ := bytes.Cut(after, []byte("\n"))
		running, _ = strconv.ParseFloat(string(bytes.TrimSpace(line)), 64)
	}
	return busy, total, running, nil
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat: busy is every
// column but idle and iowait; guest time is already counted in user.
func parseProcStat(b []byte) (busy, total float64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("meter: /proc/stat: no aggregate cpu line")
	}
	var v [10]float64
	for i := 1; i < len(f) && i <= 10; i++ {
		n, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0, 0, errors.New("meter: /proc/stat: bad number " + f[i])
		}
		v[i-1] = n
	}
	// user nice system idle iowait irq softirq steal guest guest_nice
	total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]
	return total - v[3] - v[4], total, nil
}

func readMeminfo(fsys fs.FS) (total, avail uint64, err error) {
	b, err := fs.ReadFile(fsys, "proc/meminfo")
	if err != nil {
		return 0, 0, err
	}
	return parseMeminfo(b)
}

// parseMeminfo returns MemTotal and MemAvailable (or MemFree on old kernels)
// in bytes.
func parseMeminfo(b []byte) (total, avail uint64, err error) {
	var free uint64
	haveAvail := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		switch k {
		case "MemTotal":
			total = n
		case "MemAvailable":
			avail, haveAvail = n, true
		case "MemFree":
			free = n
		}
	}
	if total == 0 {
		return 0, 0, errors.New("meter: /proc/meminfo: no MemTotal")
	}
	if !haveAvail {
		avail = free
	}
	return total, avail, nil
}

// readCgroupMemory reads the cgroup v2 memory limit and usage; limit is 0
// when unlimited.
func readCgroupMemory(fsys fs.FS) (limit, current uint64, err error) {
	mx, err := fs.ReadFile(fsys, "sys/fs/cgroup/memory.max")
	if err != nil {
		return 0, 0, err
	}
	cur, err := fs.ReadFile(fsys, "sys/fs/cgroup/memory.current")
	if err != nil {
		return 0, 0, err
	}
	return parseCgroupMemory(mx, cur)
}

func parseCgroupMemory(mx, cur []byte) (limit, current uint64, err error) {
	current, err = strconv.ParseUint(strings.TrimSpace(string(cur)), 10, 64)
	if err != nil {
		return 0, 0, errors.New("meter: memory.current: " + err.Error())
	}
	if m := strings.TrimSpace(string(mx)); m != "max" {
		if limit, err = strconv.ParseUint(m, 10, 64); err != nil {
			return 0, 0, errors.New("meter: memory.max: " + err.Error())
		}
	}
	return limit, current, nil
}

// readCgroupCPU returns the cgroup v2 CPU quota in cores, or 0 when there is
// none.
func readCgroupCPU(fsys fs.FS) (float64, error) {
	b, err := fs.ReadFile(fsys, "sys/fs/cgroup/cpu.max")
	if err != nil {
		return 0, err
	}
	return parseCgroupCPU(b)
}

func parseCgroupCPU(b []byte) (float64, error) {
	f := strings.Fields(string(b))
	if len(f) == 0 || len(f) > 2 {
		return 0, errors.New("meter: cpu.max: want \"QUOTA PERIOD\"")
	}
	if f[0] == "max" {
		return 0, nil
	}
	quota, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, errors.New("meter: cpu.max: " + err.Error())
	}
	period := 100000.0
	if len(f) == 2 {
		if period, err = strconv.ParseFloat(f[1], 64); err != nil || period <= 0 {
			return 0, errors.New("meter: cpu.max: bad period " + f[1])
		}
	}
	return quota / period, nil
}

var runtimeSamples = []metrics.Sample{
	{Name: "/cpu/classes/total:cpu-seconds"},
	{Name: "/cpu/classes/idle:cpu-seconds"},
	{Name: "/memory/classes/total:bytes"},
	{Name: "/sched/goroutines/running:goroutines"},
	{Name: "/sched/goroutines/runnable:goroutines"},
}

var runtimeMu sync.Mutex

// runtimeCPU returns this process's busy and available CPU seconds as the Go
// runtime estimates them.
func runtimeCPU() (busy, total float64) {
	runtimeMu.Lock()
	defer runtimeMu.Unlock()
	metrics.Read(runtimeSamples)
	total = runtimeSamples[0].Value.Float64()
	return total - runtimeSamples[1].Value.Float64(), total
}

// runtimeRunnable returns this process's running and runnable goroutines.
func runtimeRunnable() float64 {
	runtimeMu.Lock()
	defer runtimeMu.Unlock()
	metrics.Read(runtimeSamples)
	var n float64
	for _, s := range runtimeSamples[3:] {
		if s.Value.Kind() == metrics.KindUint64 {
			n += float64(s.Value.Uint64())
		}
	}
	return n
}

// runtimeMemory returns the bytes this process has mapped.
func runtimeMemory() uint64 {
	runtimeMu.Lock()
	defer runtimeMu.Unlock()
	metrics.Read(runtimeSamples)
	return runtimeSamples[2].Value.Uint64()
}
