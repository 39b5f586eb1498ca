package kinesis

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

const shard0 = "shardId-000000000000"

func (f *fixture) ended(shard, reason string) float64 {
	var m dto.Metric
	if err := f.src.met.subsEnded.WithLabelValues("test", shard, reason).Write(&m); err != nil {
		f.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// Each fault hits subscriptions while records flow; afterwards every record has arrived exactly
// once, in shard order, and no shard was subscribed to more than once a second.
func TestFaultsEFO(t *testing.T) {
	cases := []struct {
		name   string
		faults []kinesistest.Fault
		opts   []kinesistest.Option
		cfg    func(*Config)
		reason string // a subscriptions_ended reason that must have been counted on shard0
	}{
		{
			name:   "connection reset mid-stream",
			faults: []kinesistest.Fault{{Op: "SubscribeToShard", Shard: shard0, After: 3, Count: 3, Kind: kinesistest.ResetConnection()}},
		},
		{
			name:   "error event",
			faults: []kinesistest.Fault{{Op: "SubscribeToShard", Shard: shard0, After: 2, Count: 3, Kind: kinesistest.ErrorEvent("InternalFailure")}},
			reason: "InternalFailure",
		},
		{
			name: "resource in use racing",
			faults: []kinesistest.Fault{
				{Op: "SubscribeToShard", Shard: shard0, Count: 2, Kind: kinesistest.HTTPError("ResourceInUseException")},
				{Op: "SubscribeToShard", Shard: shard0, After: 2, Count: 1, Kind: kinesistest.ErrorEvent("ResourceInUseException")},
			},
			reason: "ResourceInUseException",
		},
		{
			name:   "stalled stream caught by the watchdog",
			faults: []kinesistest.Fault{{Op: "SubscribeToShard", Shard: shard0, After: 2, Count: 2, Kind: kinesistest.Stall(time.Minute)}},
			opts:   []kinesistest.Option{kinesistest.WithHeartbeatInterval(50 * time.Millisecond)},
			cfg:    func(c *Config) { c.IdleTimeout = 400 * 1e6 },
			reason: "idle",
		},
		{
			name: "throttling",
			faults: []kinesistest.Fault{
				{Op: "SubscribeToShard", Shard: shard0, Count: 3, Kind: kinesistest.HTTPError("LimitExceededException")},
				{Op: "SubscribeToShard", Shard: shard0, After: 3, Count: 2, Kind: kinesistest.ErrorEvent("KMSThrottlingException")},
			},
		},
		{
			name:   "5-minute end compressed",
			opts:   []kinesistest.Option{kinesistest.WithSubscriptionLifetime(150 * time.Millisecond), kinesistest.WithShardReadRate(20 << 10)},
			reason: "expired",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]kinesistest.Option{kinesistest.WithMaxRecordsPerEvent(25)}, tc.opts...)
			f := newFixture(t, "faulty", 2, tc.cfg, nil, opts...)
			for _, fl := range tc.faults {
				if err := f.srv.Inject(fl); err != nil {
					t.Fatal(err)
				}
			}
			want := f.put("v", 1200, 40)
			f.start()
			more := f.put("w", 300, 40)
			for k, v := range more {
				want[k] = append(want[k], v...)
			}
			f.waitCount(1500, 45*time.Second)
			f.checkExactlyOnce(want)
			f.calls.checkRate(t)
			if n := f.calls.calls(shard0); n < 2 {
				t.Errorf("shard0 subscribed %d times; the fault did not force a resubscription", n)
			}
			if tc.reason != "" {
				if got := f.ended(shard0, tc.reason); got < 1 {
					t.Errorf("subscriptions_ended{reason=%q} = %v, want >= 1", tc.reason, got)
				}
			}
		})
	}
}

// Polling: throttling and an expired iterator lose and repeat nothing.
func TestFaultsPolling(t *testing.T) {
	efo := false
	f := newFixture(t, "polled", 2, func(c *Config) {
		c.EFO.Enabled = &efo
		c.MaxRecords = 30
		c.PollInterval = 200 * 1e6
	}, nil, kinesistest.WithIteratorLifetime(300*time.Millisecond))
	for _, fl := range []kinesistest.Fault{
		{Op: "GetRecords", Shard: shard0, After: 2, Count: 3, Kind: kinesistest.Throttle()},
		{Op: "GetRecords", Shard: shard0, After: 6, Count: 2, Kind: kinesistest.HTTPError("ExpiredIteratorException")},
		{Op: "GetRecords", Shard: shard0, After: 9, Count: 1, Kind: kinesistest.HTTPError("InternalFailure")},
	} {
		if err := f.srv.Inject(fl); err != nil {
			t.Fatal(err)
		}
	}
	want := f.put("v", 600, 40)
	f.start()
	f.waitCount(600, 45*time.Second)
	f.checkExactlyOnce(want)
}
