package kinesis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/internal/kinesismock"
)

// Against the third-party emulator kinesis-mock (what LocalStack runs), EFO and polling both
// mirror a stream end to end through the source's own client, initial-response shim included.
func TestKinesisMockMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kinesis-mock")
	}
	mock := kinesismock.Start(t, "efo:2", "poll:2")
	for _, tc := range []struct {
		stream string
		efo    bool
	}{{"efo", true}, {"poll", false}} {
		t.Run(tc.stream, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cli := kinesismock.NewClient(mock.Endpoint)
			want := map[string][]string{}
			var entries []types.PutRecordsRequestEntry
			for i := 0; i < 200; i++ {
				entries = append(entries, types.PutRecordsRequestEntry{
					Data: []byte(fmt.Sprintf("v-%d", i)), PartitionKey: aws.String(fmt.Sprintf("key-%d", i%17)),
				})
			}
			out, err := cli.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(tc.stream), Records: entries})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				if r.ErrorCode != nil {
					t.Fatalf("put: %s", aws.ToString(r.ErrorCode))
				}
				want[aws.ToString(r.ShardId)] = append(want[aws.ToString(r.ShardId)], aws.ToString(r.SequenceNumber))
			}

			cfg := testConfig(tc.stream, mock.Endpoint)
			cfg.Region = kinesismock.Region
			efo := tc.efo
			cfg.EFO.Enabled = &efo
			cfg.PollInterval = 2e8
			em := newTestEmitter(10000, 16<<20, true)
			src, err := New(cfg, "mock", WithLogger(quietLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			f := &fixture{t: t, cfg: src.cfg, em: em, src: src}
			f.start()
			f.waitCount(200, 60*time.Second)
			f.checkExactlyOnce(want)
		})
	}
}

// Against kinesis-mock, which never ends a subscription at a closed shard (no null continuation,
// no ChildShards: it keeps sending empty events), a split and then a merge while mirroring: with
// EFO each parent's end is confirmed with GetRecords once its subscription is quiet; polling
// ends each parent at the null NextShardIterator. Either way every record arrives once, per key
// parents' records before children's, and every parent ends before its children are read.
func TestKinesisMockReshard(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kinesis-mock")
	}
	mock := kinesismock.Start(t, "efo-reshard:2", "poll-reshard:2")
	for _, tc := range []struct {
		stream string
		efo    bool
	}{{"efo-reshard", true}, {"poll-reshard", false}} {
		t.Run(tc.stream, func(t *testing.T) {
			cfg := testConfig(tc.stream, mock.Endpoint)
			cfg.Region = kinesismock.Region
			efo := tc.efo
			cfg.EFO.Enabled = &efo
			cfg.PollInterval = 2e8
			cfg.ShardSyncInterval = 1e9
			cfg.ClosedShardQuietPeriod = 2e9
			em := newTestEmitter(10000, 16<<20, true)
			src, err := New(cfg, "test", WithLogger(quietLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			f := &fixture{t: t, cli: kinesismock.NewClient(mock.Endpoint), cfg: src.cfg, em: em, src: src}
			testReshard(t, f, tc.efo)
		})
	}
}
