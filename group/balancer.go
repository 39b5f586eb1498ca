package group

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// protocolName names the balance strategy in the group protocol. Every worker of a group must
// speak it; a worker that does not is refused by the coordinator (INCONSISTENT_GROUP_PROTOCOL).
const protocolName = "shardbridge-shards-v1"

// balancer is the group's kgo.GroupBalancer: cooperative (KIP-429), so that partitions that stay
// with their owner keep being read through a rebalance, and a partition that moves is first
// revoked by its old owner (which hands its shards over) and only then, in a second round,
// assigned to the new one. The leader balances by open shards, which it learns from every
// member's join metadata (the union of what they listed), using balance.
type balancer struct{ g *Group }

var _ kgo.GroupBalancer = balancer{}

func (balancer) ProtocolName() string { return protocolName }
func (balancer) IsCooperative() bool  { return true }

func (b balancer) JoinGroupMetadata(topics []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = topics
	meta.Generation = generation
	meta.UserData = b.g.userData()
	ts := make([]string, 0, len(current))
	for t := range current {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	for _, t := range ts {
		op := kmsg.NewConsumerMemberMetadataOwnedPartition()
		op.Topic, op.Partitions = t, current[t]
		meta.OwnedPartitions = append(meta.OwnedPartitions, op)
	}
	return meta.AppendTo(nil)
}

func (balancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	if err != nil {
		return nil, nil, err
	}
	return cb, cb.MemberTopics(), nil
}

// Balance implements kgo.ConsumerBalancerBalance.
func (b balancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	topic := b.g.o.Topic
	n := topics[topic]
	open := map[int32]int{}
	type claim struct {
		member string
		gen    int32
	}
	best := map[int32]claim{} // partition -> its most recent claimant
	var ids []string
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		ids = append(ids, m.MemberID)
		for _, p := range decodeUserData(meta.UserData).Open {
			open[p] = 1
		}
		for _, op := range meta.OwnedPartitions {
			if op.Topic != topic {
				continue
			}
			for _, p := range op.Partitions {
				// KIP-792: a claim from an older generation than another member's is stale
				// (that member missed a rebalance and the partition moved on).
				if c, ok := best[p]; !ok || meta.Generation > c.gen {
					best[p] = claim{m.MemberID, meta.Generation}
				}
			}
		}
	})
	slices.Sort(ids)
	members := make([]member, len(ids))
	idx := make(map[string]int, len(ids))
	for i, id := range ids {
		members[i].id = id
		idx[id] = i
	}
	ps := make([]int32, 0, len(best))
	for p := range best {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		i := idx[best[p].member]
		members[i].owned = append(members[i].owned, p)
	}
	assigned := balance(members, n, func(p int32) int { return open[p] })
	plan := cb.NewPlan()
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, _ *kmsg.ConsumerMemberMetadata) {
		if parts := assigned[m.MemberID]; len(parts) > 0 {
			plan.AddPartitions(m, topic, parts)
		}
	})
	plan.AdjustCooperative(cb)
	return plan
}
