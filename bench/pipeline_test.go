package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/config"
	"github.com/shardbridge/shardbridge/sink/kafka"
	"github.com/shardbridge/shardbridge/source/kinesis"
)

// BenchmarkMirror runs the shardbridge pipeline in this process, wired as `shardbridge run`
// wires it (the Kinesis source, the Kafka sink and checkpoint store, one runtime.Connector,
// one pool), so that `go test -bench Mirror -cpuprofile` shows where shardbridge spends its CPU:
// cmd/shardbridge is a main package and exposes no profiler. b.N is the number of records, so
// use -benchtime=Nx. The peers run in this process too, and show up in the profile under
// kinesistest and kfake.
//
// With BENCH_HEAPPROFILE=path it writes a heap profile once the pool has been more than half
// full for a moment, which shows what is live besides the pool. BENCH_ACK_DELAY (a duration)
// delays Kafka's produce responses, as the memory suite does; BENCH_POOL_BYTES sets the pool's
// byte limit (default 64MiB; its record limit is high, so bytes bind). BENCH_DELIVERY=exactly_once
// runs the connector in transactions, as connectors[].delivery exactly_once does, and reports the
// transactions and their mean commit time too.
func BenchmarkMirror(b *testing.B) {
	for _, c := range []struct {
		name         string
		size, shards int
	}{{"100B-4shards", 100, 4}, {"100B-32shards", 100, 32}, {"1KiB-8shards", 1024, 8}, {"1KiB-32shards", 1024, 32}} {
		b.Run(c.name, func(b *testing.B) { benchMirror(b, c.size, c.shards) })
	}
}

func benchMirror(b *testing.B, size, shards int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ackDelay time.Duration
	if v := os.Getenv("BENCH_ACK_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("BENCH_ACK_DELAY: %v", err)
		}
		ackDelay = d
	}
	kp, err := startKinesis(shards, size, 2<<20)
	if err != nil {
		b.Fatal(err)
	}
	defer kp.Close()
	kf, err := startKafka(tpPartitions, ackDelay)
	if err != nil {
		b.Fatal(err)
	}
	defer kf.Close()
	if err := kp.put(ctx, int64(b.N), 4); err != nil {
		b.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	poolBytes := int64(tpPoolBytes)
	if v := os.Getenv("BENCH_POOL_BYTES"); v != "" {
		n, err := config.ParseByteSize(v)
		if err != nil {
			b.Fatalf("BENCH_POOL_BYTES: %v", err)
		}
		poolBytes = int64(n)
	}
	pool := runtime.NewPool(memPoolRecords, poolBytes)
	metrics := runtime.NewMetrics(reg, pool)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	on := true
	srcCfg := kinesis.Config{Stream: benchStream, Region: "us-east-1", Endpoint: kp.srv.Endpoint(), TLSSkipVerify: true,
		StartPosition: "trim_horizon", EFO: kinesis.EFOConfig{Enabled: &on, ConsumerName: "bench-inprocess"},
		Credentials: kinesis.CredentialsConfig{AccessKeyID: "bench", SecretAccessKey: config.Secret("bench")}}
	sinkCfg := kafka.Config{Brokers: []string{kf.broker}, Topic: benchTopic}
	store, err := kafka.NewCheckpointStore(ctx, sinkCfg, config.DefaultCheckpointTopic, kafka.WithConnector("bench"), kafka.WithLogger(log))
	if err != nil {
		b.Fatal(err)
	}
	sinkOpts := []kafka.Option{kafka.WithConnector("bench"), kafka.WithLogger(log), kafka.WithRegisterer(reg)}
	delivery := runtime.DeliveryAtLeastOnce
	if os.Getenv("BENCH_DELIVERY") == string(runtime.DeliveryExactlyOnce) {
		delivery = runtime.DeliveryExactlyOnce
		sinkOpts = append(sinkOpts, kafka.WithTransactions(kafka.TxnOptions{ID: "shardbridge-bench", Timeout: 15 * time.Second, Store: store}))
	}
	sink, err := kafka.NewSink(ctx, sinkCfg, sinkOpts...)
	if err != nil {
		b.Fatal(err)
	}
	src, err := kinesis.New(srcCfg, "bench", kinesis.WithLogger(log), kinesis.WithRegisterer(reg),
		kinesis.WithPoolWaitTimeout(time.Duration(config.DefaultWaitTimeout)))
	if err != nil {
		b.Fatal(err)
	}
	conn, err := runtime.NewConnector(runtime.ConnectorOptions{Name: "bench", Source: src, Sink: sink, Store: store, Pool: pool,
		CheckpointInterval: time.Duration(config.DefaultCheckpointEvery), ShutdownTimeout: 30 * time.Second,
		ErrorPolicy: runtime.PolicyFail, Owner: runtime.Owner{ID: "bench"}, Logger: log, Metrics: metrics, Delivery: delivery})
	if err != nil {
		b.Fatal(err)
	}

	heapPath := os.Getenv("BENCH_HEAPPROFILE")
	b.ResetTimer()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- conn.Run(runCtx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	fullSince := time.Time{}
	for ackedRecords(b, reg) < float64(b.N) {
		select {
		case err := <-done:
			b.Fatalf("connector stopped early: %v", err)
		case <-tick.C:
		}
		if heapPath != "" && pool.Stats().UsedBytes > poolBytes/2 {
			if fullSince.IsZero() {
				fullSince = time.Now()
			} else if time.Since(fullSince) > time.Second {
				writeHeapProfile(b, heapPath)
				heapPath = ""
			}
		}
	}
	b.StopTimer()
	stop()
	if err := <-done; err != nil {
		b.Fatalf("connector: %v", err)
	}
	_ = sink.Close(ctx)
	_ = store.Close(ctx)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if delivery == runtime.DeliveryExactlyOnce {
		n, sum := commitSeconds(b, reg)
		b.ReportMetric(n, "commits")
		b.ReportMetric(sum/max(n, 1)*1000, "ms/commit")
	}
}

// commitSeconds returns how many checkpoint commits (under exactly_once: transaction commits
// with checkpoints) were observed and their total seconds.
func commitSeconds(b *testing.B, reg *prometheus.Registry) (n, sum float64) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "shardbridge_checkpoint_commit_seconds" {
			for _, m := range mf.GetMetric() {
				n += float64(m.GetHistogram().GetSampleCount())
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return n, sum
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

func ackedRecords(b *testing.B, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "shardbridge_records_acked_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
