// Package api serves shardbridge's HTTP API: a small Kafka-Connect-like JSON API over a
// [runtime.Worker], Prometheus metrics and health endpoints.
//
//	GET    /connectors                    names of the connectors
//	GET    /connectors/{name}             the connector's config, secrets redacted
//	GET    /connectors/{name}/status      state (RUNNING, PAUSED, FAILED with the error, STOPPED) and per-shard status
//	PUT    /connectors/{name}/pause       stop reading; in-flight records still complete
//	PUT    /connectors/{name}/resume      undo pause
//	PUT    /connectors/{name}/stop        drain and stop (KIP-875); offsets can then be edited
//	POST   /connectors/{name}/restart     drain, then start again (also starts a stopped connector)
//	GET    /connectors/{name}/offsets     the stored checkpoints
//	PATCH  /connectors/{name}/offsets     write checkpoints; only while STOPPED
//	DELETE /connectors/{name}/offsets     delete checkpoints (all, or ?shard=ID); only while STOPPED
//	GET    /metrics                       Prometheus metrics
//	GET    /healthz                       200 while the process is alive
//	GET    /readyz                        200 when every connector is RUNNING, else 503 with the reasons
//
// When a token is configured (http.auth_token), every mutating request (PUT, POST, PATCH, DELETE)
// needs "Authorization: Bearer TOKEN"; reads stay open so probes and scrapers need no secret.
// Errors are JSON: {"error_code": 404, "message": "..."}, as in Kafka Connect.
//
// The offsets body of PATCH, in Kafka Connect's shape:
//
//	{"offsets": [{"partition": {"shard": "shardId-000000000001"},
//	              "offset": {"sequence_number": "4959...", "sub_sequence_number": 0, "end": false}}]}
package api
