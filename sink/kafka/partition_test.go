package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// refMurmur2 is the published murmur2 as Kafka's Java client implements it
// (org.apache.kafka.common.utils.Utils.murmur2): seed 0x9747b28c, m 0x5bd1e995, r 24, little-
// endian 4-byte blocks, tail bytes, final mix. Written from the algorithm, independently of
// franz-go's copy, so the two check each other.
func refMurmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	n := length / 4
	for i := 0; i < n; i++ {
		i4 := i * 4
		k := uint32(data[i4]) | uint32(data[i4+1])<<8 | uint32(data[i4+2])<<16 | uint32(data[i4+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := n * 4
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// javaPartition is the Java client's partition for a keyed record:
// Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions, where toPositive is number & 0x7fffffff.
func javaPartition(key []byte, n int) int {
	return int(refMurmur2(key)&0x7fffffff) % n
}

// TestMurmur2JavaVectors checks the reference against murmur2 values published from Kafka's Java
// implementation:
//   - Apache Kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
//     testMurmur2 ("21", "foobar", "a-little-bit-long-string", ...; the same vectors are in
//     franz-go's partitioner_test.go, TestMurmur2KafkaVectors);
//   - Akka, akka-cluster-sharding-typed Murmur2Spec.scala ("1" .. "12345"), which states its
//     values are "expected correct hash values from the kafka murmur2 impl".
//
// (KafkaJS's legacy/murmur2.spec.js vectors are not used: that is KafkaJS's legacy partitioner,
// which is not Java-compatible, and its values indeed differ.)
func TestMurmur2JavaVectors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
		{"1", -1993445489},
		{"12", 126087238},
		{"123", -267702483},
		{"1234", -1614185708},
		{"12345", -1188365604},
	} {
		if got := refMurmur2([]byte(c.in)); got != c.want {
			t.Errorf("murmur2(%q) = %d, want %d (Java)", c.in, got, c.want)
		}
	}
}

// TestPartitionerMatchesJava pins the sink's partitioner (franz-go's StickyKeyPartitioner with a
// nil hasher, as clientOpts configures it) to the Java client's default partitioner.
func TestPartitionerMatchesJava(t *testing.T) {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	keys := []string{"", "a", "hello", "orders-42", "21", "foobar", "shardId-000000000007", "\x00\xff\x80binary"}
	for _, n := range []int{1, 3, 6, 12, 100} {
		for _, k := range keys {
			rec := &kgo.Record{Key: []byte(k)}
			if got, want := p.Partition(rec, n), javaPartition([]byte(k), n); got != want {
				t.Errorf("partition(%q, %d) = %d, Java gives %d", k, n, got, want)
			}
		}
	}
	// Fixed values, so that a change in either implementation shows as a diff here. Computed
	// from the Java formula above: toPositive(murmur2(key)) % n.
	for _, c := range []struct {
		key  string
		n    int
		want int
	}{
		{"21", 3, int((-973932308 & 0x7fffffff) % 3)},
		{"foobar", 6, int((-790332482 & 0x7fffffff) % 6)},
		{"abc", 12, int((479470107 & 0x7fffffff) % 12)},
		{"1", 12, int((-1993445489 & 0x7fffffff) % 12)},
	} {
		if got := p.Partition(&kgo.Record{Key: []byte(c.key)}, c.n); got != c.want {
			t.Errorf("partition(%q, %d) = %d, want %d", c.key, c.n, got, c.want)
		}
	}
}
