package dispatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/starlark/builtins"
)

// The wire form of direct requests and answers (Call, Serve): a version
// byte, then each field in a fixed order, strings and bytes prefixed by
// their length (uvarint), integers as varints, times as Unix nanoseconds.
// A request carries its trace context (W3C traceparent, tracestate) and an
// answer the name of its stored value, if any, in this form too: direct
// messages have no NATS headers, whose encoding and parsing by the client
// and the server cost more than the rest of the message. Encoding and
// decoding a step this way costs about a tenth of JSON, and both are on the
// path of every step sent directly. Inbox envelopes (Send) stay JSON with
// headers: they are stored, and read by operators.
//
// A field added to Envelope or api.ResultEntry must be added here too
// (TestWireCoversEveryField fails until it is), under a new version byte if
// nodes of the previous build would misread it.
const wireVersion = 1

var errWire = errors.New("dispatch: malformed direct message")

// encoder appends fields to a buffer.
type encoder []byte

func (e *encoder) str(s string) { *e = binary.AppendUvarint(*e, uint64(len(s))); *e = append(*e, s...) }
func (e *encoder) bytes(b []byte) {
	*e = binary.AppendUvarint(*e, uint64(len(b)))
	*e = append(*e, b...)
}
func (e *encoder) int(i int64) { *e = binary.AppendVarint(*e, i) }
func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.int(math.MinInt64)
		return
	}
	e.int(t.UnixNano())
}

// decoder reads fields from a buffer; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) time() time.Time {
	ns := d.int()
	if ns == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errWire
	}
}

func (d *decoder) version() {
	if len(d.b) == 0 || d.b[0] != wireVersion {
		d.err = fmt.Errorf("dispatch: direct message of an unknown version (a node of another build?)")
		return
	}
	d.b = d.b[1:]
}

// done returns the decoding error, if any.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return d.err
}

// encodeRequest returns the wire form of env and the trace context it
// travels with.
func encodeRequest(env Envelope, trace propagation.MapCarrier) []byte {
	e := encoder(make([]byte, 0, 160+len(env.Args)))
	e = append(e, wireVersion)
	e.str(env.Run)
	e.str(env.Step)
	e.int(int64(env.Attempt))
	e.str(env.Builtin)
	e.bytes(env.Args)
	e.str(env.ArgsRef)
	e.time(env.Deadline)
	e.str(env.Key)
	e.int(int64(len(env.Demand)))
	for _, d := range env.Demand {
		e.str(d.Resource)
		e = binary.LittleEndian.AppendUint64(e, math.Float64bits(d.Amount))
	}
	e.int(int64(len(trace)))
	for k, v := range trace {
		e.str(k)
		e.str(v)
	}
	return e
}

// decodeRequest parses a request's wire form. Args alias data.
func decodeRequest(data []byte) (Envelope, propagation.MapCarrier, error) {
	d := decoder{b: data}
	d.version()
	var env Envelope
	env.Run = d.str()
	env.Step = d.str()
	env.Attempt = int(d.int())
	env.Builtin = d.str()
	if a := d.bytes(); len(a) > 0 {
		env.Args = a
	}
	env.ArgsRef = d.str()
	env.Deadline = d.time()
	env.Key = d.str()
	for n := d.count(); n > 0 && d.err == nil; n-- {
		dm := meter.Demand{Resource: d.str()}
		if len(d.b) < 8 {
			d.fail()
			break
		}
		dm.Amount = math.Float64frombits(binary.LittleEndian.Uint64(d.b))
		d.b = d.b[8:]
		env.Demand = append(env.Demand, dm)
	}
	trace := propagation.MapCarrier{}
	for n := d.count(); n > 0 && d.err == nil; n-- {
		k := d.str()
		trace[k] = d.str()
	}
	if err := d.done(); err != nil {
		return env, nil, err
	}
	return env, trace, env.check()
}

// check reports what makes a decoded envelope unusable.
func (env Envelope) check() error {
	if env.Run == "" || env.Step == "" || env.Builtin == "" || env.Attempt < 1 {
		return fmt.Errorf("dispatch: direct request without a run, step, builtin or attempt (%q %q %q %d)", env.Run, env.Step, env.Builtin, env.Attempt)
	}
	for _, d := range env.Demand {
		if math.IsNaN(d.Amount) || math.IsInf(d.Amount, 0) || d.Amount < 0 || d.Resource == "" {
			return fmt.Errorf("dispatch: direct request of %s with a bad demand %q=%v", env.Builtin, d.Resource, d.Amount)
		}
	}
	return nil
}

// count reads the number of items that follow, each at least a byte.
func (d *decoder) count() int64 {
	n := d.int()
	if n < 0 || n > int64(len(d.b)) {
		d.fail()
		return 0
	}
	return n
}

// encodeAnswer returns the wire form of an executed step's result (its Call
// is the coordinator's, never sent) and of the journal value holding its
// Value when that is too large to travel (ref, or "").
func encodeAnswer(res api.ResultEntry, ref string) []byte {
	e := encoder(make([]byte, 0, 96+len(res.Value)))
	e = append(e, wireVersion)
	e.str(res.Step)
	e.bytes(res.Value)
	if res.Error == nil {
		e = append(e, 0)
	} else {
		e = append(e, 1)
		if res.Error.Retryable {
			e[len(e)-1] = 2
		}
		e.str(res.Error.Code)
		e.str(res.Error.Message)
	}
	e.str(res.Node)
	e.int(int64(res.Attempts))
	e.time(res.Start)
	e.int(int64(res.Duration))
	e.str(res.SpanID)
	e.str(ref)
	return e
}

// decodeAnswer parses an answer's wire form. Value aliases data.
func decodeAnswer(data []byte) (res api.ResultEntry, ref string, err error) {
	d := decoder{b: data}
	d.version()
	res.Step = d.str()
	if v := d.bytes(); len(v) > 0 {
		res.Value = v
	}
	if len(d.b) == 0 {
		d.fail()
	} else if flag := d.b[0]; flag > 2 {
		d.fail()
	} else if d.b = d.b[1:]; flag > 0 {
		code := d.str()
		res.Error = &builtins.StepError{Code: code, Message: d.str(), Retryable: flag == 2}
	}
	res.Node = d.str()
	res.Attempts = int(d.int())
	res.Start = d.time()
	res.Duration = time.Duration(d.int())
	res.SpanID = d.str()
	ref = d.str()
	return res, ref, d.done()
}
