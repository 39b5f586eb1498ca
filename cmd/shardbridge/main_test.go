package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "shardbridge ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run(nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "Usage:") {
		t.Fatalf("no command: %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %q", code, errOut.String())
	}
}

func TestRunNeedsAConfig(t *testing.T) {
	t.Setenv("SHARDBRIDGE_CONFIG", "")
	var out, errOut bytes.Buffer
	if code := run([]string{"run"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "--config") {
		t.Fatalf("run without config: %d %q", code, errOut.String())
	}
}

// validate prints every problem of a config, each naming its key, and exits 1.
func TestValidatePrintsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := `pool:
  max_pending_bytes: "64XB"
  wait_timout: "30s"
connectors:
  - name: orders
    source:
      kinesis:
        stream: orders
        region: us-east-1
        start_position: yesterday
    sink:
      kafka:
        brokers: []
        topic: orders
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run([]string{"validate", "--config", path}, &out, &errOut)
	if code != 1 {
		t.Fatalf("validate exited %d; want 1\n%s", code, errOut.String())
	}
	for _, want := range []string{"max_pending_bytes", "wait_timout", "did you mean wait_timeout", "start_position", "brokers"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("validate output lacks %q:\n%s", want, errOut.String())
		}
	}
}
