package group

import (
	"cmp"
	"slices"
)

// member is one worker as the balancer sees it: its id and the partitions it owns now.
type member struct {
	id    string
	owned []int32
}

// balance assigns partitions 0..n-1 to members: it keeps every partition where it is (sticky)
// unless its owner holds more than its share, and hands out the rest, so that
//
//   - partitions with open shards (weight > 0) are spread by their total weight: with weights of
//     0 or 1, which is the case while no two open shards share a partition, every member's
//     count of open shards is within one of every other's;
//   - partitions with no open shard are spread by count, so that shards appearing later (after a
//     split) land evenly too.
//
// A partition claimed by several members goes to the first claimant in members' order (the
// caller orders claims by generation and drops stale ones). Members are in a fixed order (by
// member id), so the result is deterministic. weight(p) is the number of open shards of p.
func balance(members []member, n int32, weight func(p int32) int) map[string][]int32 {
	if len(members) == 0 {
		return nil
	}
	owner := make(map[int32]int, n) // partition -> member index
	for i, m := range members {
		for _, p := range m.owned {
			if p < 0 || p >= n {
				continue // the topic shrank (cannot happen in Kafka) or a bad claim
			}
			if _, taken := owner[p]; !taken {
				owner[p] = i
			}
		}
	}
	heavy, light := []int32{}, []int32{}
	for p := range n {
		if weight(p) > 0 {
			heavy = append(heavy, p)
		} else {
			light = append(light, p)
		}
	}
	plan := make([][]int32, len(members))
	spread(heavy, weight, owner, plan)
	spread(light, func(int32) int { return 1 }, owner, plan)
	out := make(map[string][]int32, len(members))
	for i, m := range members {
		ps := plan[i]
		slices.Sort(ps)
		out[m.id] = ps
	}
	return out
}

// spread assigns parts among the members, sticky, so that each member's total of w is its fair
// share: floor(total/members), and one more for the first total%members members by current load
// (so that as few partitions as possible move).
func spread(parts []int32, w func(int32) int, owner map[int32]int, plan [][]int32) {
	k := len(plan)
	load := make([]int, k)
	held := make([][]int32, k)
	var free []int32
	total := 0
	for _, p := range parts {
		total += w(p)
		if i, ok := owner[p]; ok {
			held[i] = append(held[i], p)
			load[i] += w(p)
		} else {
			free = append(free, p)
		}
	}
	// Targets: the members carrying the most now get the larger shares.
	order := make([]int, k)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(load[b], load[a]) })
	target := make([]int, k)
	for rank, i := range order {
		target[i] = total / k
		if rank < total%k {
			target[i]++
		}
	}
	// Members over their share give up their heaviest partitions that fit the excess first, so
	// that the lightest possible set moves.
	for i := range k {
		ps := held[i]
		slices.SortFunc(ps, func(a, b int32) int {
			if c := cmp.Compare(w(b), w(a)); c != 0 {
				return c
			}
			return cmp.Compare(b, a) // the highest partitions move first: deterministic
		})
		kept := ps[:0]
		for _, p := range ps {
			if load[i] > target[i] && w(p) <= load[i]-target[i] {
				load[i] -= w(p)
				free = append(free, p)
				continue
			}
			kept = append(kept, p)
		}
		// A weight larger than the excess (two shards in one partition) stays: moving it would
		// only put the excess elsewhere.
		held[i] = kept
	}
	// The free partitions, heaviest first, go to whoever is furthest below their share.
	slices.SortFunc(free, func(a, b int32) int {
		if c := cmp.Compare(w(b), w(a)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for _, p := range free {
		best := 0
		for i := 1; i < k; i++ {
			if target[i]-load[i] > target[best]-load[best] {
				best = i
			}
		}
		held[best] = append(held[best], p)
		load[best] += w(p)
	}
	for i := range k {
		plan[i] = append(plan[i], held[i]...)
	}
}
