package kafka

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shardbridge/shardbridge/runtime"
)

// FuzzDecodeCheckpoint feeds arbitrary bytes, as read from the checkpoint topic, to the decoder.
// It must never panic; a value it accepts must encode back to a value that decodes the same.
// The seed corpus is in testdata/fuzz/FuzzDecodeCheckpoint.
func FuzzDecodeCheckpoint(f *testing.F) {
	good, _ := encodeCheckpoint(runtime.Checkpoint{
		Mark:    runtime.Mark{Position: runtime.Position{Sequence: "49590338271490256608559692538361571095921575989136588898", SubSequence: 2}},
		Owner:   runtime.Owner{ID: "w", Epoch: 1},
		Written: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	})
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeCheckpoint(b)
		if err != nil {
			var uv *UnknownVersionError
			if errors.As(err, &uv) && uv.Version == checkpointVersion {
				t.Fatalf("version %d reported unknown", uv.Version)
			}
			return
		}
		if v.V != checkpointVersion {
			t.Fatalf("accepted version %d", v.V)
		}
		cp := runtime.Checkpoint{
			Mark:    runtime.Mark{Position: runtime.Position{Sequence: v.SequenceNumber, SubSequence: v.SubSequenceNumber}, End: v.ShardEnd},
			Owner:   v.Owner,
			Written: v.WrittenAt,
		}
		again, err := encodeCheckpoint(cp)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", v, err)
		}
		v2, err := decodeCheckpoint(again)
		if err != nil {
			t.Fatalf("decode of re-encoded %s: %v", again, err)
		}
		if v2.SequenceNumber != v.SequenceNumber || v2.SubSequenceNumber != v.SubSequenceNumber ||
			v2.ShardEnd != v.ShardEnd || v2.Owner != v.Owner || !v2.WrittenAt.Equal(v.WrittenAt) {
			t.Fatalf("round trip changed %+v into %+v", v, v2)
		}
	})
}

func TestDecodeCheckpoint(t *testing.T) {
	for _, c := range []struct {
		in      string
		wantErr string
	}{
		{`{"v":1,"sequence_number":"1","sub_sequence_number":0,"shard_end":false,"written_at":"2026-01-02T03:04:05Z","owner":{"id":"w","epoch":1}}`, ""},
		{`{"v":1,"sequence_number":"","sub_sequence_number":0,"shard_end":true,"written_at":"2026-01-02T03:04:05Z","owner":{"id":"w","epoch":1}}`, ""},
		{`{"v":2}`, "version 2 is unknown"},
		{`{"v":0}`, "version 0 is unknown"},
		{`{}`, "no version"},
		{`{"v":1,"extra":1}`, "unknown field"},
		{`{"v":1} {}`, "after top-level value"},
		{`{"v":1,"sub_sequence_number":-1,"sequence_number":"1"}`, "negative"},
		{`{"v":1,"sub_sequence_number":3}`, "without sequence_number"},
		{`not json`, "decode checkpoint value"},
		{``, "decode checkpoint value"},
	} {
		_, err := decodeCheckpoint([]byte(c.in))
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.in, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: error %v, want %q", c.in, err, c.wantErr)
		}
	}
}
