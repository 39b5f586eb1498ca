//go:build race

package kinesis

// raceEnabled reports a -race build. The race detector disables parts of sync.Pool and adds
// per-allocation bookkeeping, so heap figures under it say nothing about production memory.
const raceEnabled = true
