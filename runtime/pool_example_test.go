package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shardbridge/shardbridge/runtime"
)

// A shard reader waits for room before it reads from upstream, acquires what it read, and the
// sink's acknowledgement releases it.
func ExamplePool() {
	pool := runtime.NewPool(2, 1<<20) // at most 2 records and 1 MiB pending
	ctx := context.Background()

	if err := pool.WaitForSpace(ctx, 30*time.Second); errors.Is(err, runtime.ErrBackpressureTimeout) {
		fmt.Println("pool full: close the subscription and resubscribe later")
		return
	}
	// Two records of 300 bytes were read.
	if err := pool.Acquire(ctx, 2, 600); err != nil {
		fmt.Println("shutting down:", err)
		return
	}
	s := pool.Stats()
	fmt.Printf("used %d/%d records, %d bytes\n", s.UsedRecords, s.LimitRecords, s.UsedBytes)

	// The pool is full in records: the next reader would wait, here for at most 10ms.
	err := pool.WaitForSpace(ctx, 10*time.Millisecond)
	fmt.Println(err)

	// Kafka acknowledged both records.
	pool.Release(2, 600)
	fmt.Println(pool.WaitForSpace(ctx, 10*time.Millisecond))
	// Output:
	// used 2/2 records, 600 bytes
	// runtime: pending pool stayed full past the wait timeout
	// <nil>
}
