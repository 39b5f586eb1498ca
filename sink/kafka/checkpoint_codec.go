package kafka

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shardbridge/shardbridge/runtime"
)

// checkpointVersion is the version of the checkpoint value this build writes and reads.
const checkpointVersion = 1

// checkpointValue is the JSON value of a checkpoint record, version 1:
//
//	{"v":1,"sequence_number":"4961...","sub_sequence_number":0,"shard_end":false,
//	 "written_at":"2026-01-02T03:04:05.123456789Z","owner":{"id":"worker-1","epoch":3}}
type checkpointValue struct {
	V                 int           `json:"v"`
	SequenceNumber    string        `json:"sequence_number"`
	SubSequenceNumber int64         `json:"sub_sequence_number"`
	ShardEnd          bool          `json:"shard_end"`
	WrittenAt         time.Time     `json:"written_at"`
	Owner             runtime.Owner `json:"owner"`
}

// UnknownVersionError is returned when a checkpoint value has a version this build cannot read,
// for example one written by a newer shardbridge.
type UnknownVersionError struct {
	Version int
}

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("checkpoint value version %d is unknown (this build reads version %d); upgrade shardbridge or delete the checkpoint", e.Version, checkpointVersion)
}

// encodeCheckpoint encodes the value of cp.
func encodeCheckpoint(cp runtime.Checkpoint) ([]byte, error) {
	return json.Marshal(checkpointValue{
		V:                 checkpointVersion,
		SequenceNumber:    cp.Mark.Position.Sequence,
		SubSequenceNumber: cp.Mark.Position.SubSequence,
		ShardEnd:          cp.Mark.End,
		WrittenAt:         cp.Written.UTC(),
		Owner:             cp.Owner,
	})
}

// decodeCheckpoint decodes a checkpoint value read from Kafka: outside bytes, so it is strict.
// The version is read first, so that a value of an unknown version is reported as such even if
// its fields changed; unknown fields of version 1 are errors.
func decodeCheckpoint(b []byte) (checkpointValue, error) {
	var head struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return checkpointValue{}, fmt.Errorf("decode checkpoint value: %w", err)
	}
	if head.V == nil {
		return checkpointValue{}, errors.New("decode checkpoint value: no version field \"v\"")
	}
	if *head.V != checkpointVersion {
		return checkpointValue{}, &UnknownVersionError{Version: *head.V}
	}
	var v checkpointValue
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return checkpointValue{}, fmt.Errorf("decode checkpoint value: %w", err)
	}
	if dec.More() {
		return checkpointValue{}, errors.New("decode checkpoint value: trailing data after the JSON object")
	}
	if v.SequenceNumber == "" && v.SubSequenceNumber != 0 {
		return checkpointValue{}, errors.New("decode checkpoint value: sub_sequence_number without sequence_number")
	}
	if v.SubSequenceNumber < 0 {
		return checkpointValue{}, fmt.Errorf("decode checkpoint value: negative sub_sequence_number %d", v.SubSequenceNumber)
	}
	return v, nil
}

// checkpointKey is the record key of a shard's checkpoint: connector/stream/shard. Each part is
// escaped so that the key splits back unambiguously: '%' becomes "%25" and '/' becomes "%2F".
// Kinesis stream names and shard ids cannot contain either, so for them the key reads as
// written; only a connector name with '/' or '%' shows the escapes.
func checkpointKey(connector, stream, shard string) []byte {
	return []byte(escapeKeyPart(connector) + "/" + escapeKeyPart(stream) + "/" + escapeKeyPart(shard))
}

var (
	keyEscaper   = strings.NewReplacer("%", "%25", "/", "%2F")
	keyUnescaper = strings.NewReplacer("%25", "%", "%2F", "/", "%2f", "/")
)

func escapeKeyPart(s string) string { return keyEscaper.Replace(s) }

// parseCheckpointKey splits a key written by checkpointKey; ok is false for any other key.
func parseCheckpointKey(k []byte) (connector, stream, shard string, ok bool) {
	parts := strings.Split(string(k), "/")
	if len(parts) != 3 {
		return "", "", "", false
	}
	return keyUnescaper.Replace(parts[0]), keyUnescaper.Replace(parts[1]), keyUnescaper.Replace(parts[2]), true
}
