package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/internal/kcat"
)

// writer puts records whose values carry their key and a per-key counter ("k007:00000042:"),
// so loss, duplicates and per-key order can be read off Kafka.
type writer struct {
	client  *awskinesis.Client
	stream  string
	keys    int
	size    func(i int) int // value size of the i-th record; nil: 64 bytes
	written atomic.Int64

	// keep, when set before writing, makes the writer keep what it wrote in kept, with each
	// record's arrival time bounded by the PutRecords call's start and end: the ground truth
	// for scenarios too large to read back from Kinesis.
	keep bool

	mu       sync.Mutex
	counters []int           // mu guards counters
	kept     []kinesisRecord // mu guards kept
}

func newWriter(client *awskinesis.Client, stream string, keys int) *writer {
	return &writer{client: client, stream: stream, keys: keys, counters: make([]int, keys)}
}

func keyName(k int) string { return fmt.Sprintf("key-%03d", k) }

// put writes n records at rate records/s (0: as fast as it can), in PutRecords batches of up to
// 500. A failed entry is an error: a retry could reorder a key's records.
func (w *writer) put(ctx context.Context, n, rate int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	base := int(w.written.Load())
	for i := 0; i < n; {
		b := min(500, n-i)
		if rate > 0 {
			due := int(time.Since(start).Seconds()*float64(rate)) - i
			if due <= 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Millisecond): // pacing the writer, not waiting for an outcome
				}
				continue
			}
			b = min(b, due)
		}
		// A PutRecords request carries at most 500 records and 5 MiB.
		entries := make([]types.PutRecordsRequestEntry, 0, b)
		bytes := 0
		for j := 0; j < b; j++ {
			idx := base + i + j
			size := 64
			if w.size != nil {
				size = w.size(idx)
			}
			if len(entries) > 0 && bytes+size+16 > 4<<20 {
				break
			}
			k := idx % w.keys
			prefix := fmt.Sprintf("k%03d:%08d:", k, w.counters[k])
			w.counters[k]++
			bytes += size + 16
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(keyName(k)), Data: value(prefix, size)})
		}
		b = len(entries)
		before := time.Now()
		out, err := w.client.PutRecords(ctx, &awskinesis.PutRecordsInput{StreamName: aws.String(w.stream), Records: entries})
		if err != nil {
			return fmt.Errorf("put records: %w", err)
		}
		after := time.Now()
		if out.FailedRecordCount != nil && *out.FailedRecordCount > 0 {
			return fmt.Errorf("put records: %d of %d failed", *out.FailedRecordCount, b)
		}
		if w.keep {
			for j, e := range entries {
				res := out.Records[j]
				w.kept = append(w.kept, kinesisRecord{Shard: aws.ToString(res.ShardId), Seq: aws.ToString(res.SequenceNumber),
					Key: *e.PartitionKey, Data: e.Data, ArrivalMin: before.UnixMilli(), ArrivalMax: after.UnixMilli(), Counter: counterOf(e.Data)})
			}
		}
		i += b
		w.written.Add(int64(b))
	}
	return nil
}

// value is prefix padded to size bytes with printable filler (kcat's JSON output keeps it
// byte for byte); a size below the prefix's length gives a prefix cut to size, at least 1 byte.
func value(prefix string, size int) []byte {
	v := make([]byte, max(size, 1))
	n := copy(v, prefix)
	for i := n; i < len(v); i++ {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

// background runs fn in a goroutine the caller owns: wait returns its error.
func background(fn func() error) (wait func() error) {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() { err = <-ch })
		return err
	}
}

// kinesisRecord is one record as Kinesis holds it: the ground truth the mirror is checked against.
type kinesisRecord struct {
	Shard, Seq string
	Key        string
	Data       []byte
	ArrivalMs  int64 // the arrival time read from Kinesis; 0 when only bounds are known
	// ArrivalMin and ArrivalMax bound the arrival time when the writer's record is the truth:
	// Kinesis stamps it during the PutRecords call.
	ArrivalMin, ArrivalMax int64
	Counter                int // the per-key counter in the value, -1 if the value is shorter than its prefix
}

// readKinesis reads every record of every shard (open and closed) with GetRecords.
func readKinesis(ctx context.Context, client *awskinesis.Client, stream string) ([]kinesisRecord, error) {
	var shards []types.Shard
	var token *string
	for {
		in := &awskinesis.ListShardsInput{NextToken: token}
		if token == nil {
			in.StreamName = aws.String(stream)
		}
		out, err := client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards: %w", err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	var recs []kinesisRecord
	for _, sh := range shards {
		it, err := client.GetShardIterator(ctx, &awskinesis.GetShardIteratorInput{StreamName: aws.String(stream),
			ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return nil, fmt.Errorf("shard iterator %s: %w", *sh.ShardId, err)
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := client.GetRecords(ctx, &awskinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				return nil, fmt.Errorf("get records %s: %w", *sh.ShardId, err)
			}
			for _, r := range out.Records {
				recs = append(recs, kinesisRecord{Shard: *sh.ShardId, Seq: *r.SequenceNumber, Key: *r.PartitionKey,
					Data: r.Data, ArrivalMs: r.ApproximateArrivalTimestamp.UnixMilli(), Counter: counterOf(r.Data)})
			}
			if len(out.Records) == 0 && (out.MillisBehindLatest == nil || *out.MillisBehindLatest == 0) {
				break // caught up with an open shard
			}
			iter = out.NextShardIterator
		}
	}
	return recs, nil
}

func counterOf(v []byte) int {
	parts := strings.SplitN(string(v[:min(len(v), 16)]), ":", 3)
	if len(parts) < 3 {
		return -1
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil {
		return -1
	}
	return n
}

// seqLess compares Kinesis sequence numbers as unsigned decimal integers.
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// mirrorReport is what check found in one topic.
type mirrorReport struct {
	Messages   int
	Expected   int
	Missing    []kinesisRecord
	Duplicates []kinesisRecord // one entry per extra copy
	Problems   []string        // mismatched content or order
}

func (r mirrorReport) String() string {
	return fmt.Sprintf("%d messages for %d records: %d missing, %d duplicates, %d problems",
		r.Messages, r.Expected, len(r.Missing), len(r.Duplicates), len(r.Problems))
}

// check compares the Kafka messages (as kcat read them) with the records in Kinesis (every
// scenario's stream is "orders"):
//   - each message names its record with the headers kinesis.shard_id and kinesis.sequence_number,
//     carries kinesis.stream "orders", and must carry the record's key and value byte for byte,
//     and its arrival time as timestamp;
//   - a record with no message is missing; each further message of a record is a duplicate;
//   - per key, every message is in the key's one partition, and the first copies of the key's
//     records, in offset order, are in write order (their counters strictly increase): a replay
//     may repeat records but never reorders what is new. Gaps are not order problems: a record
//     absent from Kafka is reported as missing (or is absent on purpose, e.g. skipped).
func check(msgs []kcat.Message, want []kinesisRecord) mirrorReport {
	rep := mirrorReport{Messages: len(msgs), Expected: len(want)}
	byPos := make(map[string]int, len(want))
	for i, r := range want {
		byPos[r.Shard+"/"+r.Seq] = i
	}
	sorted := slices.Clone(msgs)
	slices.SortStableFunc(sorted, func(a, b kcat.Message) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	seen := make([]int, len(want))
	keyPart := map[string]int32{}
	lastCounter := map[string]int{}
	problem := func(format string, args ...any) {
		if len(rep.Problems) < 20 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		} else if len(rep.Problems) == 20 {
			rep.Problems = append(rep.Problems, "...")
		}
	}
	for _, m := range sorted {
		shard, seq := header(m, "kinesis.shard_id"), header(m, "kinesis.sequence_number")
		i, ok := byPos[shard+"/"+seq]
		if !ok {
			problem("partition %d offset %d: headers name shard %q sequence %q, not a record in Kinesis", m.Partition, m.Offset, shard, seq)
			continue
		}
		r := want[i]
		if st := header(m, "kinesis.stream"); st != "orders" {
			problem("%s/%s: header kinesis.stream %q, want orders", shard, seq, st)
		}
		if m.Key == nil || *m.Key != r.Key {
			problem("%s/%s: key %v, want %q", shard, seq, deref(m.Key), r.Key)
		}
		if m.Value == nil || *m.Value != string(r.Data) {
			problem("%s/%s: value differs from the Kinesis data (%d bytes)", shard, seq, len(r.Data))
		}
		if r.ArrivalMs == 0 {
			if m.Timestamp < r.ArrivalMin || m.Timestamp > r.ArrivalMax {
				problem("%s/%s: timestamp %d outside the PutRecords call [%d, %d]", shard, seq, m.Timestamp, r.ArrivalMin, r.ArrivalMax)
			}
		} else if m.Timestamp != r.ArrivalMs {
			problem("%s/%s: timestamp %d, want arrival time %d", shard, seq, m.Timestamp, r.ArrivalMs)
		}
		if p, ok := keyPart[r.Key]; ok && p != m.Partition {
			problem("key %s in partitions %d and %d", r.Key, p, m.Partition)
		}
		keyPart[r.Key] = m.Partition
		seen[i]++
		if seen[i] > 1 {
			rep.Duplicates = append(rep.Duplicates, r)
			continue
		}
		if r.Counter >= 0 {
			if last, ok := lastCounter[r.Key]; ok && r.Counter <= last {
				problem("key %s: first copy of record %d at partition %d offset %d comes after record %d", r.Key, r.Counter, m.Partition, m.Offset, last)
			}
			lastCounter[r.Key] = r.Counter
		}
	}
	for i, n := range seen {
		if n == 0 {
			rep.Missing = append(rep.Missing, want[i])
		}
	}
	return rep
}

func header(m kcat.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return ""
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// consume reads a whole topic with kcat.
func consume(t testing.TB, kc *kcat.Kcat, broker, topic string) []kcat.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs, err := kc.Consume(ctx, broker, topic)
	if err != nil {
		t.Fatalf("read %s back with kcat: %v", topic, err)
	}
	return msgs
}

// storedCheckpoint is one shard's latest value in the checkpoint topic.
type storedCheckpoint struct {
	Seq string
	End bool
}

// checkpoints reads the checkpoint topic with kcat and returns the latest value per shard of
// the connector (keys are connector/stream/shard; a null value deletes).
func checkpoints(t testing.TB, kc *kcat.Kcat, broker, connector string) map[string]storedCheckpoint {
	t.Helper()
	out := map[string]storedCheckpoint{}
	for _, m := range consume(t, kc, broker, "_shardbridge_checkpoints") {
		if m.Key == nil {
			continue
		}
		parts := strings.Split(*m.Key, "/")
		if len(parts) != 3 || parts[0] != connector {
			continue
		}
		if m.Value == nil {
			delete(out, parts[2])
			continue
		}
		var v struct {
			Seq string `json:"sequence_number"`
			End bool   `json:"shard_end"`
		}
		if err := json.Unmarshal([]byte(*m.Value), &v); err != nil {
			t.Fatalf("checkpoint %s: %v", *m.Key, err)
		}
		out[parts[2]] = storedCheckpoint{Seq: v.Seq, End: v.End}
	}
	return out
}

// waitMirrored reads the topic until every record in want is there (or the deadline passes) and
// returns the last report. Extra time after the last record lets a late duplicate show up: the
// caller reads once more after the runtime stopped.
func waitMirrored(t testing.TB, kc *kcat.Kcat, broker, topic string, want []kinesisRecord, within time.Duration) mirrorReport {
	t.Helper()
	var rep mirrorReport
	waitEvery(t, within, time.Second, "every record in "+topic, func() error {
		rep = check(consume(t, kc, broker, topic), want)
		if len(rep.Missing) > 0 {
			return fmt.Errorf("%s", rep)
		}
		return nil
	})
	return rep
}

func firstFew(rs []kinesisRecord) string {
	var parts []string
	for _, r := range rs[:min(len(rs), 5)] {
		parts = append(parts, fmt.Sprintf("%s/%s(key %s #%d)", r.Shard, r.Seq, r.Key, r.Counter))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
