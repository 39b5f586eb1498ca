package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// groupStatus is the status fields of a worker of a group.
type groupStatus struct {
	WorkerID    string   `json:"worker_id"`
	State       string   `json:"state"`
	Error       string   `json:"error"`
	OwnedShards []string `json:"owned_shards"`
	Group       *struct {
		State   string `json:"state"`
		Error   string `json:"error"`
		Members []struct {
			WorkerID string   `json:"worker_id"`
			Shards   []string `json:"shards"`
		} `json:"members"`
	} `json:"group"`
}

func (p *process) groupStatus(connector string) (groupStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, code, err := p.get(ctx, "/connectors/"+connector+"/status")
	if err != nil {
		return groupStatus{}, err
	}
	if code != http.StatusOK {
		return groupStatus{}, fmt.Errorf("status %d: %s", code, b)
	}
	var s groupStatus
	if err := json.Unmarshal(b, &s); err != nil {
		return groupStatus{}, fmt.Errorf("status body %q: %w", b, err)
	}
	return s, nil
}

// startWorker starts one worker of the scenario's group, named by SHARDBRIDGE_WORKER_ID.
func (s *scenario) startWorker(name string) *process {
	s.t.Helper()
	p := launchRuntimeEnv(s.t, name, []string{"SHARDBRIDGE_WORKER_ID=" + name}, s.path)
	p.waitAPI()
	return p
}

// waitOwnership waits until the live workers own every one of the open shards between them,
// each shard exactly one worker's, and the counts differ by at most one; it returns who owns what.
func waitOwnership(t testing.TB, connector string, open []string, within time.Duration, workers ...*process) map[string][]string {
	t.Helper()
	var owned map[string][]string
	waitEvery(t, within, 200*time.Millisecond, fmt.Sprintf("%d open shards spread over %d workers", len(open), len(workers)), func() error {
		owned = map[string][]string{}
		owner := map[string]string{}
		for _, w := range workers {
			st, err := w.groupStatus(connector)
			if err != nil {
				return err
			}
			if st.State != "RUNNING" {
				return fmt.Errorf("%s is %s (%s)", w.name, st.State, st.Error)
			}
			for _, sh := range st.OwnedShards {
				if !slices.Contains(open, sh) {
					continue // a closed shard read to its end stays in its slot
				}
				if prev, dup := owner[sh]; dup {
					return fmt.Errorf("shard %s is owned by %s and %s", sh, prev, w.name)
				}
				owner[sh] = w.name
				owned[w.name] = append(owned[w.name], sh)
			}
		}
		if len(owner) != len(open) {
			return fmt.Errorf("%d of %d open shards owned: %v", len(owner), len(open), owned)
		}
		lo, hi := len(open), 0
		for _, w := range workers {
			lo, hi = min(lo, len(owned[w.name])), max(hi, len(owned[w.name]))
		}
		if hi-lo > 1 {
			return fmt.Errorf("unbalanced: %v", owned)
		}
		return nil
	})
	for _, v := range owned {
		sort.Strings(v)
	}
	return owned
}

// Three workers with the same config share a stream's eight shards: each shard is read by
// exactly one worker, the counts differ by at most one, every worker's status shows the group's
// whole assignment, and every record arrives exactly once.
func TestGroupThreeWorkersShareShards(t *testing.T) {
	s := newScenario(t, 8, 4, runtimeConfig{Group: true})
	open := make([]string, 8)
	for i := range open {
		open[i] = fmt.Sprintf("shardId-%012d", i)
	}
	var workers []*process
	for _, name := range []string{"w1", "w2", "w3"} {
		workers = append(workers, s.startWorker(name))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := background(func() error { return s.writer.put(ctx, 6000, 1500) })
	owned := waitOwnership(t, s.cfg.Connector, open, time.Minute, workers...)
	t.Logf("ownership: %v", owned)
	st, err := workers[0].groupStatus(s.cfg.Connector)
	if err != nil {
		t.Fatal(err)
	}
	if st.WorkerID != "w1" || st.Group == nil || len(st.Group.Members) != 3 {
		t.Fatalf("w1's status shows worker %q and group %+v; want w1 and three members", st.WorkerID, st.Group)
	}
	for _, m := range st.Group.Members {
		var mine []string
		for _, sh := range m.Shards {
			if slices.Contains(open, sh) {
				mine = append(mine, sh)
			}
		}
		if !slices.Equal(mine, owned[m.WorkerID]) {
			t.Errorf("the group's assignment gives %s %v; its own status says %v", m.WorkerID, mine, owned[m.WorkerID])
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := s.kinesisTruth()
	waitMirrored(t, s.kcat, s.kafka.addr(), s.cfg.Topic, want, 2*time.Minute)
	for _, w := range workers {
		w.terminate(time.Minute)
	}
	rep := check(consume(t, s.kcat, s.kafka.addr(), s.cfg.Topic), want)
	t.Logf("%s", rep)
	assertExact(t, rep)
	if !strings.Contains(rep.String(), "0 missing") {
		t.Fatalf("report: %s", rep)
	}
}
