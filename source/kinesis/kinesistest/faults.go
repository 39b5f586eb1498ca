package kinesistest

import (
	"errors"
	"fmt"
	"time"
)

type faultKind int

const (
	kindReset faultKind = iota + 1
	kindErrorEvent
	kindHTTPError
	kindStall
	kindThrottle
)

// FaultKind is what an injected fault does. Build one with
// ResetConnection, ErrorEvent, HTTPError, Stall or Throttle.
type FaultKind struct {
	kind faultKind
	code string
	d    time.Duration
}

// ResetConnection aborts a SubscribeToShard stream mid-flight: the HTTP/2
// stream is reset (over HTTP/1.1, the connection is closed). The client
// sees a transport error, not an AWS error.
func ResetConnection() FaultKind { return FaultKind{kind: kindReset} }

// ErrorEvent ends a SubscribeToShard stream with an exception event of the
// given code, e.g. "ResourceInUseException" or "InternalFailureException".
func ErrorEvent(code string) FaultKind { return FaultKind{kind: kindErrorEvent, code: code} }

// HTTPError answers a call with the AWS error code, e.g.
// "LimitExceededException"; HTTP status 400, or 500 for InternalFailure.
func HTTPError(code string) FaultKind { return FaultKind{kind: kindHTTPError, code: code} }

// Stall holds a SubscribeToShard stream open sending nothing for d, then
// lets it continue (unless its lifetime ended meanwhile).
func Stall(d time.Duration) FaultKind { return FaultKind{kind: kindStall, d: d} }

// Throttle answers ProvisionedThroughputExceededException. On PutRecords
// with Fault.Shard set, only the records routed to that shard fail, each
// with that ErrorCode in the result, and FailedRecordCount counts them;
// elsewhere the whole call fails.
func Throttle() FaultKind { return FaultKind{kind: kindThrottle} }

func (k FaultKind) streamLevel() bool {
	return k.kind == kindReset || k.kind == kindErrorEvent || k.kind == kindStall
}

// Fault describes one injected fault.
//
// Call faults (HTTPError, Throttle) count matching calls: the fault fires on
// each matching call after the first After ones, Count times.
//
// Stream faults (ResetConnection, ErrorEvent, Stall) apply only to
// SubscribeToShard. They count subscriptions: each of the next Count
// matching subscriptions is hit after it has sent After
// SubscribeToShardEvents (the initial-response is not counted; heartbeats
// are).
type Fault struct {
	// Op is the operation, e.g. "SubscribeToShard", "GetRecords",
	// "PutRecords". Required.
	Op string
	// Shard limits the fault to calls naming this shard ID (in any stream).
	// Empty matches every call of Op.
	Shard string
	// After is how many matching calls or events pass untouched first.
	After int
	// Count is how many times the fault fires; 0 means once, negative
	// means until ClearFaults.
	Count int
	// Kind is what happens.
	Kind FaultKind
}

// faultState is an injected fault and its progress. Server.mu guards it.
type faultState struct {
	f     Fault
	seen  int
	fired int
}

func (fs *faultState) exhausted() bool {
	return fs.f.Count >= 0 && fs.fired >= max(fs.f.Count, 1)
}

// Inject adds a fault. It returns an error when the fault cannot apply to
// its operation.
func (s *Server) Inject(f Fault) error {
	switch {
	case f.Op == "":
		return errors.New("kinesistest: inject: fault needs an Op")
	case f.Kind.kind == 0:
		return errors.New("kinesistest: inject: fault needs a Kind")
	case f.Kind.streamLevel() && f.Op != "SubscribeToShard":
		return fmt.Errorf("kinesistest: inject: %s faults only apply to SubscribeToShard, not %s", f.Kind, f.Op)
	case (f.Kind.kind == kindErrorEvent || f.Kind.kind == kindHTTPError) && f.Kind.code == "":
		return fmt.Errorf("kinesistest: inject: %s needs an error code", f.Kind)
	case f.After < 0:
		return errors.New("kinesistest: inject: After must not be negative")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultState{f: f})
	return nil
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (k FaultKind) String() string {
	switch k.kind {
	case kindReset:
		return "ResetConnection"
	case kindErrorEvent:
		return "ErrorEvent(" + k.code + ")"
	case kindHTTPError:
		return "HTTPError(" + k.code + ")"
	case kindStall:
		return "Stall(" + k.d.String() + ")"
	case kindThrottle:
		return "Throttle"
	}
	return "none"
}

// callFaultLocked counts a call of op on shard (empty for calls checked
// before the shard is known, which match only faults without a Shard) and
// returns the call fault that fires on it, if any.
func (s *Server) callFaultLocked(op, shard string) *faultState {
	var hit *faultState
	for _, fs := range s.faults {
		if fs.f.Op != op || fs.f.Shard != shard || fs.f.Kind.streamLevel() || fs.exhausted() {
			continue
		}
		fs.seen++
		if hit == nil && fs.seen > fs.f.After {
			fs.fired++
			hit = fs
		}
	}
	return hit
}

// callError is the error a call fault answers with.
func (fs *faultState) callError() *apiError {
	if fs.f.Kind.kind == kindThrottle {
		return errf("ProvisionedThroughputExceededException", "Rate exceeded for shard (injected fault)")
	}
	return errf(fs.f.Kind.code, "injected fault on %s", fs.f.Op)
}

// streamFaultLocked claims the stream fault, if any, that applies to a new
// subscription to shard.
func (s *Server) streamFaultLocked(shard string) *faultState {
	for _, fs := range s.faults {
		if fs.f.Op != "SubscribeToShard" || !fs.f.Kind.streamLevel() || fs.exhausted() {
			continue
		}
		if fs.f.Shard != "" && fs.f.Shard != shard {
			continue
		}
		fs.fired++
		return fs
	}
	return nil
}
