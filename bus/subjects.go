package bus

import (
	"strings"
	"time"
)

// Streams, buckets and subjects. Everything Drover stores in NATS is named here.
const (
	// JournalStream holds every run's journal: one message per subject, written
	// once (MaxMsgsPerSubject 1, DiscardNew per subject).
	JournalStream = "DROVER_JOURNAL"
	// JournalPrefix is the subject prefix of partition 0's journal entries:
	// drover.journal.<run>.<kind>[.<step>] (see partitions.go).
	JournalPrefix = "drover.journal."

	// StepsStream prefixes the names of the step inboxes: each node's is
	// StepsStream_<node>, on drover.steps.<node> (see ensureSteps). The
	// journal, not these streams, is the source of truth.
	StepsStream = "DROVER_STEPS"
	// StepsPrefix is the subject prefix of step envelopes.
	StepsPrefix = "drover.steps."

	// NodesPrefix is the subject prefix of heartbeats, core messages (not a
	// replicated stream, so that a JetStream leader election cannot silence
	// healthy nodes): drover.nodes.<node>.
	NodesPrefix = "drover.nodes."
	// CancelPrefix is the subject prefix on which cancellations are broadcast
	// to every node, core messages: drover.cancel.<run>.
	CancelPrefix = "drover.cancel."
	// ReplyPrefix is the subject prefix of a coordinator's step replies, core
	// messages from the executing node's worker:
	// drover.reply.<node>.<nonce>.<token>.
	ReplyPrefix = "drover.reply."
	// ExecPrefix is the subject prefix of steps sent directly to the node
	// that executes them, core messages answered on a coordinator's reply
	// subject: drover.exec.<node>.
	ExecPrefix = "drover.exec."

	// RunsBucket is the runs index: one record per run and attribute index keys.
	RunsBucket = "drover_runs"
	// ScriptsBucket stores script sources by content hash.
	ScriptsBucket = "drover_scripts"
	// DataBucket backs the kv.* builtins.
	DataBucket = "drover_kv"
	// NodesBucket holds claims: which node adopts each run of a lost node.
	// Entries expire after NodesTTL.
	NodesBucket = "drover_nodes"
	// LimitsBucket holds the state of cluster- and group-scoped custom
	// resources (token buckets and pools shared by several nodes), one key
	// per resource, changed by compare-and-set. It is in memory: a cluster
	// restarted as a whole starts with full buckets and empty pools.
	LimitsBucket = "drover_limits"
	// TriggersBucket records the messages that started runs, by source and
	// message id (a hash of both), each valued with its run's id, so that a
	// message delivered again starts nothing. Entries expire after
	// TriggersTTL.
	TriggersBucket = "drover_triggers"
	// PinnedBucket is an object store of runs kept past retention, each a
	// self-contained export, with no expiry.
	PinnedBucket = "drover_pinned"
	// ValuesBucket is the object store of large journal values, by content
	// hash, kept as long as journals are.
	ValuesBucket = "drover_values"
)

// TriggersTTL is how long a message that started a run is remembered.
const TriggersTTL = 7 * 24 * time.Hour

// JournalSubject returns the subject of one journal entry of run: kind is
// "start", "tag", "call", "result" or "end"; key (a step id such as "3.2.1", or a
// tag sequence) may be empty.
func JournalSubject(run, kind, key string) string {
	prefix := JournalPrefixOf(RunPartition(run))
	var b strings.Builder
	b.Grow(len(prefix) + len(run) + len(kind) + len(key) + 2)
	b.WriteString(prefix)
	b.WriteString(run)
	b.WriteByte('.')
	b.WriteString(kind)
	if key != "" {
		b.WriteByte('.')
		b.WriteString(key)
	}
	return b.String()
}

// JournalFilter returns the subject filter that matches every entry of run.
func JournalFilter(run string) string { return JournalRunPrefix(run) + ">" }

// JournalRunPrefix returns the prefix of every subject of run's journal:
// its partition's prefix, the run and a dot.
func JournalRunPrefix(run string) string { return JournalPrefixOf(RunPartition(run)) + run + "." }

// NodeSubject returns the subject of node's heartbeats.
func NodeSubject(node string) string { return NodesPrefix + node }

// CancelSubject returns the subject on which the cancellation of run is
// broadcast.
func CancelSubject(run string) string { return CancelPrefix + run }

// ReplyInbox returns the prefix of the reply subjects of one coordinator
// incarnation (node, and a nonce that tells its restarts apart): a reply's
// subject is the prefix and a token; subscribe to the prefix and "*".
func ReplyInbox(node, nonce string) string { return ReplyPrefix + node + "." + nonce + "." }

// ExecSubject returns the subject on which node receives steps sent
// directly (package dispatch).
func ExecSubject(node string) string { return ExecPrefix + node }

// StepSubject returns the subject on which node receives step envelopes.
func StepSubject(node string) string { return StepsPrefix + node }

// ValidToken reports whether s can be one token of a subject (and so a run id,
// node name or step id part).
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.', c == '*', c == '>', c <= ' ', c == 0x7f:
			return false
		}
	}
	return true
}

// Defaults for stream limits.
const (
	// NodesTTL is how long a claim is kept.
	NodesTTL             = 10 * time.Second
	DefaultJournalMaxAge = 30 * 24 * time.Hour
	stepsMaxAge          = time.Hour
)
