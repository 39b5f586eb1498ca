// Package kinesistest is a fast, in-process Kinesis Data Streams server for
// tests, benchmarks and `shardbridge dev`, in the spirit of
// net/http/httptest and franz-go's kfake.
package kinesistest
