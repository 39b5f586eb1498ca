package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/config"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

const (
	devStream = "dev-stream"
	devTopic  = "dev-mirror"
	devKeys   = 64
)

// devOptions are the dev command's flags.
type devOptions struct {
	shards, partitions int
	records            int
	rate               int
	size               int
	keep, efo          bool
	httpAddr           string
	logFlags
}

func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o devOptions
	fs.IntVar(&o.shards, "shards", 4, "shards of the embedded Kinesis stream")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of the embedded Kafka topic")
	fs.IntVar(&o.records, "records", 20000, "records to write, mirror and check (0 with --keep: write until stopped)")
	fs.IntVar(&o.rate, "rate", 5000, "records written per second (0: as fast as possible)")
	fs.IntVar(&o.size, "record-size", 100, "bytes per record value")
	fs.BoolVar(&o.keep, "keep", false, "keep running after the check, and print the Kafka and Kinesis addresses")
	fs.BoolVar(&o.efo, "efo", true, "read with Enhanced Fan-Out (false: GetRecords polling)")
	fs.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:0", "address of the HTTP API (port 0 picks a free one)")
	o.logFlags.register(fs)
	fs.Lookup("log-level").DefValue, o.level = "warn", "warn"
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.shards < 1 || o.shards > 500:
		return fmt.Errorf("--shards %d: use 1 to 500", o.shards)
	case o.partitions < 1:
		return fmt.Errorf("--partitions %d: use 1 or more", o.partitions)
	case o.records < 0 || (o.records == 0 && !o.keep):
		return fmt.Errorf("--records %d: use 1 or more (or 0 together with --keep)", o.records)
	case o.rate < 0:
		return fmt.Errorf("--rate %d: use 0 (as fast as possible) or more", o.rate)
	case o.size < 24 || o.size > 1<<20:
		return fmt.Errorf("--record-size %d: use 24 to 1048576 bytes", o.size)
	}
	return runDev(ctx, o, stdout, stderr)
}

func runDev(ctx context.Context, o devOptions, stdout, stderr io.Writer) error {
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	ks, err := kinesistest.NewServer(kinesistest.WithStream(devStream, o.shards))
	if err != nil {
		return fmt.Errorf("start embedded kinesis: %w", err)
	}
	defer ks.Close()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(o.partitions), devTopic))
	if err != nil {
		return fmt.Errorf("start embedded kafka: %w", err)
	}
	defer kc.Close()
	broker := kc.ListenAddrs()[0]

	cfg, cfgText, err := devConfig(o, ks.Endpoint(), broker)
	if err != nil {
		return fmt.Errorf("dev config: %w", err)
	}
	fmt.Fprintf(stdout, "shardbridge dev: Kinesis stream %q (%d shards) at %s -> Kafka topic %q (%d partitions) at %s\n",
		devStream, o.shards, ks.Endpoint(), devTopic, o.partitions, broker)

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	startedCh := make(chan started, 1)
	runDone := make(chan error, 1)
	go func() {
		runDone <- runConfig(runCtx, cfg, log, runOptions{onStart: func(s started) { startedCh <- s }})
	}()
	var st started
	select {
	case st = <-startedCh:
	case err := <-runDone:
		return fmt.Errorf("runtime did not start: %w", err)
	}
	fmt.Fprintf(stdout, "HTTP API at http://%s (try /connectors/dev-mirror/status and /metrics)\n", st.APIAddr)

	var written atomic.Int64
	writeCtx, stopWrite := context.WithCancel(ctx)
	defer stopWrite()
	writeDone := make(chan error, 1)
	go func() { writeDone <- writeSample(writeCtx, ks.Client(), o, &written) }()

	start := time.Now()
	checkErr := devProgress(ctx, o, st, &written, writeDone, runDone, stdout)
	elapsed := time.Since(start)
	if checkErr == nil && o.records > 0 {
		checkErr = verifyMirror(ctx, broker, o.records, stdout)
		if checkErr == nil {
			fmt.Fprintf(stdout, "check passed: %d records mirrored once each, in order per key, in %s (%.0f records/s)\n",
				o.records, elapsed.Round(time.Millisecond), float64(o.records)/elapsed.Seconds())
		}
	}
	if o.keep && ctx.Err() == nil {
		fmt.Fprintf(stdout, "\n--keep: still running until Ctrl-C.\n  kcat -b %s -C -t %s -o beginning -f '%%p\\t%%k\\t%%s\\n'\n  aws --endpoint-url %s --no-verify-ssl kinesis list-shards --stream-name %s\n  config:\n%s\n",
			broker, devTopic, ks.Endpoint(), devStream, indent(cfgText, "    "))
		<-ctx.Done()
	}
	stopWrite()
	stopRun()
	if err := <-runDone; err != nil && checkErr == nil {
		checkErr = fmt.Errorf("runtime: %w", err)
	}
	if checkErr != nil {
		fmt.Fprintf(stdout, "check FAILED: %v\n", checkErr)
		return exitError{1}
	}
	return nil
}

// devConfig writes the dev connector's config as a user would, and loads it through the same
// loader and validation as `shardbridge run`.
func devConfig(o devOptions, kinesisEndpoint, broker string) (*config.Config, string, error) {
	text := fmt.Sprintf(`http:
  addr: %q
pool:
  max_pending_records: 20000
  max_pending_bytes: "32MiB"
  wait_timeout: "30s"
shutdown_timeout: "10s"
connectors:
  - name: dev-mirror
    source:
      kinesis:
        stream: %s
        region: us-east-1
        endpoint: %q
        tls_skip_verify: true   # the embedded Kinesis has a self-signed certificate
        start_position: trim_horizon
        credentials:
          access_key_id: dev
          secret_access_key: dev
        efo:
          enabled: %t
        poll_interval: "200ms"
    sink:
      kafka:
        brokers: [%q]
        topic: %s
    checkpoint:
      topic: _shardbridge_checkpoints
      interval: "1s"
`, o.httpAddr, devStream, kinesisEndpoint, o.efo, broker, devTopic)
	dir, err := os.MkdirTemp("", "shardbridge-dev-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "dev.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return nil, "", err
	}
	cfg, err := config.Load(registry(), []string{path}, nil)
	return cfg, text, err
}

// writeSample puts records into the stream at o.rate: devKeys partition keys, each value carrying
// its key and a per-key counter, so the check can see loss, duplicates and order.
func writeSample(ctx context.Context, kc *awskinesis.Client, o devOptions, written *atomic.Int64) error {
	const batch = 500
	counters := make([]int, devKeys)
	pad := strings.Repeat("x", o.size)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for i := 0; o.records == 0 || i < o.records; {
		if o.rate > 0 {
			// Stay at the rate: write what is due by now, in batches.
			due := int(time.Since(start).Seconds() * float64(o.rate))
			if due <= i {
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
				continue
			}
		}
		n := batch
		if o.records > 0 {
			n = min(n, o.records-i)
		}
		if o.rate > 0 {
			n = min(n, max(1, int(time.Since(start).Seconds()*float64(o.rate))-i))
		}
		entries := make([]types.PutRecordsRequestEntry, n)
		for j := range entries {
			k := (i + j) % devKeys
			v := fmt.Sprintf("k%02d:%08d:", k, counters[k])
			counters[k]++
			entries[j] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("key-%02d", k)), Data: []byte(v + pad[len(v):])}
		}
		out, err := kc.PutRecords(ctx, &awskinesis.PutRecordsInput{StreamName: aws.String(devStream), Records: entries})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("put records: %w", err)
		}
		if out.FailedRecordCount != nil && *out.FailedRecordCount > 0 {
			// A retry could reorder a key's records, which the check would then report; the
			// embedded server does not throttle unless told to, so this is an error.
			return fmt.Errorf("put records: %d of %d failed", *out.FailedRecordCount, n)
		}
		i += n
		written.Store(int64(i))
	}
	return nil
}

// devProgress prints a live progress line until every record is mirrored (or, with --records 0,
// until ctx ends).
func devProgress(ctx context.Context, o devOptions, st started, written *atomic.Int64, writeDone, runDone <-chan error, out io.Writer) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	lastMirrored, lastChange := int64(-1), time.Now()
	defer fmt.Fprintln(out)
	for {
		m := metricSums(st)
		mirrored := int64(m["shardbridge_records_acked_total"])
		status, _ := st.Worker.Status("dev-mirror")
		line := fmt.Sprintf("\rwritten %d | mirrored %d | pool %s | lag %s   ", written.Load(), mirrored, poolUse(m), lagLine(status))
		fmt.Fprint(out, line)
		if o.records > 0 && mirrored >= int64(o.records) {
			return nil
		}
		if mirrored != lastMirrored {
			lastMirrored, lastChange = mirrored, time.Now()
		} else if time.Since(lastChange) > 60*time.Second {
			return fmt.Errorf("no progress for 60s: %d of %d records mirrored; connector %s %s", mirrored, o.records, status.State, status.Error)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-writeDone:
			if err != nil {
				return err
			}
			writeDone = nil
		case err := <-runDone:
			if err == nil {
				err = errors.New("stopped before every record was mirrored")
			}
			return fmt.Errorf("runtime: %w", err)
		case <-tick.C:
		}
	}
}

func poolUse(m map[string]float64) string {
	return fmt.Sprintf("%.0f/%.0f records, %.1f MiB", m["shardbridge_pool_used_records"], m["shardbridge_pool_limit_records"],
		m["shardbridge_pool_used_bytes"]/(1<<20))
}

func lagLine(s runtime.ConnectorStatus) string {
	var parts []string
	for _, sh := range s.Shards {
		if sh.Reader == nil {
			continue
		}
		id := sh.Shard
		if i := strings.LastIndexByte(id, '-'); i >= 0 {
			if n, err := strconv.Atoi(id[i+1:]); err == nil {
				id = "s" + strconv.Itoa(n)
			}
		}
		parts = append(parts, fmt.Sprintf("%s=%dms", id, sh.Reader.MillisBehindLatest))
	}
	if len(parts) > 8 {
		return fmt.Sprintf("%d shards", len(parts))
	}
	return strings.Join(parts, " ")
}

// metricSums gathers the runtime's metrics once and sums each family over its labels.
func metricSums(st started) map[string]float64 {
	out := map[string]float64{}
	mfs, err := st.Metrics.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[mf.GetName()] += metricValue(m)
		}
	}
	return out
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// verifyMirror reads the topic back from Kafka and checks that every record arrived exactly once
// and, per key, in the order it was written.
func verifyMirror(ctx context.Context, broker string, want int, out io.Writer) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(devTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	next := map[string]int{} // key -> next expected counter
	seen := 0
	var problems []string
	for seen < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("read back %d of %d records before the deadline", seen, want)
		}
		if err := fetches.Err0(); err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			seen++
			key := string(r.Key)
			parts := strings.SplitN(string(r.Value), ":", 3)
			if len(parts) < 3 || key != "key-"+strings.TrimPrefix(parts[0], "k") {
				problems = append(problems, fmt.Sprintf("partition %d offset %d: value %.30q does not match key %q", r.Partition, r.Offset, r.Value, key))
				return
			}
			n, _ := strconv.Atoi(parts[1])
			if n != next[key] {
				problems = append(problems, fmt.Sprintf("key %s: got record %d, want %d (partition %d offset %d)", key, n, next[key], r.Partition, r.Offset))
			}
			next[key] = n + 1
		})
	}
	// Anything more than want is a duplicate; give a duplicate a moment to show up.
	extraCtx, cancelExtra := context.WithTimeout(ctx, 500*time.Millisecond)
	extra := cl.PollRecords(extraCtx, 1)
	cancelExtra()
	if n := extra.NumRecords(); n > 0 || seen > want {
		problems = append(problems, fmt.Sprintf("more than %d records in the topic", want))
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("... and %d more", len(problems)-10))
		}
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
