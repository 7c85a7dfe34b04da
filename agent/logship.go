package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/drover-cd/drover/agentproto"
)

// Log shipping.
const (
	chunkMax      = 256 << 10              // the most one POST carries
	chunkEager    = 64 << 10               // this much waiting is sent at once
	shipEvery     = 100 * time.Millisecond // else what waits is sent this often
	shipBackoff   = 100 * time.Millisecond
	shipBackoffMx = 2 * time.Second
	dropWarnEvery = 10 * time.Second
)

// logBuf holds a step's masked output until the server has taken it. It never blocks
// the step: past limit, the newest bytes are dropped and counted, and once the server
// takes the log again a line saying how many goes into the stream where they were.
type logBuf struct {
	limit int
	step  string
	log   *slog.Logger
	kick  chan struct{} // something is worth sending now

	mu       sync.Mutex
	data     []byte // output the server has not taken yet
	sent     int64  // the offset of data[0]: bytes the server took
	last     byte   // the last byte of the stream so far
	dropped  int64  // bytes dropped since the last note of it
	warned   time.Time
	closed   bool
	reported int64 // dropped bytes noted in the stream, in all
}

func newLogBuf(limit int64, step string, log *slog.Logger) *logBuf {
	return &logBuf{limit: int(limit), step: step, log: log, kick: make(chan struct{}, 1)}
}

// Write takes p whole, holding what fits.
func (b *logBuf) Write(p []byte) (int, error) {
	n := len(p)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return n, nil
	}
	room := max(b.limit-len(b.data), 0)
	if len(p) > room {
		b.dropped += int64(len(p) - room)
		p = p[:room]
		if time.Since(b.warned) >= dropWarnEvery {
			b.warned = time.Now()
			b.log.Warn(fmt.Sprintf("server unreachable: holding %s of step %s's log, dropped %s",
				size(int64(len(b.data)+len(p))), b.step, size(b.dropped)))
		}
	}
	if len(p) > 0 {
		b.data = append(b.data, p...)
		b.last = p[len(p)-1]
	}
	eager := len(b.data) >= chunkEager
	b.mu.Unlock()
	if eager {
		b.poke()
	}
	return n, nil
}

func (b *logBuf) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// close says the step's output has ended.
func (b *logBuf) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.poke()
}

// next is the chunk to send and its offset; done reports the output ended and all of it
// was taken.
func (b *logBuf) next() (chunk []byte, off int64, done bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.data) == 0 && b.dropped > 0 {
		b.noteDropped()
	}
	if len(b.data) == 0 {
		return nil, b.sent, b.closed
	}
	return bytes.Clone(b.data[:min(len(b.data), chunkMax)]), b.sent, false
}

// taken drops the n bytes at the head the server took and, when bytes were dropped
// meanwhile, puts the line saying so where they were.
func (b *logBuf) taken(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data = b.data[:copy(b.data, b.data[n:])]
	b.sent += int64(n)
	if b.dropped > 0 {
		b.noteDropped()
	}
}

// noteDropped puts the line saying how many bytes were dropped into the stream. b.mu is
// held.
func (b *logBuf) noteDropped() {
	note := fmt.Sprintf("[drover agent: %d bytes of output dropped here: the server could not take the log in time and %s was held]\n",
		b.dropped, size(int64(b.limit)))
	if b.last != '\n' && (b.sent > 0 || len(b.data) > 0) {
		note = "\n" + note
	}
	b.log.Warn(fmt.Sprintf("the server takes step %s's log again; %s of it were dropped", b.step, size(b.dropped)))
	b.reported += b.dropped
	b.dropped = 0
	b.data = append(b.data, note...)
	b.last = '\n'
	b.warned = time.Time{}
}

// accepted is how many bytes the server took.
func (b *logBuf) accepted() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent
}

// ship sends l's output to the server until it has all of it, the server refuses it
// (then the step is cancelled and l marked refused), or ctx ends.
func (l *lease) ship(ctx context.Context) {
	defer close(l.shipped)
	b := l.out
	tick := time.NewTicker(shipEvery)
	defer tick.Stop()
	bo := backoff{min: shipBackoff, max: shipBackoffMx}
	url := l.a.url(agentproto.LeasePath + strconv.FormatInt(l.p.ID, 10) + "/log")
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.kick:
		}
		for {
			chunk, off, done := b.next()
			if done {
				return
			}
			if len(chunk) == 0 {
				break
			}
			status, err := l.post(ctx, url, chunk, map[string]string{
				"Content-Type":          "application/octet-stream",
				agentproto.OffsetHeader: strconv.FormatInt(off, 10),
			})
			switch {
			case err == nil:
				bo.reset()
				b.taken(len(chunk))
				continue
			case refusal(status):
				l.refuse(fmt.Errorf("send the log: %w", err))
				return
			}
			if ctx.Err() != nil {
				return
			}
			l.log.Debug("send the log; will retry", "err", err, "sent", b.accepted())
			if !bo.wait(ctx) {
				return
			}
		}
	}
}
