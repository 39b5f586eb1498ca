// Command shardbridge runs connectors that mirror Amazon Kinesis Data Streams into Kafka.
//
// Usage:
//
//	shardbridge run --config PATH [--config PATH ...]   run the connectors in the config files or folders
//	shardbridge validate --config PATH [...]            check a config; print every problem; exit 1 if any
//	shardbridge dev [--shards 4] [--records N] [...]    mirror an embedded Kinesis into an embedded Kafka
//	shardbridge healthcheck [--url URL]                 exit 0 if the API's /healthz answers 200 (for HEALTHCHECK)
//	shardbridge version                                 print the version
//
// Every command takes --log-format text|json and --log-level debug|info|warn|error. SIGINT and
// SIGTERM start a graceful drain: reading stops, in-flight records are acknowledged (up to
// shutdown_timeout), final checkpoints are written, and the process exits.
package main
