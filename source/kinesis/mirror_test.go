package kinesis

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

func header(r *runtime.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func testMirror(t *testing.T, efo bool, srvOpts ...kinesistest.Option) *fixture {
	f := newFixture(t, "orders", 4, func(c *Config) {
		c.EFO.Enabled = &efo
		c.PollInterval = 200 * 1e6
	}, nil, srvOpts...)
	want := f.put("before", 1000, 50)
	f.start()
	// Records written while the source reads arrive too.
	more := f.put("during", 1000, 50)
	for k, v := range more {
		want[k] = append(want[k], v...)
	}
	f.waitCount(2000, 30*time.Second)
	f.checkExactlyOnce(want)
	f.calls.checkRate(t)

	// Metadata: key, value, timestamp, headers.
	for _, shard := range sortedKeys(want) {
		for i, r := range f.em.shardRecs(shard) {
			if !bytes.HasPrefix(r.Value, []byte("before-")) && !bytes.HasPrefix(r.Value, []byte("during-")) {
				t.Fatalf("shard %s record %d: value %q", shard, i, r.Value)
			}
			if !bytes.HasPrefix(r.Key, []byte("key-")) || r.Timestamp.IsZero() || r.Stream != "orders" || r.Shard != shard {
				t.Fatalf("shard %s record %d: key %q timestamp %v stream %q shard %q", shard, i, r.Key, r.Timestamp, r.Stream, r.Shard)
			}
			for k, v := range map[string]string{HeaderStream: "orders", HeaderShardID: shard, HeaderSequenceNumber: r.Position.Sequence} {
				if got, ok := header(&r, k); !ok || got != v {
					t.Fatalf("shard %s record %d: header %s = %q, want %q", shard, i, k, got, v)
				}
			}
			if _, ok := header(&r, HeaderSubSequenceNumber); ok {
				t.Fatalf("plain record has %s", HeaderSubSequenceNumber)
			}
			if _, ok := header(&r, HeaderExplicitHashKey); ok {
				t.Fatalf("record without explicit hash key has %s", HeaderExplicitHashKey)
			}
		}
	}
	for _, st := range f.src.ShardReport() {
		if st.State == StateEnded || st.State == StateWaitingParent {
			t.Errorf("shard %s: state %s while open", st.Shard, st.State)
		}
	}
	return f
}

func TestMirrorEFO(t *testing.T) {
	testMirror(t, true)
}

func TestMirrorPolling(t *testing.T) {
	f := testMirror(t, false)
	if n := f.srv.Calls("SubscribeToShard"); n != 0 {
		t.Errorf("polling mode made %d SubscribeToShard calls", n)
	}
}

// The emulators' stream without initial-response is read exactly as real Kinesis's.
func TestMirrorEFOWithoutInitialResponse(t *testing.T) {
	testMirror(t, true, kinesistest.WithoutInitialResponse())
}

// The consumer is kept on stop by default, and deregistered with efo.deregister_on_stop.
func TestDeregisterOnStop(t *testing.T) {
	for _, dereg := range []bool{false, true} {
		t.Run(fmt.Sprint(dereg), func(t *testing.T) {
			f := newFixture(t, "dereg", 1, func(c *Config) { c.EFO.DeregisterOnStop = dereg }, nil)
			f.put("v", 10, 2)
			stop := f.start()
			f.waitCount(10, 30*time.Second)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			sum, err := f.cli.DescribeStreamSummary(t.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("dereg")})
			if err != nil {
				t.Fatal(err)
			}
			out, err := f.cli.DescribeStreamConsumer(t.Context(), &kinesis.DescribeStreamConsumerInput{
				StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("shardbridge-test"),
			})
			kept := err == nil && out.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive
			if kept == dereg {
				t.Errorf("deregister_on_stop %v: consumer kept = %v (err %v)", dereg, kept, err)
			}
		})
	}
}
