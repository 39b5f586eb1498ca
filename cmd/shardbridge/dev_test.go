package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// `shardbridge dev --records 20000` is the newcomer's first command: it must mirror every record
// once and in order, and say so.
func TestDevMirrorsAndChecks(t *testing.T) {
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"efo", []string{"dev", "--records", "20000", "--rate", "0"}},
		{"polling", []string{"dev", "--records", "5000", "--rate", "0", "--efo=false", "--shards", "2"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(mode.args, &out, &errOut)
			if code != 0 {
				t.Fatalf("dev exited %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
			}
			want := fmt.Sprintf("check passed: %s records mirrored once each, in order per key", mode.args[2])
			if !strings.Contains(out.String(), want) {
				t.Fatalf("output lacks %q:\n%s", want, out.String())
			}
		})
	}
}

func TestDevRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"dev", "--shards", "0"},
		{"dev", "--records", "0"},
		{"dev", "--rate", "-1"},
		{"dev", "--record-size", "3"},
		{"dev", "--log-level", "loud"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code == 0 {
			t.Errorf("%v exited 0", args)
		} else if !strings.Contains(errOut.String(), "--") {
			t.Errorf("%v: error does not name the flag: %s", args, errOut.String())
		}
	}
}

// The check that dev prints must fail on loss, duplicates and reordering, or its "passed" would
// mean nothing.
func TestVerifyMirrorCatchesProblems(t *testing.T) {
	rec := func(key, n int) *kgo.Record {
		v := fmt.Sprintf("k%02d:%08d:%s", key, n, strings.Repeat("x", 10))
		return &kgo.Record{Topic: devTopic, Key: fmt.Appendf(nil, "key-%02d", key), Value: []byte(v)}
	}
	cases := []struct {
		name    string
		records []*kgo.Record
		want    int
		problem string // "" means the check must pass
	}{
		{"good", []*kgo.Record{rec(1, 0), rec(1, 1), rec(2, 0)}, 3, ""},
		{"duplicate", []*kgo.Record{rec(1, 0), rec(1, 0), rec(1, 1)}, 3, "got record 0, want 1"},
		{"reordered", []*kgo.Record{rec(1, 1), rec(1, 0)}, 2, "got record 1, want 0"},
		{"missing", []*kgo.Record{rec(1, 0), rec(1, 2)}, 2, "got record 2, want 1"},
		{"extra", []*kgo.Record{rec(1, 0), rec(1, 1), rec(1, 2)}, 2, "more than 2 records"},
		{"wrong key", []*kgo.Record{{Topic: devTopic, Key: []byte("key-09"), Value: []byte("k01:00000000:x")}}, 1, "does not match key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, devTopic))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			addr := cluster.ListenAddrs()[0]
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(context.Background(), c.records...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			cl.Close()
			var out bytes.Buffer
			err = verifyMirror(t.Context(), addr, c.want, &out)
			switch {
			case c.problem == "" && err != nil:
				t.Fatalf("check failed on a good topic: %v", err)
			case c.problem != "" && (err == nil || !strings.Contains(err.Error(), c.problem)):
				t.Fatalf("check = %v; want an error containing %q", err, c.problem)
			}
		})
	}
}
