package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Run logs. Every line a run produces is published once, as a core message,
// on its run's subject (LogSubject), which the logs stream keeps as long as
// journals are kept: one run's lines, from every node, in the order the
// server received them. A live tail is a tap: the follower describes what it
// wants in the taps bucket, every node matches its runs' lines against the
// taps it knows and publishes the matching ones on the tap's subject. Nothing
// is published for a tap nobody holds, and no customer id is ever part of a
// subject or a stream's index.
const (
	// LogsStream keeps every run's log lines: drover.logs.<run>.
	LogsStream = "DROVER_LOGS"
	// LogsPrefix is the subject prefix of run log lines.
	LogsPrefix = "drover.logs."
	// TapPrefix is the subject prefix of live tails: drover.logtap.<tap>.
	TapPrefix = "drover.logtap."
	// TapsBucket holds the live tails being followed, one key per tap, each
	// refreshed by its follower; a tap not refreshed for TapTTL expires.
	TapsBucket = "drover_logtaps"
)

// TapTTL is how long a tap lives unless refreshed (followers refresh theirs
// every TapTTL/3).
const TapTTL = 30 * time.Second

// LogSubject returns the subject of run's log lines.
func LogSubject(run string) string { return LogsPrefix + run }

// TapSubject returns the subject on which the lines tap matches are
// published.
func TapSubject(tap string) string { return TapPrefix + tap }

// ensureLogs creates the logs stream and the taps bucket.
func (b *Bus) ensureLogs(ctx context.Context) error {
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        LogsStream,
		Description: "Drover run log lines, one subject per run",
		Subjects:    []string{LogsPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      b.opts.JournalMaxAge,
		Replicas:    b.opts.Replicas,
	})
	if err != nil {
		return fmt.Errorf("bus: logs stream: %w", err)
	}
	return nil
}

// PublishLog publishes one log line of run, without waiting for the server
// (a line is never worth slowing a run for; a line lost with a connection
// is lost).
func (b *Bus) PublishLog(run string, line []byte) error {
	return b.nc.Publish(LogSubject(run), line)
}

// PublishTap publishes a line that tap matches.
func (b *Bus) PublishTap(tap string, line []byte) error {
	return b.nc.Publish(TapSubject(tap), line)
}

// RunLogs calls fn with each stored log line of run, oldest first, from
// since (zero: all of them), until fn returns false or the lines stored
// when it was called are read. The lines are read whole first, by an
// ephemeral consumer, again from the start on a transient error (in a
// cluster, a consumer just made on one server may not answer another's
// fetch yet: "no responders").
func (b *Bus) RunLogs(ctx context.Context, run string, since time.Time, fn func(line []byte, at time.Time) bool) error {
	type line struct {
		data []byte
		at   time.Time
	}
	var lines []line
	err := retry(ctx, func(ctx context.Context) error {
		lines = lines[:0]
		cfg := jetstream.ConsumerConfig{
			FilterSubject:     LogSubject(run),
			DeliverPolicy:     jetstream.DeliverAllPolicy,
			AckPolicy:         jetstream.AckNonePolicy,
			InactiveThreshold: time.Minute,
			MemoryStorage:     true,
			Replicas:          1,
		}
		if !since.IsZero() {
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
		}
		cons, err := b.js.CreateConsumer(ctx, LogsStream, cfg)
		if err != nil {
			return err
		}
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			b.js.DeleteConsumer(dctx, LogsStream, cons.CachedInfo().Name)
			cancel()
		}()
		pending := cons.CachedInfo().NumPending
		for pending > 0 {
			batch, err := cons.FetchNoWait(int(min(pending, 1024)))
			if err != nil {
				return err
			}
			got := 0
			for m := range batch.Messages() {
				got++
				md, err := m.Metadata()
				if err != nil {
					return err
				}
				pending = md.NumPending
				lines = append(lines, line{m.Data(), md.Timestamp})
			}
			if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
				return err
			}
			if got == 0 {
				return nil // the lines counted as pending were removed since
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bus: logs of run %s: %w", run, err)
	}
	for _, l := range lines {
		if !fn(l.data, l.at) {
			return nil
		}
	}
	return nil
}
