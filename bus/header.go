package bus

// Header carries message headers. Keys keep their exact case: W3C trace context
// uses lower-case "traceparent", which http.Header-style canonicalisation breaks.
type Header map[string][]string

// Get returns the first value of key.
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// Keys lists the header keys (for propagation carriers).
func (h Header) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Msg is a message read from NATS.
type Msg struct {
	Subject string
	Header  Header
	Data    []byte
	Seq     uint64 // stream sequence, 0 for core messages
	Reply   string // a core message's reply subject
}
