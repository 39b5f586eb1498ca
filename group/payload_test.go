package group

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupRecordLimit is what the coordinator can store of a classic group's state: it writes
// every member's join metadata and assignment as one record of __consumer_offsets, which takes
// at most message.max.bytes (1 MiB plus a record overhead of 12 bytes by default).
const groupRecordLimit = 1<<20 + 12

// payload is the size of one rebalance's metadata for a group of workers sharing open shards.
type payload struct {
	join       int // one worker's join metadata (what it sends; the leader gets every worker's)
	assignment int // one worker's assignment (its SyncGroup answer)
	group      int // every worker's join metadata and assignment: the coordinator's group record
}

// rebalancePayload encodes what workers members of a group over a coordination topic of
// partitions send and get when open shards (shardId-0 .. shardId-open-1) are spread evenly.
func rebalancePayload(t *testing.T, open, partitions, workers int) payload {
	t.Helper()
	g, err := New(Options{Connector: "c", GroupID: "g", Topic: "_shardbridge_group.c", Partitions: int32(partitions), WorkerID: "host-with-a-longish-name/12345",
		SessionTimeout: 10 * time.Second, HeartbeatInterval: 3 * time.Second, RebalanceTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	g.partitions.Store(int32(partitions))
	ids := make([]string, open)
	for i := range ids {
		ids[i] = fmt.Sprintf("shardId-%012d", i)
	}
	g.Listed(ids)
	var p payload
	for w := range workers {
		var owned []int32
		for s := w; s < partitions; s += workers {
			owned = append(owned, int32(s))
		}
		join := balancer{g}.JoinGroupMetadata([]string{g.o.Topic}, map[string][]int32{g.o.Topic: owned}, 42)
		a := kmsg.NewConsumerMemberAssignment()
		a.Version = 3
		at := kmsg.NewConsumerMemberAssignmentTopic()
		at.Topic, at.Partitions = g.o.Topic, owned
		a.Topics = append(a.Topics, at)
		assignment := a.AppendTo(nil)
		p.join, p.assignment = max(p.join, len(join)), max(p.assignment, len(assignment))
		// Per member the record also holds its member id (a UUID with the client id, about 60 B)
		// and a few fixed fields.
		p.group += len(join) + len(assignment) + 100
	}
	return p
}

// The rebalance payloads the README's "Several workers" quotes: each worker's join metadata
// carries the partitions that hold open shards, so it grows with the open shards, and the
// coordinator's record of the group holds every worker's, which caps the group size at 10,000
// open shards under Kafka's default message.max.bytes.
func TestRebalancePayloadSizes(t *testing.T) {
	for _, c := range []struct {
		open, partitions, workers int
		maxJoin                   int // bytes, the README's figure
		fits                      bool
	}{
		{open: 1000, partitions: 1024, workers: 10, maxJoin: 6 << 10, fits: true},
		{open: 1000, partitions: 1024, workers: 100, maxJoin: 6 << 10, fits: true},
		{open: 10000, partitions: 10000, workers: 10, maxJoin: 60 << 10, fits: true},
		{open: 10000, partitions: 10000, workers: 19, maxJoin: 60 << 10, fits: true},
		{open: 10000, partitions: 10000, workers: 20, maxJoin: 60 << 10, fits: false},
	} {
		p := rebalancePayload(t, c.open, c.partitions, c.workers)
		t.Logf("%d open shards, %d partitions, %d workers: join metadata %d B per worker, assignment %d B, group record about %d B",
			c.open, c.partitions, c.workers, p.join, p.assignment, p.group)
		if p.join > c.maxJoin {
			t.Errorf("%d open shards: join metadata of %d B, over the %d B the README gives", c.open, p.join, c.maxJoin)
		}
		if fits := p.group <= groupRecordLimit; fits != c.fits {
			t.Errorf("%d open shards, %d workers: the group record of about %d B fits in %d B: %v; the README says %v",
				c.open, c.workers, p.group, groupRecordLimit, fits, c.fits)
		}
	}
}
