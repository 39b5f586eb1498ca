// Command bench measures shardbridge: how its memory follows the pool and not the backlog, and
// its throughput, CPU cost and latency next to a floor program that does the same job with the
// least code. BENCHMARKS.md holds the figures and explains each one.
//
//	go run ./bench all          # both suites, about 15 minutes on 2 cores
//	go run ./bench memory       # 8, 32, 128 and 256 shards, 1 KiB and 210-byte records, slow Kafka acks
//	go run ./bench throughput   # 100 B and 1 KiB records, 4 and 32 shards, shardbridge and the floor
//
// Flags: -repeat N runs each configuration N times (default 2); -scale F multiplies every
// backlog (0.05 for a smoke run); -event-bytes caps the record data of one
// SubscribeToShardEvent (the E of the memory formula, default 2 MiB); -keep keeps the work
// folder with the generated configs and the children's logs.
//
// # How a run works
//
// The bench process hosts both peers: an in-process Kinesis (source/kinesis/kinesistest) into
// which it writes the backlog before the run, and an in-process Kafka (kfake), fresh for every
// run. It builds shardbridge and the floor (bench/floor) without -race and runs one of them as a
// child process: shardbridge with a generated YAML config (`shardbridge run --config`), reading
// the whole stream from TRIM_HORIZON with a new EFO consumer. Only the child is measured:
//
//   - progress and the pool from its /metrics (shardbridge_records_acked_total,
//     shardbridge_pool_used_bytes), read every 100ms; the floor serves the first of these;
//   - CPU from /proc/PID/stat (utime + stime), read at the same moments;
//   - peak RSS from /proc/PID/status VmHWM, read at every sample up to the last
//     acknowledgement, so the drain is left out (rusage's maxrss would report the bench's own
//     size: see child.peakRSS).
//
// The backlog phase ends at the first sample that shows every record acknowledged. Records/s
// and CPU per record are taken between the first sample that shows an acknowledgement and that
// last one, so start-up (config, consumer registration, connections) is left out. The
// throughput suite then runs a live phase: records written at a steady rate well below capacity
// while the child is caught up, read back from Kafka by a consumer in the bench process;
// latency is the time a record was fetched minus its Kafka timestamp, which the sink sets to the
// Kinesis ApproximateArrivalTimestamp. Finally the child gets SIGTERM (shardbridge drains), and
// the bench counts the records in the Kafka topic against the records written.
//
// The peers run on the same two cores as the child, so they take CPU from it: records/s is what
// this whole setup reaches on the machine, CPU per record is the child's alone.
//
// BenchmarkMirror (go test -bench Mirror ./bench) runs the same pipeline in one process, wired
// as `shardbridge run` wires it, for CPU and heap profiles.
package main
