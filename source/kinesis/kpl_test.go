package kinesis

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	dto "github.com/prometheus/client_model/go"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/source/kinesis/kpl"
)

// putKPL writes: plain "p0", an aggregate of 5 user records (the third with an explicit hash
// key), a corrupt aggregate, and plain "p1", all to one shard. It returns the sequence numbers.
func putKPL(t *testing.T, f *fixture) (plain0, agg, corrupt, plain1 string) {
	t.Helper()
	ctx := t.Context()
	var users []kpl.UserRecord
	for i := 0; i < 5; i++ {
		u := kpl.UserRecord{PartitionKey: fmt.Sprintf("user-%d", i), Data: []byte(fmt.Sprintf("u%d", i))}
		if i == 2 {
			u.ExplicitHashKey = "12345"
		}
		users = append(users, u)
	}
	aggData, err := kpl.Aggregate(users)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), aggData...)
	bad[len(bad)-1] ^= 0xff // break the MD5 trailer
	put := func(data []byte) string {
		out, err := f.cli.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(f.cfg.Stream), PartitionKey: aws.String("outer"), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.SequenceNumber)
	}
	return put([]byte("p0")), put(aggData), put(bad), put([]byte("p1"))
}

func counter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestKPLDeaggregation(t *testing.T) {
	f := newFixture(t, "kpl", 1, nil, nil)
	p0, agg, corrupt, p1 := putKPL(t, f)
	f.start()
	f.waitCount(8, 30*time.Second)
	got := f.em.shardRecs(shard0)
	type exp struct {
		key, value, seq string
		sub             int64
		subHeader, ehk  string
	}
	want := []exp{
		{"outer", "p0", p0, 0, "", ""},
		{"user-0", "u0", agg, 0, "0", ""},
		{"user-1", "u1", agg, 1, "1", ""},
		{"user-2", "u2", agg, 2, "2", "12345"},
		{"user-3", "u3", agg, 3, "3", ""},
		{"user-4", "u4", agg, 4, "4", ""},
		{"outer", "", corrupt, 0, "", ""}, // raw: value checked below
		{"outer", "p1", p1, 0, "", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		r := got[i]
		if string(r.Key) != w.key || (w.value != "" && string(r.Value) != w.value) ||
			r.Position != (runtime.Position{Sequence: w.seq, SubSequence: w.sub}) {
			t.Errorf("record %d: key %q value %q position %v; want %q %q %s/%d", i, r.Key, r.Value, r.Position, w.key, w.value, w.seq, w.sub)
		}
		sub, hasSub := header(&r, HeaderSubSequenceNumber)
		if hasSub != (w.subHeader != "") || sub != w.subHeader {
			t.Errorf("record %d: %s = %q (present %v), want %q", i, HeaderSubSequenceNumber, sub, hasSub, w.subHeader)
		}
		ehk, hasEHK := header(&r, HeaderExplicitHashKey)
		if hasEHK != (w.ehk != "") || ehk != w.ehk {
			t.Errorf("record %d: %s = %q, want %q", i, HeaderExplicitHashKey, ehk, w.ehk)
		}
	}
	if !kpl.IsAggregated(got[6].Value) {
		t.Errorf("corrupt aggregate not passed through raw: %q", got[6].Value)
	}
	sm := f.src.met.shard("test", shard0)
	if n := counter(t, sm.kplCorrupt); n != 1 {
		t.Errorf("kpl_corrupt_total = %v, want 1", n)
	}
	if n := counter(t, sm.kplAggregates); n != 1 {
		t.Errorf("kpl_aggregates_total = %v, want 1", n)
	}
	if n := counter(t, sm.kplUserRecords); n != 5 {
		t.Errorf("kpl_user_records_total = %v, want 5", n)
	}
}

// A restart from a checkpoint inside an aggregate neither repeats nor skips a user record, in
// both modes.
func TestKPLRestartInsideAggregate(t *testing.T) {
	for _, efo := range []bool{true, false} {
		t.Run(strconv.FormatBool(efo), func(t *testing.T) {
			em := newTestEmitter(1000, 1<<20, true)
			f := newFixture(t, "kplrestart", 1, func(c *Config) { c.EFO.Enabled = &efo; c.PollInterval = 2e8 }, em)
			_, agg, corrupt, p1 := putKPL(t, f)
			em.resume[shard0] = runtime.Mark{Position: runtime.Position{Sequence: agg, SubSequence: 2}}
			f.start()
			f.waitCount(4, 30*time.Second)
			got := f.em.shardRecs(shard0)
			want := []runtime.Position{{Sequence: agg, SubSequence: 3}, {Sequence: agg, SubSequence: 4}, {Sequence: corrupt}, {Sequence: p1}}
			if len(got) != len(want) {
				t.Fatalf("got %d records, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Position != want[i] {
					t.Errorf("record %d at %v, want %v", i, got[i].Position, want[i])
				}
			}
		})
	}
}

// A checkpoint with Mark.End skips the shard; one with a position resumes after it.
func TestResumeFromCheckpoint(t *testing.T) {
	em := newTestEmitter(1000, 1<<20, true)
	f := newFixture(t, "resume", 2, nil, em)
	want := f.put("v", 200, 10)
	const shard1 = "shardId-000000000001"
	em.resume[shard0] = runtime.Mark{End: true} // as if read to its end before
	em.resume[shard1] = runtime.Mark{Position: runtime.Position{Sequence: want[shard1][49]}}
	f.start()
	f.waitCount(len(want[shard1])-50, 30*time.Second)
	f.checkExactlyOnce(map[string][]string{shard1: want[shard1][50:]})
	if n := f.calls.calls(shard0); n != 0 {
		t.Errorf("ended shard subscribed %d times", n)
	}
	_ = context.Background
}
