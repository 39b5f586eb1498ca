package kinesis_test

import (
	"fmt"

	"github.com/shardbridge/shardbridge/source/kinesis"
)

// A config as the loader decodes it from source.kinesis; Validate fills the defaults.
func ExampleConfig_Validate() {
	cfg := kinesis.Config{Stream: "arn:aws:kinesis:eu-west-1:123456789012:stream/orders"}
	if err := cfg.Validate("orders-mirror", "source.kinesis"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.StreamName(), cfg.Region, cfg.StartPosition, cfg.EFOEnabled(), cfg.EFO.ConsumerName, cfg.HTTP2MaxReceiveBufferPerStream)

	bad := kinesis.Config{Stream: "orders", StartPosition: "at_timestamp"}
	fmt.Println(bad.Validate("orders-mirror", "source.kinesis"))
	// Output:
	// orders eu-west-1 trim_horizon true shardbridge-orders-mirror 256KiB
	// source.kinesis.region: is required; set the AWS region, e.g. region: "us-east-1", or give the stream as an ARN
	// source.kinesis.start_timestamp: is required with start_position at_timestamp; set an RFC 3339 time, e.g. "2026-01-02T15:04:05Z"
}
