// Package e2e is shardbridge's end-to-end fault suite. It holds only tests; see the package's
// test files.
package e2e
