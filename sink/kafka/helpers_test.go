package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/config"
)

// newCluster starts a one-broker kfake cluster and returns it with a sink config pointing at it.
// Retries back off quickly so that fault tests stay short.
func newCluster(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, Config) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	cfg := Config{
		Brokers:        c.ListenAddrs(),
		Topic:          "mirror.{stream}",
		RequestTimeout: config.Duration(5 * time.Second),
		Linger:         config.Duration(time.Millisecond),
	}
	return c, cfg
}

// fastRetries shortens franz-go's retry backoff for tests.
var fastRetries = withKgoOpts(
	kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
	kgo.MetadataMinAge(10*time.Millisecond),
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// acks records the outcome of every record, keyed by shard and sequence number, and counts how
// often each record was acked (it must be exactly once).
type acks struct {
	mu    sync.Mutex
	errs  map[string]error
	count map[string]int
	n     int
	cond  chan struct{} // closed and replaced on every ack
}

func newAcks() *acks {
	return &acks{errs: map[string]error{}, count: map[string]int{}, cond: make(chan struct{})}
}

func recID(r *runtime.Record) string { return r.Shard + "/" + r.Position.String() }

func (a *acks) ack(r *runtime.Record, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := recID(r)
	a.errs[id] = err
	a.count[id]++
	a.n++
	close(a.cond)
	a.cond = make(chan struct{})
}

// wait blocks until n acks have arrived or ctx ends.
func (a *acks) wait(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	for {
		a.mu.Lock()
		got, ch := a.n, a.cond
		a.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("only %d of %d acks arrived: %v", got, n, ctx.Err())
		}
	}
}

func (a *acks) get(id string) (error, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.errs[id], a.count[id]
}

// makeRecord builds the record a Kinesis source would emit for sequence i of a shard.
func makeRecord(stream, shard, key string, i int, base time.Time) runtime.Record {
	seq := fmt.Sprintf("%020d", i)
	return runtime.Record{
		Key:       []byte(key),
		Value:     []byte(fmt.Sprintf("value %s %d", shard, i)),
		Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		Headers: []runtime.Header{
			{Key: "kinesis.stream", Value: []byte(stream)},
			{Key: "kinesis.shard_id", Value: []byte(shard)},
			{Key: "kinesis.sequence_number", Value: []byte(seq)},
		},
		Stream:   stream,
		Shard:    shard,
		Position: runtime.Position{Sequence: seq},
	}
}

// keyFor returns a key that the Java partitioner puts in partition p of n.
func keyFor(prefix string, p, n int) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if javaPartition([]byte(k), n) == p {
			return k
		}
	}
}

// pollUntil polls cond every few milliseconds until it holds or the deadline passes.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}
