package runtime

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkShardTrackerRegisterAck measures one Register plus one Ack with 10,000 records awaiting
// acknowledgement. In "random" each op acknowledges a random one of them, so the mark trails and
// the ring spans more than 10k entries (reported as span); in "ordered" acks arrive in
// registration order, the common case with one Kafka partition per shard.
func BenchmarkShardTrackerRegisterAck(b *testing.B) {
	const window = 10_000
	for _, random := range []bool{true, false} {
		name := "ordered"
		if random {
			name = "random"
		}
		b.Run(name+"/inflight=10k", func(b *testing.B) {
			s := NewTracker().Shard("shardId-000000000000")
			p := pos(1, 0) // one position: the string is not what is measured
			out := make([]Ticket, window)
			for i := range out {
				out[i] = s.Register(p)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			maxSpan := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				j := i % window
				if random {
					j = rng.IntN(window)
				}
				s.Ack(out[j])
				out[j] = s.Register(p)
				if i%1024 == 0 {
					maxSpan = max(maxSpan, s.InFlight())
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(maxSpan), "span")
		})
	}
}
