package kinesismock

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

func TestStartServesInitializedStream(t *testing.T) {
	m := Start(t, "golden:2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ep := range []string{m.Endpoint, m.PlainEndpoint} {
		c := NewClient(ep)
		out, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{})
		if err != nil {
			t.Fatalf("list streams at %s: %v", ep, err)
		}
		if !slices.Contains(out.StreamNames, "golden") {
			t.Fatalf("list streams at %s = %v, want it to contain golden", ep, out.StreamNames)
		}
		sh, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("golden")})
		if err != nil {
			t.Fatalf("list shards at %s: %v", ep, err)
		}
		if len(sh.Shards) != 2 {
			t.Fatalf("got %d shards, want 2", len(sh.Shards))
		}
	}
}
