// Package kinesismock starts kinesis-mock, the third-party Kinesis emulator
// (npm package kinesis-local, the one LocalStack runs), for compatibility
// tests.
//
// Start finds the installation, starts one emulator process per call on two
// free loopback ports (HTTPS with HTTP/2, and plain HTTP), waits until it
// answers ListStreams and until every requested stream is ACTIVE, and stops
// the process when the test ends. It skips the test, with a printed reason,
// only when node or the installation is missing; every other failure fails
// the test.
//
// The installation is found in this order:
//   - the directory named by the KINESIS_MOCK_DIR environment variable;
//   - .tools/kinesis-mock in the repository root, found by walking up from
//     the test's working directory to the directory holding go.mod.
//
// In either place node_modules/kinesis-local/main.js must exist. CI installs
// it with `npm install --no-save kinesis-local@0.6.2` inside
// .tools/kinesis-mock.
//
// The emulator's state-change delays (CREATE_STREAM_DURATION and friends,
// 500ms by default) are shortened to Delay so tests stay fast while the
// CREATING and UPDATING states still exist and must be waited for.
// kinesis-mock's EFO stream omits the initial-response event that
// aws-sdk-go-v2 expects; see the Kinesis source for how that is tolerated.
//
// Use NewClient for an aws-sdk-go-v2 Kinesis client that trusts the
// emulator's self-signed certificate, speaks HTTP/2, and ignores any
// AWS_CA_BUNDLE in the environment.
package kinesismock
