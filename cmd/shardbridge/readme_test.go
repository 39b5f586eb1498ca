package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shardbridge/shardbridge/internal/syncbuf"
	"github.com/shardbridge/shardbridge/runtime/config"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

// readmeTable returns the rows of the first Markdown table after the heading line heading, each
// row split into trimmed cells.
func readmeTable(t *testing.T, heading string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	found, inTable := false, false
	var rows [][]string
	for sc.Scan() {
		line := sc.Text()
		if !found {
			found = line == heading
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		rows = append(rows, cells)
	}
	if !found || len(rows) < 2 {
		t.Fatalf("README.md has no table under %q", heading)
	}
	return rows[1:] // without the header row
}

// codeSpan returns the text of a cell that is exactly one `code span`.
func codeSpan(cell string) (string, bool) {
	if len(cell) >= 2 && strings.HasPrefix(cell, "`") && strings.HasSuffix(cell, "`") && strings.Count(cell, "`") == 2 {
		return cell[1 : len(cell)-1], true
	}
	return "", false
}

// The README's config reference lists exactly the keys of the config structs, with their types,
// and every default written as code is what loading a config fills in.
func TestReadmeConfigReference(t *testing.T) {
	type row struct{ typ, def string }
	table := map[string]row{}
	for _, cells := range readmeTable(t, "### Reference") {
		if len(cells) != 4 {
			t.Fatalf("reference row %q: want 4 cells", cells)
		}
		key, ok := codeSpan(cells[0])
		if !ok {
			t.Fatalf("reference row %q: the key is not a code span", cells)
		}
		if _, dup := table[key]; dup {
			t.Errorf("README lists %s twice", key)
		}
		table[key] = row{cells[1], cells[2]}
	}

	// A config with only the required keys, loaded as `shardbridge run` loads it.
	const connector = "orders-mirror"
	path := filepath.Join(t.TempDir(), "minimal.yaml")
	minimal := `connectors:
  - name: ` + connector + `
    source: {kinesis: {stream: orders, region: us-east-1}}
    sink: {kafka: {brokers: ["localhost:9092"], topic: orders}}
`
	if err := os.WriteFile(path, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(registry(), []string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}

	keys := configKeys()
	inStructs := map[string]bool{}
	for _, k := range keys {
		inStructs[k.Path] = true
		r, ok := table[k.Path]
		if !ok {
			t.Errorf("README's reference lacks %s (%s)", k.Path, keyTypeName(k.Type))
			continue
		}
		if want := keyTypeName(k.Type); r.typ != want {
			t.Errorf("README says %s is a %s; the struct says %s", k.Path, r.typ, want)
		}
		def, isCode := codeSpan(r.def)
		if !isCode {
			continue // "required", "none": prose, checked by reading
		}
		def = strings.ReplaceAll(def, "<connector name>", connector)
		got, err := valueAt(reflect.ValueOf(cfg).Elem(), k.Path)
		if err != nil {
			t.Errorf("%s: %v", k.Path, err)
			continue
		}
		if msg := sameDefault(got, def); msg != "" {
			t.Errorf("README's default of %s is %q, but loading fills in %s", k.Path, def, msg)
		}
	}
	for key := range table {
		if !inStructs[key] {
			t.Errorf("README's reference lists %s, which no config struct has", key)
		}
	}
	if len(keys) < 50 {
		t.Fatalf("walked only %d keys; the walker lost some", len(keys))
	}
}

// valueAt follows a key path such as "connectors[].sink.kafka.tls.enabled" through the loaded
// config by koanf tags, taking the first element of lists and the typed plugin sections.
func valueAt(v reflect.Value, path string) (reflect.Value, error) {
	for _, part := range strings.Split(path, ".") {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			v = v.Elem()
		}
		if v.Type() == reflect.TypeFor[config.Plugin]() {
			p := v.Interface().(config.Plugin)
			if p.Type != part {
				return v, fmt.Errorf("section %s is not %s", p.Type, part)
			}
			v = reflect.ValueOf(p.Config)
			continue
		}
		name, list := strings.CutSuffix(part, "[]")
		found := false
		for i := range v.NumField() {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("koanf"), ",")
			if tag == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return v, fmt.Errorf("no field %s", name)
		}
		if list {
			if v.Len() == 0 {
				return v, fmt.Errorf("%s is empty", name)
			}
			v = v.Index(0)
		}
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return v, fmt.Errorf("nil after loading")
		}
		v = v.Elem()
	}
	return v, nil
}

// sameDefault compares a loaded value with the README's text of it; it returns "" when they
// agree, else the loaded value as text.
func sameDefault(v reflect.Value, readme string) string {
	switch x := v.Interface().(type) {
	case config.ByteSize:
		if b, err := config.ParseByteSize(readme); err == nil && b == x {
			return ""
		}
		return x.String()
	case config.Duration:
		if d, err := config.ParseDuration(readme); err == nil && d == x {
			return ""
		}
		return x.String()
	case config.Secret:
		if readme == `""` && x == "" {
			return ""
		}
		return "a non-empty secret"
	case config.MemoryLimit:
		if m, err := config.ParseMemoryLimit(readme); err == nil && m == x {
			return ""
		}
		return x.String()
	}
	var got string
	switch v.Kind() {
	case reflect.String:
		got = v.String()
		if readme == `""` {
			readme = ""
		}
	case reflect.Bool:
		got = strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int32, reflect.Int64:
		got = strconv.FormatInt(v.Int(), 10)
	default:
		return fmt.Sprintf("%v (a type the test cannot compare)", v.Interface())
	}
	if got == readme {
		return ""
	}
	return strconv.Quote(got)
}

// Every metric in the README's table is exposed by a running process (metricsScenario), and every
// shardbridge_* family exposed is in the table.
func TestReadmeMetricsExposed(t *testing.T) {
	documented, docType, docLabels := readmeMetrics(t)
	sc := startMetricsScenario(t)
	families, samples := sc.families, sc.samples

	// The other way: nothing exposed under shardbridge_ goes undocumented.
	for f := range families {
		if strings.HasPrefix(f, "shardbridge_") && !slices.Contains(documented, f) {
			t.Errorf("/metrics exposes %s, which README's metrics table does not list", f)
		}
	}
	// The type and label columns say what is exposed.
	labels := exposedLabels(families, samples)
	for _, name := range documented {
		if strings.HasSuffix(name, "*") {
			continue
		}
		if got := families[name]; got != docType[name] {
			t.Errorf("README says %s is a %s; /metrics says %s", name, docType[name], got)
		}
		var want []string
		if docLabels[name] != "" {
			want = strings.Split(docLabels[name], ", ")
		}
		sort.Strings(want)
		if got := labels[name]; !slices.Equal(got, want) {
			t.Errorf("README gives %s the labels %q; /metrics shows %q", name, docLabels[name], strings.Join(got, ", "))
		}
	}
	// The figures to watch name only documented metrics.
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, figures, _ := strings.Cut(string(b), "### Five figures to watch")
	figures, _, _ = strings.Cut(figures, "\n## ")
	named := regexp.MustCompile(`shardbridge_[a-z_]+[a-z]`).FindAllString(figures, -1)
	if len(named) < 5 {
		t.Errorf("the figures to watch name %d metrics; want at least 5", len(named))
	}
	for _, n := range named {
		if !slices.Contains(documented, n) {
			t.Errorf("the figures to watch use %s, which the metrics table does not list", n)
		}
	}

	// The fail-big connector is meant to fail; the others must not.
	runErr := sc.stop()
	if runErr == nil || !strings.Contains(runErr.Error(), "fail-big") {
		t.Errorf("runConfig returned %v; want the failure of fail-big only", runErr)
	}
	for _, name := range []string{"mirror", "skip-big", "dead-letter", "group"} {
		if runErr != nil && strings.Contains(runErr.Error(), name+":") {
			t.Errorf("connector %s failed: %v", name, runErr)
		}
	}
}

// readmeMetrics returns the names in the README's metrics table, in order, with the type and
// labels cells of each.
func readmeMetrics(t *testing.T) (documented []string, docType, docLabels map[string]string) {
	t.Helper()
	docType, docLabels = map[string]string{}, map[string]string{}
	for _, cells := range readmeTable(t, "## Metrics") {
		name, ok := codeSpan(cells[0])
		if !ok || len(cells) != 4 {
			t.Fatalf("metrics row %q: want 4 cells, the name a code span", cells)
		}
		documented = append(documented, name)
		docType[name], docLabels[name] = cells[1], cells[2]
	}
	return documented, docType, docLabels
}

// metricsScenario is a scrape of a running process in which every metric the README's table
// lists has a first sample.
type metricsScenario struct {
	families map[string]string  // family types by name, as scrape returns them
	samples  map[string]float64 // sample values by their text before the value
	// stop cancels runConfig and returns what it returned; it also runs at the test's cleanup.
	stop func() error
}

// startMetricsScenario runs the real runConfig against an in-process Kinesis and Kafka with five
// connectors, so that every family gets a first sample over /metrics (labelled vectors appear only
// then), and returns the first scrape that holds every family the README's metrics table lists:
// a mirror of 300 records; a connector with errors.policy skip and a 512B max_message_bytes
// reading a stream holding a 2KiB record (produce_errors_total{too_large},
// records_skipped_total); the same with errors.policy fail (records_failed_total; the connector
// ends FAILED); a connector whose topic template renders a name longer than Kafka allows,
// with errors.policy dlq (records_dead_lettered_total); and a connector in group mode whose
// group another worker (a second runConfig, started first, which owns both shards of its stream
// until this process joins) shares, so that this process gets a shard handed over
// (shardbridge_group_* and shardbridge_group_handover_seconds). Subscriptions live 500ms, so
// subscriptions_ended_total{reason="expired"} appears. No name is checked only by descriptor.
func startMetricsScenario(t *testing.T) *metricsScenario {
	t.Helper()
	documented, _, _ := readmeMetrics(t)

	const (
		mainStream  = "readme-main"
		bigStream   = "readme-big"
		groupStream = "readme-group"
		dlqTopic    = "readme-dlq"
		mainCount   = 300
		groupCount  = 100
	)
	// {stream}.{stream} renders 2 x 125 + 1 = 251 characters, over Kafka's 249.
	longStream := "readme-dlq-" + strings.Repeat("x", 114)

	ks, err := kinesistest.NewServer(
		kinesistest.WithStream(mainStream, 2),
		kinesistest.WithStream(bigStream, 1),
		kinesistest.WithStream(longStream, 1),
		kinesistest.WithStream(groupStream, 2),
		kinesistest.WithSubscriptionLifetime(500*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	// The group connector's short session needs a broker that allows it (Kafka's default minimum
	// is 6s).
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, mainStream, bigStream, dlqTopic, groupStream),
		kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	broker := kc.ListenAddrs()[0]

	source := func(stream string) string {
		return fmt.Sprintf(`kinesis: {stream: %q, region: us-east-1, endpoint: %q, tls_skip_verify: true,
        credentials: {access_key_id: test, secret_access_key: test}}`, stream, ks.Endpoint())
	}
	// Each connector has its own checkpoint topic. Connectors that share one race to create it
	// on a fresh cluster: the checkpoint store does not wait for a topic another connector has
	// just created (TopicAlreadyExists), and a loser's first Load can then fail with
	// UNKNOWN_TOPIC_OR_PARTITION. This test is about metrics, not that race.
	// The group connector of this process and of the peer worker.
	groupConnector := fmt.Sprintf(`  - name: group
    source:
      %s
    sink:
      kafka: {brokers: [%q], topic: %s}
    checkpoint: {topic: _cp-group, interval: "200ms"}
    group: {enabled: true, session_timeout: "3s", heartbeat_interval: "300ms", partitions: 8}
`, source(groupStream), broker, groupStream)
	text := fmt.Sprintf(`http:
  addr: "127.0.0.1:0"
shutdown_timeout: "5s"
worker_id: readme-scenario
connectors:
  - name: mirror
    source:
      %[1]s
    sink:
      kafka: {brokers: [%[5]q], topic: %[6]s}
    checkpoint: {topic: _cp-mirror, interval: "200ms"}
  - name: skip-big
    source:
      %[2]s
    sink:
      kafka: {brokers: [%[5]q], topic: %[7]s, max_message_bytes: "512B"}
    checkpoint: {topic: _cp-skip-big, interval: "200ms"}
    errors: {policy: skip}
  - name: fail-big
    source:
      %[3]s
    sink:
      kafka: {brokers: [%[5]q], topic: %[7]s, max_message_bytes: "512B"}
    checkpoint: {topic: _cp-fail-big, interval: "200ms"}
    errors: {policy: fail}
  - name: dead-letter
    source:
      %[4]s
    sink:
      kafka: {brokers: [%[5]q], topic: "{stream}.{stream}"}
    checkpoint: {topic: _cp-dead-letter, interval: "200ms"}
    errors: {policy: dlq, dlq_topic: %[8]s}
`, source(mainStream), source(bigStream), source(bigStream), source(longStream), broker, mainStream, bigStream, dlqTopic) + groupConnector
	text += eosConnector(kc, source(mainStream), broker)
	loadConfig := func(name, text string) *config.Config {
		t.Helper()
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(registry(), []string{path}, nil)
		if err != nil {
			t.Fatalf("scenario config %s: %v", name, err)
		}
		return cfg
	}
	cfg := loadConfig("metrics.yaml", text)
	peerCfg := loadConfig("peer.yaml", `http:
  addr: "127.0.0.1:0"
shutdown_timeout: "5s"
worker_id: readme-peer
connectors:
`+groupConnector)

	put := func(stream string, n, size int) {
		t.Helper()
		entries := make([]types.PutRecordsRequestEntry, n)
		for i := range entries {
			v := fmt.Sprintf("record %d ", i)
			v += strings.Repeat("x", max(0, size-len(v)))
			entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("key-%d", i%7)), Data: []byte(v)}
		}
		out, err := ks.Client().PutRecords(context.Background(), &awskinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("put records into %s: %v (failed %d)", stream, err, aws.ToInt32(out.FailedRecordCount))
		}
	}
	put(mainStream, mainCount, 64)
	put(bigStream, 1, 2048)
	put(longStream, 1, 64)
	put(groupStream, groupCount, 64)

	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	startPeerWorker(t, peerCfg, log, &logs)
	ctx, cancel := context.WithCancel(context.Background())
	startedCh := make(chan started, 1)
	runDone := make(chan error, 1)
	go func() { runDone <- runConfig(ctx, cfg, log, runOptions{onStart: func(s started) { startedCh <- s }}) }()
	// runConfig is owned here: cancel it and wait for it however the test ends.
	var runErr error
	stopped := false
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-runDone
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	var st started
	select {
	case st = <-startedCh:
	case err := <-runDone:
		stopped = true
		t.Fatalf("runConfig did not start: %v\n%s", err, logs.String())
	}

	url := "http://" + st.APIAddr + "/metrics"
	var families map[string]string
	var samples map[string]float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		families, samples, err = scrape(ctx, url)
		if err != nil {
			t.Fatalf("scrape %s: %v", url, err)
		}
		missing := missingMetrics(documented, families)
		done := len(missing) == 0 &&
			samples[`shardbridge_records_acked_total{connector="mirror"}`] >= mainCount &&
			samples[`shardbridge_records_dead_lettered_total{connector="dead-letter"}`] >= 1 &&
			samples[`shardbridge_records_skipped_total{connector="skip-big"}`] >= 1 &&
			samples[`shardbridge_records_failed_total{connector="fail-big"}`] >= 1 &&
			samples[`shardbridge_group_handover_seconds_count{connector="group"}`] >= 1 &&
			eosDone(samples, mainCount)
		if done {
			break
		}
		if time.Now().After(deadline) {
			var states []string
			for _, name := range st.Worker.Names() {
				s, _ := st.Worker.Status(name)
				states = append(states, fmt.Sprintf("%s: %s %s", name, s.State, s.Error))
			}
			t.Fatalf("after 30s /metrics still lacks %v (mirror acked %v of %d)\nconnectors: %s\nlogs:\n%s",
				missing, samples[`shardbridge_records_acked_total{connector="mirror"}`], mainCount, strings.Join(states, "; "), logs.String())
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case err := <-runDone:
			stopped = true
			t.Fatalf("runConfig ended early: %v\nlogs:\n%s", err, logs.String())
		}
	}
	return &metricsScenario{families: families, samples: samples, stop: stop}
}

// startPeerWorker runs cfg (a group connector) as a second worker of its group, in this test
// process, until the test's cleanup, and waits until it owns every shard of its stream: the
// scenario's process then joins the group and gets its share handed over.
func startPeerWorker(t *testing.T, cfg *config.Config, log *slog.Logger, logs *syncbuf.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	startedCh := make(chan started, 1)
	done := make(chan error, 1)
	go func() { done <- runConfig(ctx, cfg, log, runOptions{onStart: func(s started) { startedCh <- s }}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("peer worker: %v", err)
		}
	})
	var st started
	select {
	case st = <-startedCh:
	case err := <-done:
		t.Fatalf("peer worker did not start: %v\n%s", err, logs.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := st.Worker.Status("group")
		if err == nil && len(s.OwnedShards) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer worker owns %v after 30s (%v); want both shards\n%s", s.OwnedShards, err, logs.String())
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case err := <-done:
			t.Fatalf("peer worker ended early: %v\n%s", err, logs.String())
		}
	}
}

// exposedLabels returns the sorted label names of each family's samples (without a histogram's
// "le").
func exposedLabels(families map[string]string, samples map[string]float64) map[string][]string {
	out := map[string][]string{}
	for key := range samples {
		name, rest, _ := strings.Cut(key, "{")
		if _, ok := families[name]; !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && families[base] != "" {
					name = base
					break
				}
			}
		}
		for _, pair := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			label, _, ok := strings.Cut(pair, "=")
			if ok && label != "le" && !slices.Contains(out[name], label) {
				out[name] = append(out[name], label)
			}
		}
	}
	for _, l := range out {
		sort.Strings(l)
	}
	return out
}

// missingMetrics returns the documented names (or name* prefixes) with no family exposed.
func missingMetrics(documented []string, families map[string]string) []string {
	var missing []string
	for _, name := range documented {
		if prefix, ok := strings.CutSuffix(name, "*"); ok {
			found := false
			for f := range families {
				if strings.HasPrefix(f, prefix) {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, name)
			}
			continue
		}
		if families[name] == "" {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	return missing
}

// scrape GETs a Prometheus text exposition and returns its families' types by name (from the
// TYPE lines, which the registry writes only for families with a sample) and the value of every
// sample line, keyed by its text before the value.
func scrape(ctx context.Context, url string) (map[string]string, map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("status %s", resp.Status)
	}
	families := map[string]string{}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if f := strings.Fields(rest); len(f) == 2 {
				families[f[0]] = f[1]
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			samples[line[:i]] = v
		}
	}
	return families, samples, sc.Err()
}

// The README's HTTP API table lists exactly the endpoints runtime/api's package doc lists.
func TestReadmeAPIEndpoints(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "runtime", "api", "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	route := regexp.MustCompile(`(?m)^//\s+(GET|PUT|POST|PATCH|DELETE)\s+(/\S*)`)
	var want []string
	for _, m := range route.FindAllStringSubmatch(string(doc), -1) {
		want = append(want, m[1]+" "+m[2])
	}
	if len(want) < 10 {
		t.Fatalf("found only %d endpoints in runtime/api/doc.go", len(want))
	}
	var got []string
	for _, cells := range readmeTable(t, "## HTTP API") {
		ep, ok := codeSpan(cells[0])
		if !ok {
			t.Fatalf("API row %q: the endpoint is not a code span", cells)
		}
		got = append(got, ep)
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("README's API table lists\n  %s\nruntime/api/doc.go lists\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Every complete config shown in the README (a ```yaml block with a connectors list) validates.
func TestReadmeConfigBlocksValidate(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	n := 0
	for i, m := range blocks {
		if !strings.Contains(m[1], "connectors:") {
			continue
		}
		n++
		path := filepath.Join(t.TempDir(), fmt.Sprintf("readme-%d.yaml", i))
		if err := os.WriteFile(path, []byte(m[1]), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := run([]string{"validate", "--config", path}, &out, &errOut); code != 0 {
			t.Errorf("README's yaml block %d does not validate (exit %d):\n%s\n%s", i, code, m[1], errOut.String())
		}
	}
	if n == 0 {
		t.Fatal("README shows no complete yaml config")
	}
}

// eosConnector returns the YAML of a connector with delivery exactly_once mirroring the stream of
// source (mainCount records) into topic readme-eos, and makes the broker refuse its first
// produce (INVALID_RECORD): the transaction aborts and the connector rewinds, so
// shardbridge_transactions_total (committed and aborted) and shardbridge_rewinds_total get
// samples. eosDone says when it is through.
func eosConnector(kc *kfake.Cluster, source, broker string) string {
	kc.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "readme-eos", Err: kerr.InvalidRecord, Count: 1})
	return fmt.Sprintf(`  - name: eos
    source:
      %s
    sink:
      kafka: {brokers: [%q], topic: readme-eos}
    checkpoint: {topic: _cp-eos, interval: "200ms"}
    delivery: exactly_once
`, source, broker)
}

func eosDone(samples map[string]float64, records int) bool {
	return samples[`shardbridge_rewinds_total{connector="eos"}`] >= 1 &&
		samples[`shardbridge_records_acked_total{connector="eos"}`] >= float64(records)
}
