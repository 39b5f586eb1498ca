package kcat

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParse(t *testing.T) {
	out := []byte(`{"topic":"t","partition":2,"offset":7,"tstype":"create","ts":1700000000123,"broker":0,"headers":["a","1","tab","x\ty"],"key":"k\n1","payload":"v"}
{"topic":"t","partition":0,"offset":0,"tstype":"create","ts":5,"broker":0,"key":null,"payload":null}
`)
	msgs, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	m := msgs[0]
	if m.Partition != 2 || m.Offset != 7 || m.Timestamp != 1700000000123 || *m.Key != "k\n1" || *m.Value != "v" {
		t.Errorf("message 0 = %+v", m)
	}
	if len(m.Headers) != 2 || m.Headers[1] != (Header{"tab", "x\ty"}) {
		t.Errorf("headers = %+v", m.Headers)
	}
	if msgs[1].Key != nil || msgs[1].Value != nil {
		t.Errorf("null key/value not nil: %+v", msgs[1])
	}
	if _, err := Parse([]byte("{not json\n")); err == nil {
		t.Error("Parse accepted invalid JSON")
	}
}

// TestConsumeKfake produces with franz-go into kfake and reads back with kcat.
func TestConsumeKfake(t *testing.T) {
	k := Find(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := time.UnixMilli(1700000000123)
	rec := &kgo.Record{Topic: "t", Key: []byte("key\twith tab"), Value: []byte("value\nline"), Timestamp: ts,
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("hv")}}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	msgs, err := k.Consume(ctx, c.ListenAddrs()[0], "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1: %+v", len(msgs), msgs)
	}
	m := msgs[0]
	if *m.Key != "key\twith tab" || *m.Value != "value\nline" || !m.Time().Equal(ts) {
		t.Errorf("got %+v", m)
	}
	if len(m.Headers) != 1 || m.Headers[0] != (Header{"h", "hv"}) {
		t.Errorf("headers = %+v", m.Headers)
	}
}
