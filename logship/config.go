package logship

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of the settings left at zero.
const (
	DefaultIndex         = "drover-logs"
	DefaultBuffer        = 10000
	DefaultBufferBytes   = 32 << 20
	DefaultMaxLine       = 64 << 10
	DefaultBatchLines    = 1000
	DefaultFlushInterval = time.Second
)

// MinMaxLine is the least MaxLine: room for a line's usual fields and the
// beginning of its message.
const MinMaxLine = 1024

// Config is the logs section of a node's configuration file: where the
// node's log lines go besides stderr. Its zero value ships nowhere.
//
//	logs:
//	  logstash:
//	    address: 127.0.0.1:5000
//	  elasticsearch:
//	    addresses: [http://127.0.0.1:9200]
//	    index: drover-logs
//	    username: elastic
//	    password: ${ES_PASSWORD}
//	  buffer: 10000
type Config struct {
	// Logstash is a Logstash tcp input with the json_lines codec.
	Logstash LogstashConfig `yaml:"logstash"`
	// Elasticsearch is an Elasticsearch cluster, written through _bulk.
	Elasticsearch ElasticsearchConfig `yaml:"elasticsearch"`
	// Level is the least level shipped ("debug", "info", "warn", ...;
	// default: every line). It applies to lines written with WriteLevel,
	// as zerolog does.
	Level string `yaml:"level"`
	// Buffer is how many lines each destination holds while it is slow or
	// down (default 10000); beyond it new lines are dropped, and counted.
	Buffer int `yaml:"buffer"`
	// BufferBytes bounds the size of those lines (default 32 MiB).
	BufferBytes int `yaml:"buffer_bytes"`
	// MaxLine is the longest line shipped whole, in bytes, its newline
	// excluded (default 64 KiB, at least 1024). A longer line is cut to
	// MaxLine (see the package documentation).
	MaxLine int `yaml:"max_line"`
}

// LogstashConfig is the logs.logstash section.
type LogstashConfig struct {
	// Address is the tcp input's host:port ("": no Logstash).
	Address string `yaml:"address"`
}

// ElasticsearchConfig is the logs.elasticsearch section.
type ElasticsearchConfig struct {
	// Addresses are the cluster's URLs, http://host:9200 (none: no
	// Elasticsearch).
	Addresses []string `yaml:"addresses"`
	// Index begins the name of the daily indices: a line goes to
	// INDEX-YYYY.MM.DD, the UTC day of its time (default drover-logs).
	Index string `yaml:"index"`
	// Username and Password authenticate with HTTP basic authentication.
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// APIKey authenticates instead of Username and Password: the
	// base64 "encoded" value Elasticsearch returns for a new key.
	APIKey string `yaml:"api_key" secret:"true"`
	// BatchLines is how many lines a _bulk request carries at most
	// (default 1000).
	BatchLines int `yaml:"batch_lines"`
	// FlushInterval is how long a line waits for its batch to fill
	// (default 1s).
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// Enabled reports whether c ships anywhere.
func (c Config) Enabled() bool {
	return c.Logstash.Address != "" || len(c.Elasticsearch.Addresses) > 0
}

// A ConfigError is a mistake in the logs section of a node's
// configuration. Setting is its path in the file (logs.logstash.address).
type ConfigError struct {
	Setting string
	Problem string
}

func (e *ConfigError) Error() string {
	return "logship: " + e.Setting + ": " + e.Problem
}

// Validate returns every mistake in c, each a *ConfigError (joined with
// errors.Join), or nil. No message holds a secret's value.
func (c Config) Validate() error {
	var errs []error
	bad := func(setting, format string, args ...any) {
		errs = append(errs, &ConfigError{Setting: setting, Problem: fmt.Sprintf(format, args...)})
	}
	if a := c.Logstash.Address; a != "" {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			bad("logs.logstash.address", "%q is not host:port; give the address of Logstash's tcp input (codec json_lines), e.g. 127.0.0.1:5000", a)
		}
	}
	es := c.Elasticsearch
	for i, a := range es.Addresses {
		setting := fmt.Sprintf("logs.elasticsearch.addresses[%d]", i)
		u, err := url.Parse(a)
		switch {
		case err != nil:
			bad(setting, "not a URL; give one such as http://127.0.0.1:9200")
		case u.Scheme != "http" && u.Scheme != "https":
			bad(setting, "%q: want an http:// or https:// URL, such as http://127.0.0.1:9200", u.Redacted())
		case u.Host == "":
			bad(setting, "%q has no host; give one such as http://127.0.0.1:9200", u.Redacted())
		}
	}
	if len(es.Addresses) == 0 && (es.Index != "" || es.Username != "" || es.Password != "" || es.APIKey != "" || es.BatchLines != 0 || es.FlushInterval != 0) {
		bad("logs.elasticsearch.addresses", "empty, though other elasticsearch settings are set; add addresses: [http://host:9200], or remove the section")
	}
	if err := checkIndex(es.Index); err != nil {
		bad("logs.elasticsearch.index", "%q %v", es.Index, err)
	}
	switch {
	case es.APIKey != "" && (es.Username != "" || es.Password != ""):
		bad("logs.elasticsearch.api_key", "set together with username/password; keep one way to authenticate")
	case es.Username != "" && es.Password == "":
		bad("logs.elasticsearch.password", "empty, though username is set; set it (password: ${ES_PASSWORD}), or remove username")
	case es.Password != "" && es.Username == "":
		bad("logs.elasticsearch.username", "empty, though password is set; set it (username: elastic)")
	}
	if es.BatchLines < 0 {
		bad("logs.elasticsearch.batch_lines", "%d is negative; give a number of lines, or 0 for %d", es.BatchLines, DefaultBatchLines)
	}
	if es.FlushInterval < 0 {
		bad("logs.elasticsearch.flush_interval", "%s is negative; give a duration such as 1s", es.FlushInterval)
	}
	if c.Level != "" {
		if _, err := zerolog.ParseLevel(c.Level); err != nil {
			bad("logs.level", "%q is not a level; give trace, debug, info, warn or error", c.Level)
		}
	}
	if c.Buffer < 0 {
		bad("logs.buffer", "%d is negative; give a number of lines, or 0 for %d", c.Buffer, DefaultBuffer)
	}
	if c.MaxLine < 0 || (c.MaxLine > 0 && c.MaxLine < MinMaxLine) {
		bad("logs.max_line", "%d: give a number of bytes, at least %d, or 0 for %d", c.MaxLine, MinMaxLine, DefaultMaxLine)
	}
	d := c.withDefaults()
	if c.BufferBytes < 0 || (c.BufferBytes > 0 && c.BufferBytes < d.MaxLine) {
		bad("logs.buffer_bytes", "%d: give a number of bytes, at least max_line (%d), or 0 for %d", c.BufferBytes, d.MaxLine, DefaultBufferBytes)
	}
	return errors.Join(errs...)
}

// checkIndex checks an index name prefix against Elasticsearch's rules.
func checkIndex(name string) error {
	switch {
	case name == "":
		return nil
	case name != strings.ToLower(name):
		return errors.New("has upper-case letters; Elasticsearch wants index names in lower case")
	case strings.ContainsAny(name, "\\/*?\"<>| ,#:"):
		return errors.New("holds a character Elasticsearch refuses in index names (\\ / * ? \" < > | space , # :)")
	case strings.IndexAny(name[:1], "-_+.") == 0:
		return errors.New("begins with - _ + or .; begin it with a letter or digit")
	case len(name) > 200:
		return errors.New("is too long; keep it under 200 bytes")
	}
	return nil
}

// withDefaults returns c with its zero settings replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Elasticsearch.Index == "" {
		c.Elasticsearch.Index = DefaultIndex
	}
	if c.Elasticsearch.BatchLines == 0 {
		c.Elasticsearch.BatchLines = DefaultBatchLines
	}
	if c.Elasticsearch.FlushInterval == 0 {
		c.Elasticsearch.FlushInterval = DefaultFlushInterval
	}
	if c.Buffer == 0 {
		c.Buffer = DefaultBuffer
	}
	if c.MaxLine == 0 {
		c.MaxLine = DefaultMaxLine
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = max(DefaultBufferBytes, c.MaxLine)
	}
	return c
}
