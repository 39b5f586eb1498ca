// Package kcat reads Kafka topics with kcat (librdkafka) in tests, so that what shardbridge
// produced is checked by a client nobody here wrote.
//
// Find locates the kcat binary on PATH; when it is missing the test is skipped with a printed
// reason (CI installs kcat, so there it never skips). Consume reads a topic from the beginning to
// its end with a context-bounded kcat process and returns every message.
//
// kcat's -f format strings escape nothing, so a tab or newline in a key, value or header would
// corrupt a tab-separated line. Consume therefore uses kcat's -J JSON envelope, one JSON object
// per message, which quotes keys, payloads and headers as JSON strings. The strings are what
// librdkafka hands kcat as bytes, printed as JSON strings: bytes that are not valid UTF-8 do not
// round-trip, so tests should use UTF-8 keys, values and headers.
package kcat
