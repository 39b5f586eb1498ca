package kinesistest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// subKey identifies a subscription slot: one per consumer and shard.
type subKey struct{ consumerARN, shard string }

// subscription is the live SubscribeToShard stream of a slot. Server.mu
// guards the subs map; started and takeover never change.
type subscription struct {
	started  time.Time     // real time, for the takeover window
	takeover chan struct{} // closed when a newer subscription takes the slot
}

// subscribeStream is one running SubscribeToShard response.
type subscribeStream struct {
	s     *Server
	w     http.ResponseWriter
	rc    *http.ResponseController
	enc   *eventstream.Encoder
	buf   []byte
	sent  int // SubscribeToShardEvents sent, heartbeats included
	fault *faultState
}

func (ss *subscribeStream) write(msg eventstream.Message) error {
	if err := ss.enc.Encode(ss.w, msg); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	if err := ss.rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w", err)
	}
	return nil
}

func eventMessage(eventType string, payload []byte) eventstream.Message {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("event"))
	m.Headers.Set(":event-type", eventstream.StringValue(eventType))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Payload = payload
	return m
}

func exceptionMessage(code, msg string) eventstream.Message {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("exception"))
	m.Headers.Set(":exception-type", eventstream.StringValue(code))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Payload, _ = json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	return m
}

// subscribeToShard serves SubscribeToShard. Errors found before the stream
// starts are ordinary AWS JSON errors; later ones are exception events.
func (s *Server) subscribeToShard(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		ConsumerARN      string
		ShardId          string
		StartingPosition struct {
			Type           string
			SequenceNumber string
			Timestamp      *float64
		}
	}
	if err := decode(body, &in); err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	st, c, aerr := s.consumerLocked(consumerRef{ConsumerARN: in.ConsumerARN})
	var sh *shard
	if aerr == nil {
		aerr = s.checkSubscribeLocked(st, c)
	}
	if aerr == nil {
		if sh = st.shard(in.ShardId); sh == nil {
			aerr = notFound("Shard %s in stream %s under account %s does not exist", in.ShardId, st.name, s.cfg.account)
		}
	}
	if aerr == nil {
		if f := s.callFaultLocked("SubscribeToShard", sh.id); f != nil {
			aerr = f.callError()
		}
	}
	var pos int
	if aerr == nil {
		pos, aerr = s.positionLocked(sh, in.StartingPosition.Type, in.StartingPosition.SequenceNumber, in.StartingPosition.Timestamp)
	}
	key := subKey{in.ConsumerARN, in.ShardId}
	if aerr == nil {
		if old := s.subs[key]; old != nil {
			if time.Since(old.started) < s.cfg.takeoverAfter {
				aerr = errf("ResourceInUseException", "Another active subscription exists for consumer %s and shard %s", in.ConsumerARN, in.ShardId)
			} else {
				close(old.takeover)
			}
		}
	}
	if aerr != nil {
		s.mu.Unlock()
		writeError(w, aerr)
		return
	}
	sub := &subscription{started: time.Now(), takeover: make(chan struct{})}
	s.subs[key] = sub
	s.opened[sh.id]++
	fault := s.streamFaultLocked(sh.id)
	s.bumpLocked()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.subs[key] == sub {
			delete(s.subs, key)
		}
		s.bumpLocked()
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	ss := &subscribeStream{s: s, w: w, rc: http.NewResponseController(w), enc: eventstream.NewEncoder(), fault: fault}
	if !s.cfg.noInitialResponse {
		if ss.write(eventMessage("initial-response", []byte("{}"))) != nil {
			return
		}
	}
	ss.run(r, st, c, sh, pos, sub)
}

func (s *Server) checkSubscribeLocked(st *stream, c *consumer) *apiError {
	if c.status(s.cfg.clock()) != "ACTIVE" {
		return errf("ResourceInUseException", "Consumer %s is not ACTIVE", c.arn)
	}
	if st.status(s.cfg.clock()) != "ACTIVE" {
		return errf("ResourceInUseException", "Stream %s is not ACTIVE", st.name)
	}
	return nil
}

// run sends events until the shard ends, the lifetime passes, the client
// leaves, a takeover or fault ends it, or the server closes.
func (ss *subscribeStream) run(r *http.Request, st *stream, c *consumer, sh *shard, pos int, sub *subscription) {
	s := ss.s
	ctx := r.Context()
	life := time.NewTimer(s.cfg.subscriptionLife)
	defer life.Stop()
	beat := time.NewTimer(s.cfg.heartbeat)
	defer beat.Stop()

	// wait blocks for d or until the subscription must end; it reports
	// whether to go on.
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-life.C:
		case <-sub.takeover:
			ss.write(exceptionMessage("ResourceInUseException", "Another subscription took over this shard"))
		case <-ctx.Done():
		case <-s.done:
		}
		return false
	}

	for {
		s.mu.Lock()
		gone := s.streams[st.name] != st || st.consumers[c.name] != c
		n := len(sh.records)
		notify := sh.notify
		end, size := pos, 0
		for end < n && end-pos < s.cfg.maxRecordsPerEvent {
			d := len(sh.records[end].data)
			if end > pos && size+d > s.cfg.maxEventBytes {
				break
			}
			size += d
			end++
		}
		recs := sh.records[pos:end]
		now := s.cfg.clock().UnixNano()
		behind := millisBehindLocked(sh, end, now)
		// Without shard end events (as kinesis-mock), a closed shard read to
		// its end just goes quiet: heartbeats until the lifetime ends.
		last := sh.closed && end == n && !s.cfg.noShardEndEvent
		var children []*shard
		if last {
			children = childShards(st, sh)
		}
		s.mu.Unlock()

		if gone {
			ss.write(exceptionMessage("ResourceNotFoundException", "The stream or consumer no longer exists"))
			return
		}
		if len(recs) > 0 || last {
			if !ss.beforeEvent(wait) {
				return
			}
			if ss.sendEvent(sh, pos, recs, behind, last, children) != nil {
				return
			}
			pos = end
			if last {
				return
			}
			beat.Reset(s.cfg.heartbeat)
			if s.cfg.shardReadRate > 0 && size > 0 {
				if !wait(time.Duration(float64(size) / float64(s.cfg.shardReadRate) * float64(time.Second))) {
					return
				}
			}
			continue
		}

		select {
		case <-notify:
		case <-beat.C:
			if !ss.beforeEvent(wait) {
				return
			}
			if ss.sendEvent(sh, pos, nil, 0, false, nil) != nil {
				return
			}
			beat.Reset(s.cfg.heartbeat)
		case <-life.C:
			return
		case <-sub.takeover:
			ss.write(exceptionMessage("ResourceInUseException", "Another subscription took over this shard"))
			return
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
	}
}

// beforeEvent applies the subscription's stream fault when its turn has
// come, and reports whether to go on sending.
func (ss *subscribeStream) beforeEvent(wait func(time.Duration) bool) bool {
	f := ss.fault
	if f == nil || ss.sent != f.f.After {
		return true
	}
	ss.fault = nil
	switch f.f.Kind.kind {
	case kindReset:
		// net/http resets the HTTP/2 stream (or closes an HTTP/1.1
		// connection) and logs nothing for this panic value.
		panic(http.ErrAbortHandler)
	case kindErrorEvent:
		ss.write(exceptionMessage(f.f.Kind.code, "injected fault"))
		return false
	case kindStall:
		return wait(f.f.Kind.d)
	}
	return true
}

// sendEvent writes one SubscribeToShardEvent. recs start at index first.
// The last event of a closed shard carries ChildShards and a null
// ContinuationSequenceNumber.
func (ss *subscribeStream) sendEvent(sh *shard, first int, recs []record, behind int64, last bool, children []*shard) error {
	b := ss.buf[:0]
	b = append(b, '{')
	if last {
		b = appendChildShards(append(b, `"ChildShards":`...), children)
		b = append(b, `,"ContinuationSequenceNumber":null`...)
	} else {
		// The continuation is the last delivered record's number (or,
		// before any, the number just below the next record), so
		// AFTER_SEQUENCE_NUMBER resumes exactly after what was sent.
		b = append(b, `"ContinuationSequenceNumber":"`...)
		b = sh.appendSeq(b, uint64(first+len(recs)))
		b = append(b, '"')
	}
	b = append(b, `,"MillisBehindLatest":`...)
	b = strconv.AppendInt(b, behind, 10)
	b = append(b, `,"Records":`...)
	b = appendRecords(b, sh, first, recs)
	b = append(b, '}')
	ss.buf = b
	ss.sent++
	return ss.write(eventMessage("SubscribeToShardEvent", b))
}
