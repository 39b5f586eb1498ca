package kinesistest

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestSmokeSubscribe(t *testing.T) {
	srv := newServer(t, WithStream("s", 1), WithConsumerActivationDelay(0), WithHeartbeatInterval(50*time.Millisecond))
	ctx := testCtx(t)
	c := srv.Client()
	arn := streamARN(t, ctx, c, "s")
	for i := range 5 {
		_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte("hello")})
		if err != nil {
			t.Fatal(err)
		}
	}
	carn := registerActive(t, ctx, srv, c, arn, "c1")
	out, err := c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(carn), ShardId: aws.String("shardId-000000000000"), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	if err != nil {
		t.Fatal(err)
	}
	es := out.GetStream()
	defer es.Close()
	n := 0
	for ev := range es.Events() {
		e := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		t.Logf("event: %d records cont=%v behind=%v", len(e.Value.Records), aws.ToString(e.Value.ContinuationSequenceNumber), aws.ToInt64(e.Value.MillisBehindLatest))
		n++
		if n == 3 {
			break
		}
	}
	t.Log(es.Err())
}
