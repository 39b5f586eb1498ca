package group

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shardbridge/shardbridge/runtime"
)

// Options configure a Group. Every field is required unless its doc says otherwise.
type Options struct {
	// Connector names the connector in logs and metrics.
	Connector string
	// GroupID is the Kafka group the workers of the connector join.
	GroupID string
	// Topic is the coordination topic; Partitions is the count it is created with when missing.
	Topic      string
	Partitions int32
	// WorkerID names this worker to the others (group status) and in logs and metrics.
	WorkerID string
	// SessionTimeout, HeartbeatInterval and RebalanceTimeout are the group's timing.
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	RebalanceTimeout  time.Duration
	// Conn are the options that reach and authenticate to the connector's brokers.
	Conn []kgo.Opt
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics, when set, receives the group's metrics (NewMetrics).
	Metrics *Metrics
}

// Group is one connector's membership in its Kafka group: it implements runtime.Ownership. A
// Group lives as long as the connector's spec; each run of the connector calls Run once.
type Group struct {
	o   Options
	log *slog.Logger

	setupMu    sync.Mutex   // serializes Setup
	partitions atomic.Int32 // of the coordination topic; 0 until Setup
	topicID    [16]byte     // of the coordination topic; set by Setup before partitions

	mu        sync.Mutex // mu guards the fields below
	cl        *kgo.Client
	openSlots []int32         // slots holding an open shard, as last listed; sorted
	open      map[string]bool // the open shards, as last listed
	owned     map[int32]bool  // slots assigned to this worker now
	lastOK    time.Time       // when the group last confirmed membership with no rebalance running
	since     time.Time       // when the current rebalance began, as this worker saw it
	gen       int32
}

var _ runtime.Ownership = (*Group)(nil)

// New checks o and returns a Group; it talks to Kafka only in Setup and Run.
func New(o Options) (*Group, error) {
	switch {
	case o.Connector == "", o.GroupID == "", o.Topic == "", o.WorkerID == "":
		return nil, errors.New("group: connector, group id, topic and worker id are required")
	case o.Partitions < 1:
		return nil, fmt.Errorf("group: partitions must be at least 1, got %d", o.Partitions)
	case o.SessionTimeout <= 0 || o.HeartbeatInterval <= 0 || o.RebalanceTimeout <= 0:
		return nil, errors.New("group: session timeout, heartbeat interval and rebalance timeout must be positive")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	g := &Group{o: o, log: o.Logger.With("connector", o.Connector, "group", o.GroupID, "worker", o.WorkerID),
		open: map[string]bool{}, owned: map[int32]bool{}}
	o.Metrics.register(g)
	return g, nil
}

// Setup makes sure the coordination topic exists (creating it with Options.Partitions when it
// does not) and learns its partition count, which Slot needs. It is idempotent.
func (g *Group) Setup(ctx context.Context) error {
	g.setupMu.Lock()
	defer g.setupMu.Unlock()
	if g.partitions.Load() > 0 {
		return nil
	}
	cl, err := kgo.NewClient(g.o.Conn...)
	if err != nil {
		return fmt.Errorf("group coordination topic %s: client: %w", g.o.Topic, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	n, id, err := topicPartitions(ctx, cl, g.o.Topic)
	if err != nil {
		return err
	}
	if n == 0 {
		resp, err := adm.CreateTopic(ctx, g.o.Partitions, -1, nil, g.o.Topic)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			g.log.Info("group: created the coordination topic", "topic", g.o.Topic, "partitions", g.o.Partitions)
		case errors.Is(err, kerr.TopicAlreadyExists):
		default:
			return fmt.Errorf("create group coordination topic %s with %d partitions (group.topic, group.partitions): %w; create it yourself, or grant this client CREATE on it",
				g.o.Topic, g.o.Partitions, err)
		}
		for n == 0 {
			if n, id, err = topicPartitions(ctx, cl, g.o.Topic); err != nil {
				return err
			}
			if n == 0 {
				if err := sleep(ctx, 50*time.Millisecond); err != nil {
					return fmt.Errorf("wait for group coordination topic %s: %w", g.o.Topic, err)
				}
			}
		}
	}
	if n != g.o.Partitions {
		g.log.Info("group: the coordination topic exists with another partition count than group.partitions; using the topic's",
			"topic", g.o.Topic, "partitions", n, "group.partitions", g.o.Partitions)
	}
	g.topicID = id
	g.partitions.Store(n)
	return nil
}

// topicPartitions returns the partition count and id of topic, 0 when it does not exist (yet).
// It asks the broker every time: the client's metadata cache (which kadm's Metadata reads) would
// keep answering that a topic just created does not exist, for up to the client's metadata min age.
func topicPartitions(ctx context.Context, cl *kgo.Client, topic string) (int32, [16]byte, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, [16]byte{}, fmt.Errorf("describe group coordination topic %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case err == nil:
			return int32(len(t.Partitions)), t.TopicID, nil
		case errors.Is(err, kerr.UnknownTopicOrPartition), kerr.IsRetriable(err):
			return 0, [16]byte{}, nil
		default:
			return 0, [16]byte{}, fmt.Errorf("describe group coordination topic %s: %w", topic, err)
		}
	}
	return 0, [16]byte{}, nil
}

// Slot implements runtime.Ownership: a shard whose id ends in a number (Kinesis's
// shardId-000000000007) belongs to that number modulo the partition count, so the open shards
// of a stream, numbered in a run, land in partitions of their own; any other id is hashed.
func (g *Group) Slot(shard string) int32 {
	n := g.partitions.Load()
	if n <= 0 {
		panic("group: Slot before Setup")
	}
	end := len(shard)
	for end > 0 && shard[end-1] >= '0' && shard[end-1] <= '9' {
		end--
	}
	if digits := shard[end:]; digits != "" && len(digits) <= 18 {
		v, _ := strconv.ParseInt(digits, 10, 64)
		return int32(v % int64(n))
	}
	h := fnv.New32a()
	h.Write([]byte(shard))
	return int32(h.Sum32() % uint32(n))
}

// Listed implements runtime.Ownership. When the set of partitions holding open shards changes,
// this worker rejoins with the new set in its metadata, so that the leader balances again.
func (g *Group) Listed(open []string) {
	if g.partitions.Load() <= 0 {
		return
	}
	set := make(map[int32]bool)
	openSet := make(map[string]bool, len(open))
	for _, s := range open {
		set[g.Slot(s)] = true
		openSet[s] = true
	}
	slots := make([]int32, 0, len(set))
	for s := range set {
		slots = append(slots, s)
	}
	slices.Sort(slots)
	g.mu.Lock()
	changed := !slices.Equal(slots, g.openSlots)
	g.openSlots, g.open = slots, openSet
	cl := g.cl
	g.mu.Unlock()
	if changed && cl != nil {
		g.log.Info("group: open shards changed; asking for a rebalance", "open_shards", len(open))
		cl.ForceRebalance()
	}
}

// Run implements runtime.Ownership.
func (g *Group) Run(ctx context.Context, h runtime.OwnershipHandler) error {
	if err := g.Setup(ctx); err != nil {
		return err
	}
	opts := append(slices.Clip(g.o.Conn),
		kgo.ConsumerGroup(g.o.GroupID),
		kgo.ConsumeTopics(g.o.Topic),
		kgo.Balancers(balancer{g}),
		kgo.SessionTimeout(g.o.SessionTimeout),
		kgo.HeartbeatInterval(g.o.HeartbeatInterval),
		kgo.RebalanceTimeout(g.o.RebalanceTimeout),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			slots := m[g.o.Topic]
			g.mu.Lock()
			since := g.since
			g.since = time.Time{}
			g.lastOK = time.Now()
			for _, s := range slots {
				g.owned[s] = true
			}
			_, gen := cl.GroupMetadata()
			g.gen = gen
			g.mu.Unlock()
			g.o.Metrics.rebalanced(g.o.Connector)
			if len(slots) > 0 {
				g.log.Info("group: partitions assigned", "partitions", slots, "generation", gen)
				h.Assigned(ctx, slots, since)
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			// Called at the end of every group session, also with nothing to revoke: that is
			// when this worker learns that a rebalance began.
			slots := m[g.o.Topic]
			g.mu.Lock()
			if g.since.IsZero() {
				g.since = time.Now()
			}
			for _, s := range slots {
				delete(g.owned, s)
			}
			g.mu.Unlock()
			if len(slots) > 0 {
				g.log.Info("group: partitions revoked; handing their shards over", "partitions", slots)
				h.Revoked(ctx, slots)
			}
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			slots := m[g.o.Topic]
			g.mu.Lock()
			for _, s := range slots {
				delete(g.owned, s)
			}
			g.lastOK = time.Time{}
			g.mu.Unlock()
			if len(slots) > 0 {
				g.log.Warn("group: partitions lost: this worker was out of the group (missed its session); its shards stop without a final checkpoint",
					"partitions", slots)
				h.Lost(ctx, slots)
			}
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("group %s: client: %w", g.o.GroupID, err)
	}
	g.mu.Lock()
	g.cl = cl
	g.mu.Unlock()
	defer func() {
		// Leave the group (which revokes every partition through the callback above) and close.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.o.RebalanceTimeout)
		if err := cl.LeaveGroupContext(lctx); err != nil {
			g.log.Warn("group: leaving the group", "error", err)
		}
		cancel()
		cl.Close()
		g.mu.Lock()
		g.cl = nil
		clear(g.owned)
		g.mu.Unlock()
	}()
	g.log.Info("group: joining", "topic", g.o.Topic, "partitions", g.partitions.Load())
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var fatal error
		fs.EachError(func(topic string, p int32, err error) {
			switch {
			case errors.Is(err, context.Canceled), errors.Is(err, kgo.ErrClientClosed):
			case errors.Is(err, kerr.GroupAuthorizationFailed), errors.Is(err, kerr.TopicAuthorizationFailed),
				errors.Is(err, kerr.InvalidSessionTimeout), errors.Is(err, kerr.InconsistentGroupProtocol):
				fatal = fmt.Errorf("group %s: %w (check group.session_timeout against the brokers' limits, the ACLs of group %s and topic %s, and that every worker runs a shardbridge that speaks this group's protocol)",
					g.o.GroupID, err, g.o.GroupID, g.o.Topic)
			default:
				g.log.Warn("group: error from the group client; it retries", "topic", topic, "partition", p, "error", err)
			}
		})
		if fatal != nil {
			return fatal
		}
	}
}

// Lease implements runtime.Ownership with a heartbeat of its own to the group coordinator:
// that answers whether this member, in its generation, is still in the group. Until is half a
// session timeout after the request was sent, the soonest the group could evict this worker
// being a whole session timeout after that heartbeat. During a rebalance (which keeps owned
// partitions where they are until their owner revokes them) it is also no later than half a
// rebalance timeout after the last time the group was seen stable, since a member that does
// not rejoin in time is evicted at the end of the rebalance timeout.
func (g *Group) Lease(ctx context.Context) (runtime.Lease, error) {
	g.mu.Lock()
	cl := g.cl
	g.mu.Unlock()
	if cl == nil {
		return runtime.Lease{}, errors.New("not in the group")
	}
	member, gen := cl.GroupMetadata()
	if member == "" || gen < 0 {
		return runtime.Lease{}, errors.New("not in the group yet")
	}
	sent := time.Now()
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = g.o.GroupID, member, gen
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return runtime.Lease{}, fmt.Errorf("heartbeat: %w", err)
	}
	until := sent.Add(g.o.SessionTimeout / 2)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch err := kerr.ErrorForCode(resp.ErrorCode); {
	case err == nil:
		g.lastOK = sent
	case errors.Is(err, kerr.RebalanceInProgress):
		if g.lastOK.IsZero() {
			return runtime.Lease{}, fmt.Errorf("heartbeat: %w, and the group was not seen stable since this worker joined", err)
		}
		until = minTime(until, g.lastOK.Add(g.o.RebalanceTimeout/2))
	default:
		return runtime.Lease{}, fmt.Errorf("heartbeat of member %s in generation %d: %w", member, gen, err)
	}
	if !time.Now().Before(until) {
		return runtime.Lease{}, errors.New("heartbeat answered too late to vouch for a write")
	}
	slot := int32(-1) // no slot owned: nothing to write, and nothing to fence
	for s := range g.owned {
		if slot < 0 || s < slot {
			slot = s
		}
	}
	return runtime.Lease{Epoch: int64(gen), Until: until, Group: g.o.GroupID, Member: member,
		Topic: g.o.Topic, TopicID: g.topicID, Slot: slot}, nil
}

var _ runtime.GroupDescriber = (*Group)(nil)

// Describe implements runtime.GroupDescriber: the group's state and members, and what each is
// assigned, as the group coordinator has it (DescribeGroups).
func (g *Group) Describe(ctx context.Context) (runtime.GroupState, error) {
	cl, err := kgo.NewClient(g.o.Conn...)
	if err != nil {
		return runtime.GroupState{}, err
	}
	defer cl.Close()
	described, err := kadm.NewClient(cl).DescribeGroups(ctx, g.o.GroupID)
	if err == nil {
		if d, ok := described[g.o.GroupID]; !ok {
			err = errors.New("not in the answer")
		} else {
			err = d.Err
		}
	}
	if err != nil {
		return runtime.GroupState{}, fmt.Errorf("describe group %s: %w", g.o.GroupID, err)
	}
	d := described[g.o.GroupID]
	var members []runtime.GroupMember
	for _, m := range d.Members {
		mem := runtime.GroupMember{MemberID: m.MemberID}
		if meta, ok := m.Join.AsConsumer(); ok {
			mem.WorkerID = decodeUserData(meta.UserData).Worker
		}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				if t.Topic == g.o.Topic {
					mem.Slots = append(mem.Slots, t.Partitions...)
				}
			}
		}
		slices.Sort(mem.Slots)
		members = append(members, mem)
	}
	slices.SortFunc(members, func(a, b runtime.GroupMember) int {
		if a.WorkerID != b.WorkerID {
			if a.WorkerID < b.WorkerID {
				return -1
			}
			return 1
		}
		if a.MemberID < b.MemberID {
			return -1
		}
		return 1
	})
	return runtime.GroupState{ID: g.o.GroupID, State: d.State, Members: members}, nil
}

// userData is what each member tells the leader in its join metadata.
type userData struct {
	V      int     `json:"v"`
	Worker string  `json:"worker"`
	Open   []int32 `json:"open"` // partitions holding an open shard, as this worker last listed
}

func decodeUserData(b []byte) userData {
	var u userData
	if json.Unmarshal(b, &u) != nil || u.V != 1 {
		return userData{}
	}
	return u
}

func (g *Group) userData() []byte {
	g.mu.Lock()
	u := userData{V: 1, Worker: g.o.WorkerID, Open: slices.Clone(g.openSlots)}
	g.mu.Unlock()
	b, _ := json.Marshal(u)
	return b
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
