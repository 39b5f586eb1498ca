package kinesistest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

func Example() {
	srv, err := kinesistest.NewServer(kinesistest.WithStream("orders", 1))
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ctx := context.Background()
	c := srv.Client()

	if _, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("user-1"), Data: []byte("hello")}); err != nil {
		panic(err)
	}
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("orders"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		panic(err)
	}
	out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		panic(err)
	}
	for _, r := range out.Records {
		fmt.Printf("%s %s %d digits\n", aws.ToString(r.PartitionKey), r.Data, len(aws.ToString(r.SequenceNumber)))
	}
	fmt.Println("GetRecords calls:", srv.Calls("GetRecords"))
	// Output:
	// user-1 hello 56 digits
	// GetRecords calls: 1
}

func ExampleServer_Inject() {
	srv, err := kinesistest.NewServer(kinesistest.WithStream("orders", 1))
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	// The second PutRecords call is throttled.
	if err := srv.Inject(kinesistest.Fault{Op: "PutRecords", After: 1, Kind: kinesistest.Throttle()}); err != nil {
		panic(err)
	}
	c := srv.Client()
	for range 3 {
		_, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("orders"),
			Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("v")}}})
		var pte *types.ProvisionedThroughputExceededException
		fmt.Println(errors.As(err, &pte))
	}
	// Output:
	// false
	// true
	// false
}
