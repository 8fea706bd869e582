package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Partitions. The journal and the runs index are split into partitions by
// run, so that their writes are spread over several stream leaders: run ids
// started in partition p > 0 end in "-<p>" (RunID), and a run's partition is
// read from its id alone (RunPartition), with no table for nodes to agree
// on. Partition 0 is the stream DROVER_JOURNAL on drover.journal.> and the
// bucket drover_runs, as before partitions existed; partition p > 0 is the
// stream DROVER_JOURNAL_<p> on drover.journal<p>.> (streams' subjects may not
// overlap) and the bucket drover_runs_<p>. Growing the number of partitions
// moves nothing: new runs go to the new ones, old runs stay where their ids
// say.

// MaxPartitions bounds Options.Partitions.
const MaxPartitions = 64

// ulidLen is the length of a ULID, a run id in partition 0.
const ulidLen = 26

// RunPartition returns the partition of run: the number after the "-" that
// follows its ULID, or 0 (a run id of another form is in partition 0).
func RunPartition(run string) int {
	if len(run) < ulidLen+2 || run[ulidLen] != '-' || run[ulidLen+1] < '1' || run[ulidLen+1] > '9' {
		return 0
	}
	p, err := strconv.Atoi(run[ulidLen+1:])
	if err != nil || p >= MaxPartitions {
		return 0
	}
	return p
}

// RunID returns the id of a run in partition p whose id in partition 0
// would be id.
func RunID(id string, p int) string {
	if p <= 0 {
		return id
	}
	return id + "-" + strconv.Itoa(p)
}

// JournalPrefixOf returns the subject prefix of partition p's journal
// entries (JournalPrefix for partition 0).
func JournalPrefixOf(p int) string {
	if p <= 0 {
		return JournalPrefix
	}
	return "drover.journal" + strconv.Itoa(p) + "."
}

// JournalStreamOf returns the name of partition p's journal stream.
func JournalStreamOf(p int) string {
	if p <= 0 {
		return JournalStream
	}
	return JournalStream + "_" + strconv.Itoa(p)
}

// RunsBucketOf returns the name of partition p's runs-index bucket.
func RunsBucketOf(p int) string {
	if p <= 0 {
		return RunsBucket
	}
	return RunsBucket + "_" + strconv.Itoa(p)
}

// journalStreamOf returns the journal stream holding subject, or matching
// filter (a subject or a filter under one partition's prefix).
func journalStreamOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, "drover.journal")
	if !ok {
		return JournalStream
	}
	digits, _, _ := strings.Cut(rest, ".")
	if digits == "" { // partition 0: drover.journal.<run>…
		return JournalStream
	}
	p, err := strconv.Atoi(digits)
	if err != nil {
		return JournalStream
	}
	return JournalStreamOf(p)
}

// journalConfig is the configuration of partition p's journal stream.
func (b *Bus) journalConfig(p int) jetstream.StreamConfig {
	if b.runLog.Load() {
		return b.runLogJournalConfig(p)
	}
	return b.writeOnceJournalConfig(p)
}

// runLogJournalConfig is the journal stream with run logs.
func (b *Bus) runLogJournalConfig(p int) jetstream.StreamConfig {
	cfg := b.writeOnceJournalConfig(p)
	cfg.Description = "Drover run journals: a log subject per run, and write-once entries"
	cfg.MaxMsgsPerSubject, cfg.DiscardNewPerSubject = -1, false
	cfg.AllowMsgTTL = runLogGuard
	return cfg
}

// runLogGuard is set on a journal stream with run logs (AllowMsgTTL; no
// message has a TTL) so that a node of an earlier release, which would
// update the stream back to one message per subject and so truncate every
// run's log to its last entry, is refused instead: JetStream does not let
// an update clear AllowMsgTTL ("message TTL status can not be disabled").
const runLogGuard = true

// writeOnceJournalConfig is the journal stream of one message per subject.
func (b *Bus) writeOnceJournalConfig(p int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 JournalStreamOf(p),
		Description:          "Drover run journals: one write-once message per subject",
		Subjects:             []string{JournalPrefixOf(p) + ">"},
		Storage:              jetstream.FileStorage,
		Retention:            jetstream.LimitsPolicy,
		MaxMsgsPerSubject:    1,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxAge:               b.opts.JournalMaxAge,
		Duplicates:           min(journalDuplicates, b.opts.JournalMaxAge),
		Replicas:             b.opts.Replicas,
		AllowDirect:          true,
	}
}

// runsConfig is the configuration of partition p's runs-index bucket.
func (b *Bus) runsConfig(p int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: RunsBucketOf(p), Description: "Drover runs index", History: 1,
		Storage: jetstream.FileStorage, TTL: b.opts.JournalMaxAge, Replicas: b.opts.Replicas}
}

// partitions is what the bus knows of the partitions in NATS.
type partitions struct {
	mu      sync.Mutex
	n       int                         // partitions known to exist
	checked time.Time                   // when NATS was last asked
	looking bool                        // NATS is being asked, in the background
	streams map[string]jetstream.Stream // journal streams by name, looked up once
}

// partitionsRecheck is how long a listing trusts the number of partitions
// it last found (a node started with more partitions may have made some),
// and bounds each look for more.
const partitionsRecheck = 5 * time.Second

// ensurePartitions creates partitions 1 to n-1 (partition 0 is made with
// the other streams) and finds those other nodes made.
func (b *Bus) ensurePartitions(ctx context.Context, n int) error {
	for p := 1; p < n; p++ {
		created, err := b.createOrUpdate(ctx, b.journalConfig(p))
		if err != nil {
			return fmt.Errorf("bus: journal stream of partition %d: %w", p, err)
		}
		kv, err := b.js.CreateOrUpdateKeyValue(ctx, b.runsConfig(p))
		if err != nil {
			return fmt.Errorf("bus: runs bucket of partition %d: %w", p, err)
		}
		b.mu.Lock()
		b.buckets[RunsBucketOf(p)] = &KV{kv: kv, b: b, durable: true}
		b.mu.Unlock()
		if created {
			b.spreadLeader(ctx, p)
		}
	}
	_, err := b.Partitions(ctx)
	return err
}

// createOrUpdate creates a stream, reporting whether it was new, or updates it.
func (b *Bus) createOrUpdate(ctx context.Context, cfg jetstream.StreamConfig) (created bool, err error) {
	_, err = b.js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		_, err = b.js.CreateOrUpdateStream(ctx, cfg)
		return false, err
	}
	return err == nil, err
}

// spreadLeader asks, on a cluster, for the leader of partition p's journal
// to move to the p-th server (by name) of its replicas, so that the
// partitions' leaders are spread over the servers rather than left to the
// first election.
func (b *Bus) spreadLeader(ctx context.Context, p int) {
	if want, leader, ok := b.preferredLeader(ctx, p); ok && want != leader {
		b.stepDown(ctx, p, want)
	}
}

// preferredLeader returns the server that should lead partition p's journal
// (the p-th by name of its servers) and the one that does; ok is false when
// the stream is not replicated, or the preferred server is not a current,
// online replica (it cannot take over now).
func (b *Bus) preferredLeader(ctx context.Context, p int) (want, leader string, ok bool) {
	s, err := b.js.Stream(ctx, JournalStreamOf(p))
	if err != nil {
		return "", "", false
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil || len(info.Cluster.Replicas) == 0 || info.Cluster.Leader == "" {
		return "", "", false
	}
	leader = info.Cluster.Leader
	servers := []string{leader}
	ready := map[string]bool{leader: true}
	for _, r := range info.Cluster.Replicas {
		servers = append(servers, r.Name)
		ready[r.Name] = r.Current && !r.Offline
	}
	slices.Sort(servers)
	want = servers[p%len(servers)]
	return want, leader, ready[want]
}

// stepDown asks partition p's journal leader to hand over to server want.
func (b *Bus) stepDown(ctx context.Context, p int, want string) error {
	req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, want)
	reply, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+JournalStreamOf(p), []byte(req))
	if err != nil {
		return err
	}
	var resp struct {
		Error *jetstream.APIError `json:"error"`
	}
	if json.Unmarshal(reply.Data, &resp) == nil && resp.Error != nil {
		return resp.Error
	}
	return nil
}

// rebalanceEvery is how often a node of a cluster takes back the leadership
// of the partitions it should lead, which an election (after a server was
// lost or restarted) may have moved elsewhere.
const rebalanceEvery = 30 * time.Second

// RebalanceLeaders asks for the leadership of every partition this bus's
// embedded server should lead (see spreadLeader) and does not, and returns
// how many it asked for. Each server asks only for its own partitions, so
// that servers do not contend; a bus connected to an external NATS leaves
// leadership to that cluster's operators.
func (b *Bus) RebalanceLeaders(ctx context.Context) int {
	if b.ns == nil || !b.ns.JetStreamIsClustered() {
		return 0
	}
	parts, err := b.Partitions(ctx)
	if err != nil {
		return 0
	}
	asked := 0
	for p := range parts {
		if want, leader, ok := b.preferredLeader(ctx, p); ok && want == b.ns.Name() && leader != want {
			b.stepDown(ctx, p, want)
			asked++
		}
	}
	return asked
}

// rebalance runs RebalanceLeaders every rebalanceEvery until ctx ends.
func (b *Bus) rebalance(ctx context.Context) {
	tick := time.NewTicker(rebalanceEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			b.RebalanceLeaders(rctx)
			cancel()
		}
	}
}

// Partitions returns the number of partitions in NATS: those this bus made,
// and those other nodes made. Once it knows some, it answers at once and
// looks for others in the background, every partitionsRecheck at most:
// listing streams is a request that a busy server answers last.
func (b *Bus) Partitions(ctx context.Context) (int, error) {
	b.parts.mu.Lock()
	n := b.parts.n
	if n > 0 && !b.parts.looking && time.Since(b.parts.checked) >= partitionsRecheck {
		b.parts.looking = true
		go func() {
			lctx, cancel := context.WithTimeout(context.Background(), partitionsRecheck)
			defer cancel()
			b.countPartitions(lctx) // on an error, the count found before stands
			b.parts.mu.Lock()
			b.parts.looking, b.parts.checked = false, time.Now()
			b.parts.mu.Unlock()
		}()
	}
	b.parts.mu.Unlock()
	if n > 0 {
		return n, nil
	}
	return b.countPartitions(ctx)
}

// countPartitions lists the journal's streams, and returns and records the
// number of partitions they make.
func (b *Bus) countPartitions(ctx context.Context) (int, error) {
	if h := b.hooks; h != nil && h.streamNames != nil {
		h.streamNames()
	}
	found := 1
	names := b.js.StreamNames(ctx, jetstream.WithStreamListSubject("drover.>"))
	for name := range names.Name() {
		if rest, ok := strings.CutPrefix(name, JournalStream+"_"); ok {
			if p, err := strconv.Atoi(rest); err == nil && p < MaxPartitions {
				found = max(found, p+1)
			}
		}
	}
	if err := names.Err(); err != nil {
		return 1, fmt.Errorf("bus: list the journal's partitions: %w", err)
	}
	b.parts.mu.Lock()
	defer b.parts.mu.Unlock()
	b.parts.n, b.parts.checked = max(found, b.parts.n), time.Now()
	return b.parts.n, nil
}

// RunsBucketFor returns the runs-index bucket of partition p, opening it if
// another node made it since this bus started; ErrNotFound if nobody did.
func (b *Bus) RunsBucketFor(ctx context.Context, p int) (*KV, error) {
	if kv := b.Bucket(RunsBucketOf(p)); kv != nil {
		return kv, nil
	}
	kv, err := b.js.KeyValue(ctx, RunsBucketOf(p))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w: runs bucket of partition %d", ErrNotFound, p)
	}
	if err != nil {
		return nil, fmt.Errorf("bus: runs bucket of partition %d: %w", p, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if k := b.buckets[RunsBucketOf(p)]; k != nil {
		return k, nil
	}
	k := &KV{kv: kv, b: b, durable: true}
	b.buckets[RunsBucketOf(p)] = k
	return k, nil
}

// journalStream returns the journal stream holding subject (or matching
// filter), looked up once.
func (b *Bus) journalStream(ctx context.Context, subject string) (jetstream.Stream, error) {
	name := journalStreamOf(subject)
	b.parts.mu.Lock()
	s := b.parts.streams[name]
	b.parts.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := b.js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	b.parts.mu.Lock()
	if b.parts.streams == nil {
		b.parts.streams = map[string]jetstream.Stream{}
	}
	b.parts.streams[name] = s
	b.parts.mu.Unlock()
	return s, nil
}
