package alert

import (
	"time"

	"github.com/rs/zerolog"
)

// Clock is the time as Alerts sees it, for tests to replace.
type Clock = clock

// NewForTest is New with a clock of the test's, the waits between the
// attempts of a notification and the grace Close gives queued ones.
func NewForTest(cfg Config, notifiers map[string]Notifier, log zerolog.Logger, c Clock, retry []time.Duration, grace time.Duration) (*Alerts, error) {
	return newAlerts(cfg, notifiers, log, timing{clock: c, retry: retry, grace: grace})
}
