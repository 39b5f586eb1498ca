package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shardbridge/shardbridge/internal/kcat"
)

// TestCheck pins the checker every scenario relies on: it must see each kind of damage.
func TestCheck(t *testing.T) {
	rec := func(shard string, seq, counter int) kinesisRecord {
		v := fmt.Sprintf("k001:%08d:payload", counter)
		return kinesisRecord{Shard: shard, Seq: fmt.Sprint(seq), Key: "key-001", Data: []byte(v), ArrivalMs: 1000 + int64(seq), Counter: counter}
	}
	want := []kinesisRecord{rec("s0", 1, 0), rec("s0", 2, 1), rec("s0", 3, 2)}
	msg := func(r kinesisRecord, offset int64) kcat.Message {
		key, val := r.Key, string(r.Data)
		return kcat.Message{Partition: 0, Offset: offset, Timestamp: r.ArrivalMs, Key: &key, Value: &val,
			Headers: []kcat.Header{{Key: "kinesis.stream", Value: "orders"}, {Key: "kinesis.shard_id", Value: r.Shard}, {Key: "kinesis.sequence_number", Value: r.Seq}}}
	}
	good := []kcat.Message{msg(want[0], 0), msg(want[1], 1), msg(want[2], 2)}

	cases := []struct {
		name          string
		msgs          func() []kcat.Message
		missing, dups int
		problem       string
		wantNoProblem bool
	}{
		{name: "exact", msgs: func() []kcat.Message { return good }, wantNoProblem: true},
		{name: "loss", msgs: func() []kcat.Message { return good[:2] }, missing: 1, wantNoProblem: true},
		{name: "replay", msgs: func() []kcat.Message {
			return []kcat.Message{msg(want[0], 0), msg(want[1], 1), msg(want[0], 2), msg(want[1], 3), msg(want[2], 4)}
		}, dups: 2, wantNoProblem: true},
		{name: "reorder", msgs: func() []kcat.Message {
			return []kcat.Message{msg(want[1], 0), msg(want[0], 1), msg(want[2], 2)}
		}, problem: "comes after"},
		{name: "value", msgs: func() []kcat.Message {
			m := msg(want[1], 1)
			v := *m.Value + "x"
			m.Value = &v
			return []kcat.Message{good[0], m, good[2]}
		}, problem: "value differs"},
		{name: "timestamp", msgs: func() []kcat.Message {
			m := msg(want[2], 2)
			m.Timestamp++
			return []kcat.Message{good[0], good[1], m}
		}, problem: "timestamp"},
		{name: "key", msgs: func() []kcat.Message {
			m := msg(want[0], 0)
			k := "key-002"
			m.Key = &k
			return []kcat.Message{m, good[1], good[2]}
		}, problem: "key"},
		{name: "unknown record", msgs: func() []kcat.Message {
			return append(good, msg(rec("s1", 9, 3), 3))
		}, problem: "not a record in Kinesis"},
		{name: "two partitions", msgs: func() []kcat.Message {
			m := msg(want[2], 0)
			m.Partition = 1
			return []kcat.Message{good[0], good[1], m}
		}, problem: "in partitions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := check(c.msgs(), want)
			if len(rep.Missing) != c.missing || len(rep.Duplicates) != c.dups {
				t.Errorf("%s: want %d missing, %d duplicates", rep, c.missing, c.dups)
			}
			switch {
			case c.wantNoProblem && len(rep.Problems) > 0:
				t.Errorf("problems %v, want none", rep.Problems)
			case !c.wantNoProblem && !strings.Contains(strings.Join(rep.Problems, "; "), c.problem):
				t.Errorf("problems %v, want one about %q", rep.Problems, c.problem)
			}
		})
	}
}
