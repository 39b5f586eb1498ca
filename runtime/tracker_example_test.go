package runtime_test

import (
	"fmt"

	"github.com/shardbridge/shardbridge/runtime"
)

// The source registers records in shard order; acknowledgements arrive in any order; the mark only
// moves over a contiguous acknowledged prefix.
func ExampleShardTracker() {
	shard := runtime.NewTracker().Shard("shardId-000000000000")
	a := shard.Register(runtime.Position{Sequence: "100"})
	b := shard.Register(runtime.Position{Sequence: "200", SubSequence: 0})
	c := shard.Register(runtime.Position{Sequence: "200", SubSequence: 1}) // KPL sub-record
	end := shard.RegisterEnd()
	shard.Ack(end) // the end marker is acknowledged at once, yet waits for the records

	shard.Ack(b)
	_, ok := shard.Committable()
	fmt.Println("after b:", ok) // a is still out

	shard.Ack(a)
	m, _ := shard.Committable()
	fmt.Println("after a:", m.Position, m.End)

	shard.Ack(c)
	m, _ = shard.Committable()
	fmt.Println("after c:", m.Position, m.End, shard.InFlight())
	// Output:
	// after b: false
	// after a: 200 false
	// after c: 200/1 true 0
}
