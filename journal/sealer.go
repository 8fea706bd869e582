package journal

import (
	"cmp"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/bus"
)

// DefaultSweepEvery is how often a Sealer looks for ended runs that nobody
// sealed.
const DefaultSweepEvery = 10 * time.Minute

// SealerOptions configure a Sealer.
type SealerOptions struct {
	// SweepEvery is how often to sweep (default DefaultSweepEvery); the
	// first sweep is at Run.
	SweepEvery time.Duration
	// Logger is told of runs that could not be sealed (they are tried again
	// at the next sweep); nil means no logging.
	Logger *zerolog.Logger
	// Workers is how many runs are sealed at once (default 4): sealing is
	// three requests to the journal's leader per run, and must keep up with
	// runs ending.
	Workers int
}

// overflowSweep is how soon a sweep follows runs dropped from a full queue.
const overflowSweep = 30 * time.Second

// A Sealer seals ended runs' journals in the background: the runs it is
// given (Add: a coordinator's runs as they end), and those a sweep finds,
// which ended while no node sealed them (their coordinator stopped first, or
// the data dir was written before journals were sealed: sweeping is also
// the upgrade of an older data dir).
type Sealer struct {
	s        *Store
	opts     SealerOptions
	queue    chan string
	overflow chan struct{} // a run was dropped from the full queue
	done     chan struct{}
	pending  atomic.Int64 // runs queued or being sealed
}

// NewSealer returns a sealer of the journals in s. Start it with Run.
func (s *Store) NewSealer(opts SealerOptions) *Sealer {
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = DefaultSweepEvery
	}
	if opts.Logger == nil {
		nop := zerolog.Nop()
		opts.Logger = &nop
	}
	opts.Workers = cmp.Or(max(opts.Workers, 0), 4)
	return &Sealer{s: s, opts: opts, queue: make(chan string, 4096), overflow: make(chan struct{}, 1), done: make(chan struct{})}
}

// Add asks for run, which has ended, to be sealed. It never blocks: a run
// that does not fit in the queue is found by a sweep, 30 s later at most. A
// run whose end this Store wrote as one subject (its log, or a sealed part)
// has nothing to seal and is not queued.
func (z *Sealer) Add(run string) {
	if _, whole := z.s.whole.LoadAndDelete(run); whole {
		return
	}
	z.pending.Add(1)
	select {
	case z.queue <- run:
	default:
		z.pending.Add(-1)
		select {
		case z.overflow <- struct{}{}:
		default:
		}
	}
}

// Run seals what is added, Workers runs at a time, and sweeps, at once and
// then every SweepEvery (sooner after an overflow), until ctx ends; then it
// seals what is still queued, within drain, and returns.
func (z *Sealer) Run(ctx context.Context, drain time.Duration) {
	defer close(z.done)
	// Queued runs are sealed under a context that outlives ctx by drain.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(drain, cancel) })()
	var wg sync.WaitGroup
	defer wg.Wait()
	for range z.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case run := <-z.queue:
					z.seal(sctx, run)
					z.pending.Add(-1)
				case <-ctx.Done():
					for {
						select {
						case run := <-z.queue:
							z.seal(sctx, run)
							z.pending.Add(-1)
						default:
							return
						}
					}
				}
			}
		}()
	}
	next := time.Now()
	sweep := time.NewTimer(0)
	defer sweep.Stop()
	for {
		select {
		case <-sweep.C:
			z.Sweep(ctx)
			next = time.Now().Add(z.opts.SweepEvery)
			sweep.Reset(z.opts.SweepEvery)
		case <-z.overflow:
			if soon := time.Now().Add(overflowSweep); soon.Before(next) {
				next = soon
				sweep.Reset(overflowSweep)
			}
		case <-ctx.Done():
			return
		}
	}
}

// Pending counts the runs added and not yet sealed (queued, or being sealed).
func (z *Sealer) Pending() int64 { return z.pending.Load() }

// Wait returns once Run has returned.
func (z *Sealer) Wait() { <-z.done }

// Sweep seals every run that has ended and is not sealed yet, oldest first
// and Workers at a time, and returns how many it sealed.
func (z *Sealer) Sweep(ctx context.Context) int {
	parts, err := z.s.b.Partitions(ctx)
	var subjects []string
	for p := 0; p < parts && err == nil; p++ {
		var subs []string
		subs, err = z.s.b.JournalSubjects(ctx, bus.JournalPrefixOf(p)+"*.end")
		subjects = append(subjects, subs...)
	}
	if err != nil {
		if ctx.Err() == nil {
			z.opts.Logger.Warn().Err(err).Msg("sweep journals to seal")
		}
		return 0
	}
	runs := make(chan string)
	var sealed atomic.Int64
	var wg sync.WaitGroup
	for range z.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run := range runs {
				if z.seal(ctx, run) {
					sealed.Add(1)
				}
			}
		}()
	}
	for _, subj := range subjects {
		if ctx.Err() != nil {
			break
		}
		run := strings.Split(subj, ".")[2] // drover.journal<p>.<run>.end
		runs <- run
	}
	close(runs)
	wg.Wait()
	if n := sealed.Load(); n > 0 {
		z.opts.Logger.Info().Int64("runs", n).Msg("sealed the journals of ended runs")
	}
	return int(sealed.Load())
}

func (z *Sealer) seal(ctx context.Context, run string) bool {
	sealed, err := z.s.Seal(ctx, run)
	if err != nil && ctx.Err() == nil {
		z.opts.Logger.Warn().Err(err).Str("run", run).Msg("seal journal; the next sweep tries again")
	}
	return sealed
}
