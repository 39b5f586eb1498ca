package kinesistest

import (
	"errors"
	"fmt"
	"time"
)

// Option configures a Server.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type initStream struct {
	name   string
	shards int
}

type config struct {
	addr               string
	plain              bool
	region             string
	account            string
	clock              func() time.Time
	iteratorLifetime   time.Duration
	streamCreateDelay  time.Duration
	consumerDelay      time.Duration
	subscriptionLife   time.Duration
	heartbeat          time.Duration
	takeoverAfter      time.Duration
	noInitialResponse  bool
	noShardEndEvent    bool
	maxRecordsPerEvent int
	maxEventBytes      int
	shardReadRate      int
	maxRecordSize      int
	shardLimit         int
	maxConsumers       int
	streams            []initStream
}

func defaultConfig() config {
	return config{
		addr:               "127.0.0.1:0",
		region:             "us-east-1",
		account:            "123456789012",
		clock:              time.Now,
		iteratorLifetime:   5 * time.Minute,
		consumerDelay:      50 * time.Millisecond,
		subscriptionLife:   5 * time.Minute,
		heartbeat:          5 * time.Second,
		takeoverAfter:      5 * time.Second,
		maxRecordsPerEvent: 10000,
		maxEventBytes:      2 << 20,
		maxRecordSize:      1 << 20,
		shardLimit:         1000,
		maxConsumers:       20,
	}
}

func (c *config) validate() error {
	var errs []error
	pos := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	pos("iterator lifetime", c.iteratorLifetime)
	pos("subscription lifetime", c.subscriptionLife)
	pos("heartbeat interval", c.heartbeat)
	if c.streamCreateDelay < 0 || c.consumerDelay < 0 || c.takeoverAfter < 0 {
		errs = append(errs, errors.New("delays must not be negative"))
	}
	if c.maxRecordsPerEvent < 1 || c.maxEventBytes < 1 || c.maxRecordSize < 1 || c.shardLimit < 1 || c.maxConsumers < 1 {
		errs = append(errs, errors.New("limits must be at least 1"))
	}
	if c.shardReadRate < 0 {
		errs = append(errs, errors.New("shard read rate must not be negative"))
	}
	if c.clock == nil {
		errs = append(errs, errors.New("clock must not be nil"))
	}
	for _, s := range c.streams {
		if s.shards < 1 || !validName(s.name) {
			errs = append(errs, fmt.Errorf("stream %q with %d shards: need a valid name and at least 1 shard", s.name, s.shards))
		}
	}
	return errors.Join(errs...)
}

// WithAddr sets the listen address. Default "127.0.0.1:0", a free loopback
// port.
func WithAddr(addr string) Option { return optionFunc(func(c *config) { c.addr = addr }) }

// WithPlainHTTP serves plain HTTP instead of HTTPS: HTTP/1.1, and HTTP/2
// without TLS (h2c, prior knowledge) for clients that ask for it. Default
// HTTPS with a generated self-signed certificate and HTTP/2 by ALPN.
func WithPlainHTTP() Option { return optionFunc(func(c *config) { c.plain = true }) }

// WithRegion sets the region in ARNs. Default "us-east-1".
func WithRegion(r string) Option { return optionFunc(func(c *config) { c.region = r }) }

// WithAccountID sets the account in ARNs. Default "123456789012".
func WithAccountID(id string) Option { return optionFunc(func(c *config) { c.account = id }) }

// WithClock sets the clock used for arrival timestamps, iterator expiry,
// MillisBehindLatest, ListShards time filters and the CREATING → ACTIVE
// delays. Default time.Now. Timers that pace a subscription (heartbeat,
// lifetime, stalls, takeover window) use real time.
func WithClock(now func() time.Time) Option { return optionFunc(func(c *config) { c.clock = now }) }

// WithIteratorLifetime sets how long a shard iterator stays valid before
// GetRecords answers ExpiredIteratorException. Default 5 minutes, as AWS.
func WithIteratorLifetime(d time.Duration) Option {
	return optionFunc(func(c *config) { c.iteratorLifetime = d })
}

// WithStreamCreateDelay sets how long a new stream stays CREATING. Default
// 0: CreateStream's stream is ACTIVE at once.
func WithStreamCreateDelay(d time.Duration) Option {
	return optionFunc(func(c *config) { c.streamCreateDelay = d })
}

// WithConsumerActivationDelay sets how long a registered consumer stays
// CREATING before it turns ACTIVE. Default 50ms, so code that forgets to
// wait for ACTIVE fails in tests too.
func WithConsumerActivationDelay(d time.Duration) Option {
	return optionFunc(func(c *config) { c.consumerDelay = d })
}

// WithSubscriptionLifetime sets when SubscribeToShard ends its stream.
// Default 5 minutes, as AWS.
func WithSubscriptionLifetime(d time.Duration) Option {
	return optionFunc(func(c *config) { c.subscriptionLife = d })
}

// WithHeartbeatInterval sets how often a subscription with nothing to
// deliver sends an event with no records. Default 5s.
func WithHeartbeatInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.heartbeat = d })
}

// WithTakeoverAfter sets the window after a subscription starts in which a
// second SubscribeToShard for the same consumer and shard gets
// ResourceInUseException; after it, the new call takes over and the old
// stream ends with a ResourceInUseException event. Default 5s, as AWS.
func WithTakeoverAfter(d time.Duration) Option {
	return optionFunc(func(c *config) { c.takeoverAfter = d })
}

// WithoutInitialResponse makes SubscribeToShard omit the initial-response
// event, as kinesis-mock and LocalStack do: the first event is a
// SubscribeToShardEvent. The stock aws-sdk-go-v2 client then fails with
// "expected initial-response". Default off.
func WithoutInitialResponse() Option {
	return optionFunc(func(c *config) { c.noInitialResponse = true })
}

// WithoutShardEndEvent makes SubscribeToShard behave at a closed shard's
// end as kinesis-mock and LocalStack do: the subscription delivers the
// shard's remaining records and then never sends the last event (null
// ContinuationSequenceNumber and ChildShards). It keeps sending events with
// no records every WithHeartbeatInterval, whose ContinuationSequenceNumber
// is the last record's, until its lifetime ends; a new subscription does the
// same. ListShards and DescribeStream still show the shard closed
// (EndingSequenceNumber set), and GetRecords still ends it (no
// NextShardIterator, ChildShards). Default off.
func WithoutShardEndEvent() Option {
	return optionFunc(func(c *config) { c.noShardEndEvent = true })
}

// WithMaxRecordsPerEvent caps the records in one SubscribeToShardEvent.
// Default 10000.
func WithMaxRecordsPerEvent(n int) Option {
	return optionFunc(func(c *config) { c.maxRecordsPerEvent = n })
}

// WithMaxEventBytes caps the record data in one SubscribeToShardEvent; an
// event always holds at least one record. Default 2 MiB.
func WithMaxEventBytes(n int) Option { return optionFunc(func(c *config) { c.maxEventBytes = n }) }

// WithShardReadRate limits each subscription to about n bytes of record
// data per second, as AWS's 2 MiB/s per shard per consumer. Default 0,
// unlimited, so tests and benchmarks run fast.
func WithShardReadRate(n int) Option { return optionFunc(func(c *config) { c.shardReadRate = n }) }

// WithMaxRecordSize sets the largest record data PutRecord(s) accepts.
// Default 1 MiB, as AWS.
func WithMaxRecordSize(n int) Option { return optionFunc(func(c *config) { c.maxRecordSize = n }) }

// WithShardLimit sets the most open shards across all streams; more gets
// LimitExceededException. Default 1000.
func WithShardLimit(n int) Option { return optionFunc(func(c *config) { c.shardLimit = n }) }

// WithMaxConsumers sets the most consumers per stream; more gets
// LimitExceededException. Default 20, as AWS.
func WithMaxConsumers(n int) Option { return optionFunc(func(c *config) { c.maxConsumers = n }) }

// WithStream creates a stream with the given shard count when the server
// starts, ACTIVE at once. It may be given more than once.
func WithStream(name string, shards int) Option {
	return optionFunc(func(c *config) { c.streams = append(c.streams, initStream{name, shards}) })
}
