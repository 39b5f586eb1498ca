package group

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// checkPlan checks that every partition is assigned exactly once.
func checkPlan(t interface{ Fatalf(string, ...any) }, plan map[string][]int32, n int32) {
	seen := make(map[int32]string)
	for m, ps := range plan {
		for _, p := range ps {
			if prev, dup := seen[p]; dup {
				t.Fatalf("partition %d assigned to %s and %s", p, prev, m)
			}
			seen[p] = m
		}
	}
	if int32(len(seen)) != n {
		t.Fatalf("%d of %d partitions assigned", len(seen), n)
	}
}

func shardLoads(plan map[string][]int32, weight func(int32) int) map[string]int {
	out := map[string]int{}
	for m, ps := range plan {
		for _, p := range ps {
			out[m] += weight(p)
		}
	}
	return out
}

// Whatever the members own now, the plan gives every partition to one member, and, as long as
// no partition holds two open shards, every member's open shards are within one of every other's.
func TestBalanceSpreadsOpenShardsWithinOne(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Int32Range(1, 80).Draw(t, "partitions")
		open := map[int32]bool{}
		for p := range n {
			open[p] = rapid.Bool().Draw(t, fmt.Sprintf("open%d", p))
		}
		weight := func(p int32) int {
			if open[p] {
				return 1
			}
			return 0
		}
		k := rapid.IntRange(1, 7).Draw(t, "members")
		var members []member
		for i := range k {
			members = append(members, member{id: fmt.Sprintf("m%d", i)})
		}
		// Random current ownership, claims may overlap or be missing.
		for p := range n {
			if i := rapid.IntRange(-1, k-1).Draw(t, fmt.Sprintf("owner%d", p)); i >= 0 {
				members[i].owned = append(members[i].owned, p)
			}
		}
		plan := balance(members, n, weight)
		checkPlan(t, plan, n)
		loads := shardLoads(plan, weight)
		lo, hi := 1<<30, -1
		for _, m := range members {
			lo, hi = min(lo, loads[m.id]), max(hi, loads[m.id])
		}
		if hi-lo > 1 {
			t.Fatalf("open shards per member from %d to %d: %v", lo, hi, loads)
		}
		// The partitions with no open shard are spread by count too.
		counts := map[string]int{}
		for m, ps := range plan {
			for _, p := range ps {
				if !open[p] {
					counts[m]++
				}
			}
		}
		lo, hi = 1<<30, -1
		for _, m := range members {
			lo, hi = min(lo, counts[m.id]), max(hi, counts[m.id])
		}
		if hi-lo > 1 {
			t.Fatalf("empty partitions per member from %d to %d", lo, hi)
		}
	})
}

// A balanced group that gains a member moves only what the newcomer must take, and a group
// that loses one moves only the leaver's partitions.
func TestBalanceIsSticky(t *testing.T) {
	weight := func(p int32) int {
		if p < 12 {
			return 1 // 12 open shards in partitions 0..11 of 64
		}
		return 0
	}
	three := balance([]member{{id: "a"}, {id: "b"}, {id: "c"}}, 64, weight)
	checkPlan(t, three, 64)
	if l := shardLoads(three, weight); l["a"] != 4 || l["b"] != 4 || l["c"] != 4 {
		t.Fatalf("12 shards over 3 members: %v", l)
	}
	owned := func(plan map[string][]int32, ids ...string) []member {
		var ms []member
		for _, id := range ids {
			ms = append(ms, member{id: id, owned: plan[id]})
		}
		return ms
	}
	four := balance(append(owned(three, "a", "b", "c"), member{id: "d"}), 64, weight)
	checkPlan(t, four, 64)
	if l := shardLoads(four, weight); l["d"] != 3 || l["a"] != 3 || l["b"] != 3 || l["c"] != 3 {
		t.Fatalf("12 shards over 4 members: %v", l)
	}
	moved := 0
	for _, id := range []string{"a", "b", "c"} {
		for _, p := range three[id] {
			if !slices.Contains(four[id], p) {
				moved++
			}
		}
	}
	if want := len(four["d"]); moved != want {
		t.Fatalf("%d partitions moved when a fourth member joined; only the %d it takes should", moved, want)
	}

	two := balance(owned(three, "a", "c"), 64, weight)
	checkPlan(t, two, 64)
	for _, id := range []string{"a", "c"} {
		for _, p := range three[id] {
			if !slices.Contains(two[id], p) {
				t.Fatalf("member %s lost partition %d when b left; only b's partitions should move", id, p)
			}
		}
	}
	if l := shardLoads(two, weight); l["a"] != 6 || l["c"] != 6 {
		t.Fatalf("12 shards over 2 members: %v", l)
	}
}
