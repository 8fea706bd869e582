package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/droverhq/drover/bus"
)

// Flag values that refuse what makes no sense while the command line is
// parsed, so that both ctl and engine exit 2 before anything starts. pflag
// reports a refusal as: invalid argument "0" for "--step-timeout" flag: <why>.

// countValue is a whole number above zero.
type countValue struct{ p *uint64 }

func (v countValue) String() string { return strconv.FormatUint(*v.p, 10) }
func (v countValue) Type() string   { return "uint" }

func (v countValue) Set(s string) error {
	n, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil || n == 0 {
		return fmt.Errorf("want a whole number above 0, such as 50000000")
	}
	*v.p = n
	return nil
}

// durationValue is a Go duration above zero, or at least zero when zeroOK.
type durationValue struct {
	p      *time.Duration
	zeroOK bool
}

func (v durationValue) String() string { return v.p.String() }
func (v durationValue) Type() string   { return "duration" }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil && strings.HasSuffix(s, "d"):
		return fmt.Errorf("want a duration such as 30s, 5m or 2h; write days in hours (24h, 720h)")
	case err != nil:
		return fmt.Errorf("want a duration such as 300ms, 30s, 5m or 2h")
	case d < 0 || d == 0 && !v.zeroOK:
		floor := "above 0"
		if v.zeroOK {
			floor = "0 or more"
		}
		return fmt.Errorf("want a duration %s, such as 300ms, 30s, 5m or 2h", floor)
	}
	*v.p = d
	return nil
}

// syncValue is a sync policy (bus.ParseSync): always, interval or
// interval:DURATION. set records that the flag was given.
type syncValue struct {
	p   *bus.SyncPolicy
	set *bool
}

func (v syncValue) String() string { return v.p.String() }
func (v syncValue) Type() string   { return "policy" }

func (v syncValue) Set(s string) error {
	p, err := bus.ParseSync(s)
	if err != nil {
		return fmt.Errorf("want always, interval or interval:DURATION (e.g. interval:1s)")
	}
	*v.p, *v.set = p, true
	return nil
}

// syncPolicy is the node's sync policy: the flag if it was given, else
// $DROVER_SYNC, else always (nothing acknowledged is lost on power loss).
func syncPolicy(flag bus.SyncPolicy, given bool, getenv func(string) string) (bus.SyncPolicy, error) {
	if given {
		return flag, nil
	}
	if s := getenv("DROVER_SYNC"); s != "" {
		p, err := bus.ParseSync(s)
		if err != nil {
			return p, usageErrorf("DROVER_SYNC=%q: want always, interval or interval:DURATION (e.g. interval:1s)", s)
		}
		return p, nil
	}
	return bus.SyncAlways, nil
}

// syncHelp is the help of --sync.
const syncHelp = "`POLICY` of the embedded NATS store: always (a step is acknowledged once it is on disk: nothing acknowledged is lost on power loss) or interval[:DURATION] (written to disk every DURATION, default 2m: faster; a power loss can lose what was acknowledged since) (default $DROVER_SYNC, else always)"

// choiceValue is one of a fixed list of words.
type choiceValue struct {
	p      *string
	values []string
}

func (v choiceValue) String() string { return *v.p }
func (v choiceValue) Type() string   { return "string" }

func (v choiceValue) Set(s string) error {
	for _, c := range v.values {
		if s == c {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("want %s", orList(v.values))
}

// orList is "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// addMaxExecSteps declares --max-exec-steps, shared by ctl and engine; 0 in
// *p means the engine's default.
func addMaxExecSteps(fs *pflag.FlagSet, p *uint64, usage string) {
	fs.Var(countValue{p}, "max-exec-steps", usage)
}

// flagError turns a flag that cobra or pflag refused into a usage error
// (exit 2). A long flag written with one dash, as Go's flag package allows
// (-name), would otherwise read as a string of unknown shorthands: the error
// names the flag to write instead. args is the command line being parsed.
func flagError(args []string) func(*cobra.Command, error) error {
	return func(cmd *cobra.Command, err error) error {
		for _, arg := range args {
			if arg == "--" {
				break
			}
			word, ok := strings.CutPrefix(arg, "-")
			name, _, _ := strings.Cut(word, "=")
			if ok && len(name) > 1 && !strings.HasPrefix(name, "-") && cmd.Flags().Lookup(name) != nil {
				return usageErrorf("%s: flags take two dashes: --%s", arg, word)
			}
		}
		return &exitError{code: ExitUsage, err: err, usage: true}
	}
}
