package main

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"
)

// machine describes the host the figures come from.
func machine(_ context.Context) string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				mem = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("machine: %d CPUs (%s), memory %s, %s %s/%s, load average %s",
		goruntime.NumCPU(), model, mem, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH, loadavg())
}
