// Package runtimetest has in-memory stand-ins for the runtime's contracts, for tests of sources,
// sinks and the pipeline: a [MemoryStore] checkpoint store.
package runtimetest
