// Package kpl decodes and encodes Kinesis Producer Library (KPL) aggregated
// records, so that the Kinesis source can hand each user record to the sink
// on its own instead of one opaque blob per Kinesis record.
//
// # The format
//
// The KPL packs many user records into the data of one Kinesis record. That
// data is laid out as
//
//	+---------+----------------------------+---------+
//	| magic   | protobuf AggregatedRecord  | MD5     |
//	| 4 bytes | N bytes                    | 16 bytes|
//	+---------+----------------------------+---------+
//
// where magic is 0xF3 0x89 0x9A 0xC2 ([Magic]) and the trailer is the MD5
// digest of exactly the N protobuf bytes between them. The protobuf (proto2)
// schema is
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Tag { required string key = 1; optional string value = 2; }
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// Each record names its keys by index into the two tables, so a key shared by
// many records is stored once. The package decodes the wire format directly
// with protowire; there is no generated code.
//
// # Use
//
// [IsAggregated] is a cheap prefix test. [Deaggregate] decodes one Kinesis
// record's data into its user records, in aggregate order; a user record's
// SubSequence is its index in the aggregate, which together with the Kinesis
// sequence number of the carrying record gives every user record a unique,
// ordered position. [Aggregate] builds an aggregate, for tests, benchmarks and
// sample data.
//
// The Data of each decoded user record aliases the input: no payload bytes are
// copied. The caller must not modify the input while it uses the records, and
// holding any one record's Data keeps the whole aggregate in memory. Data is
// capped at its own length, so appending to it never writes into a neighbour.
// Keys are copied once per table entry and shared by the records that use
// them.
//
// # What "corrupt" means
//
// Data that does not start with [Magic], or is too short to hold the magic and
// a digest, is not an aggregate: [Deaggregate] returns [ErrNotAggregated] and
// the caller treats the data as one ordinary record. Data that starts with the
// magic but cannot be decoded is corrupt: the error wraps [ErrCorrupt] and
// says what is wrong. An aggregate is corrupt when
//
//   - the MD5 trailer does not match the protobuf bytes;
//   - a tag, varint or length-delimited field is truncated or overflows, or a
//     field number is invalid;
//   - a known field has the wrong wire type (for example a varint data field);
//   - a record lacks partition_key_index or data, both required in proto2;
//   - partition_key_index or explicit_hash_key_index is outside its table;
//   - it holds zero records. The KPL never produces one, and decoding it to
//     nothing would make the carrying Kinesis record vanish; calling it corrupt
//     makes the caller keep it as a raw record instead.
//
// Unknown fields, at the top level and inside a record, are skipped as the
// protobuf rules require (groups included). Tags are checked to be
// length-delimited and otherwise skipped, since Kafka records have no place
// for them. When a non-repeated field appears twice the last one wins, as in
// any protobuf decoder. Keys are proto2 strings and are not checked for UTF-8.
//
// # How the Kinesis source uses it
//
// The source calls [Deaggregate] on every record whose data [IsAggregated].
// On success it emits the user records in order. On an error wrapping
// [ErrCorrupt] it passes the Kinesis record through unchanged as one raw
// record, logs a warning and counts it in a metric: a record is never dropped
// because it failed to decode. That policy lives in the source, not here;
// this package only reports what it found.
//
// All functions are safe for concurrent use; the package holds no state.
package kpl
