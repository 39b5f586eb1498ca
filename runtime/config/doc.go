// Package config loads, decodes and validates shardbridge's configuration.
//
// # Use
//
// cmd/shardbridge builds a Registry from the connector packages and calls Load:
//
//	reg := config.Registry{
//		Sources: map[string]func() config.PluginConfig{"kinesis": func() config.PluginConfig { return new(kinesis.Config) }},
//		Sinks:   map[string]func() config.PluginConfig{"kafka": func() config.PluginConfig { return new(kafka.Config) }},
//	}
//	cfg, err := config.Load(reg, paths, config.WithoutEnv(os.Environ(), "SHARDBRIDGE_LOG_LEVEL"))
//	if err != nil {
//		for _, p := range config.Problems(err) {
//			fmt.Fprintln(os.Stderr, p) // one line each: key: value: problem; fix
//		}
//	}
//
// The runtime never imports a connector: a connector's section (source.kinesis, sink.kafka)
// is decoded into the struct its package registers, and each connector then type-asserts
// Plugin.Config back to its own type.
//
// # Contracts
//
// Load reads YAML (.yaml, .yml) and TOML (.toml) files, or directories of them, merges them
// with koanf and applies SHARDBRIDGE_-prefixed environment overrides; Load's doc states the
// merge order and how connectors lists concatenate. The same settings written in YAML or in
// TOML load to the same Config.
//
// Decoding is strict. An unknown key anywhere, including inside a plugin's section, is an
// error naming its full path and suggesting a known key within edit distance 2, because a
// typo must not silently fall back to a default. Type mismatches are errors, except that
// strings convert to numbers, booleans and comma-separated lists, since environment
// variables are always strings. Plugins may use Decode for sub-sections they decode
// themselves.
//
// Defaults are filled before decoding (Default, DefaultConnector), so a key that is left
// out takes its default while a key written as zero is checked as written. Plugins fill
// their own defaults in PluginConfig.Validate.
//
// Every problem is reported at once as errors.Join of *FieldError, each printing on one
// line with the key, the value and the fix; a value that failed to decode is not reported
// again by validation.
//
// Value types: ByteSize ("64MiB", "10MB", 1048576), Duration ("30s"; a bare number is
// rejected as ambiguous) and Secret, which prints as "[redacted]" through fmt, slog, JSON
// and text marshalling. A Config marshalled to JSON, as the HTTP API shows it, reveals no
// Secret, provided plugins use Secret for their secrets.
//
// Load does not touch the network, keeps no state and is safe to call concurrently.
package config
