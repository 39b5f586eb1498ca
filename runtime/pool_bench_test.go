package runtime

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// BenchmarkPoolAcquireRelease measures one Acquire plus one Release of (1 record, 512 bytes) with 1,
// 8 and 64 goroutines sharing one pool. In "roomy" the pool never fills, so the goroutines contend
// only for the lock; in "full" it holds 4 records, so most calls block and are handed space by a
// Release. waits/op is the share of calls that had to block.
func BenchmarkPoolAcquireRelease(b *testing.B) {
	for _, bc := range []struct {
		name  string
		limit int64
	}{{"roomy", 1 << 20}, {"full", 4}} {
		for _, g := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", bc.name, g), func(b *testing.B) {
				p := NewPool(bc.limit, bc.limit*512)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				for i := range g {
					n := b.N / g
					if i < b.N%g {
						n++
					}
					wg.Go(func() {
						for range n {
							if err := p.Acquire(ctx, 1, 512); err != nil {
								b.Error(err)
								return
							}
							p.Release(1, 512)
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				s := p.Stats()
				if s.UsedRecords != 0 || s.UsedBytes != 0 || s.Waiters != 0 {
					b.Fatalf("pool not back to empty: %+v", s)
				}
				b.ReportMetric(float64(s.Waits)/float64(b.N), "waits/op")
			})
		}
	}
}
