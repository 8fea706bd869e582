package logship

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Logstash batches: the lines written per flush of the connection's buffer.
const (
	logstashBatchLines = 1024
	logstashBatchBytes = 1 << 20
	// writeTimeout is how long a batch may wait for Logstash to read it
	// before the connection counts as broken.
	writeTimeout = 30 * time.Second
	dialTimeout  = 5 * time.Second
)

// logstash ships a queue to a Logstash tcp input (codec json_lines).
type logstash struct {
	*dest
	s    *Shipper
	addr string

	conn       net.Conn
	unwatch    func() bool  // stops closing conn when Close gives up
	peerClosed *atomic.Bool // Logstash closed conn
	bw         *bufio.Writer
	batch      [][]byte
	reconnect  int // attempts since the connection last worked
}

func newLogstash(s *Shipper, cfg Config) *logstash {
	return &logstash{
		dest: &dest{name: "logstash", q: newQueue(cfg.Buffer, cfg.BufferBytes, 0)},
		s:    s,
		addr: cfg.Logstash.Address,
		bw:   bufio.NewWriterSize(nil, 64<<10),
	}
}

// run ships the queue until Close.
func (l *logstash) run() {
	defer l.disconnect()
	for l.s.waitLines(l.q) {
		if l.conn == nil {
			if err := l.connect(); err != nil {
				if !l.retry(err) {
					return
				}
				continue
			}
		}
		l.batch = l.q.peek(l.batch[:0], logstashBatchLines, logstashBatchBytes)
		if err := l.send(l.batch); err != nil {
			if l.peerClosed.Load() {
				err = fmt.Errorf("logstash %s closed the connection", l.addr)
			}
			l.disconnect()
			if !l.retry(err) {
				return
			}
			continue // the same lines again
		}
		l.q.remove(len(l.batch), len(l.batch), 0)
		clear(l.batch)
		l.reconnect = 0
		l.s.reached(l.dest)
	}
}

// retry records err and waits before the next attempt; it reports false if
// Close gave up.
func (l *logstash) retry(err error) bool {
	if l.s.hard.Err() != nil {
		return false // err is Close giving up
	}
	l.s.failed(l.dest, err, false)
	l.reconnect++
	return l.s.sleep(l.s.backoff(l.reconnect))
}

// connect dials Logstash. A goroutine reads the connection, so that
// Logstash closing it is seen before the next batch is written into it
// (the tcp input sends nothing).
func (l *logstash) connect() error {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(l.s.hard, "tcp", l.addr)
	if err != nil {
		return err
	}
	closed := new(atomic.Bool)
	l.conn, l.peerClosed = conn, closed
	l.unwatch = context.AfterFunc(l.s.hard, func() { conn.Close() })
	l.bw.Reset(conn)
	l.s.wg.Go(func() {
		io.Copy(io.Discard, conn)
		closed.Store(true)
		conn.Close()
	})
	l.dest.mu.Lock()
	l.dest.connected = true
	l.dest.mu.Unlock()
	return nil
}

// send writes lines, each followed by a newline, and flushes them.
func (l *logstash) send(lines [][]byte) error {
	l.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	for _, line := range lines {
		l.bw.Write(line)
		l.bw.WriteByte('\n')
	}
	return l.bw.Flush() // the first error of the writes, if any
}

func (l *logstash) disconnect() {
	if l.conn == nil {
		return
	}
	l.unwatch()
	l.conn.Close()
	l.conn = nil
	l.bw.Reset(nil)
}
