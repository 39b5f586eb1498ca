package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	repeat     int
	scale      float64
	eventBytes int
	keep       bool
	failovers  int
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./bench [flags] memory|throughput|latency|group|all")
		fs.PrintDefaults()
	}
	var o options
	fs.IntVar(&o.repeat, "repeat", 2, "runs of each configuration")
	fs.Float64Var(&o.scale, "scale", 1, "multiplies every backlog (0.1 for a quick smoke run)")
	fs.IntVar(&o.eventBytes, "event-bytes", 2<<20, "largest record data in one SubscribeToShardEvent (the E of the memory formula)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder (configs, binaries, child logs)")
	fs.IntVar(&o.failovers, "failovers", 5, "group suite: runs of each failover (fault and session timeout); 0 skips them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || o.repeat < 1 || o.scale <= 0 || o.failovers < 0 {
		fs.Usage()
		return errors.New("name one suite: memory, throughput, latency, group or all")
	}
	suite := fs.Arg(0)
	if suite != "memory" && suite != "throughput" && suite != "latency" && suite != "group" && suite != "all" {
		fs.Usage()
		return fmt.Errorf("unknown suite %q", suite)
	}

	dir, err := os.MkdirTemp("", "shardbridge-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(stderr, "work folder: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintln(stderr, "building shardbridge and the floor (no -race)...")
	sb, floor, err := buildBinaries(ctx, dir)
	if err != nil {
		return err
	}
	b := &bench{o: o, bins: binaries{shardbridge: sb, floor: floor}, dir: dir, out: stdout, log: stderr}
	fmt.Fprintln(stdout, machine(ctx))
	start := time.Now()
	if suite == "memory" || suite == "all" {
		if err := b.memory(ctx); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	if suite == "throughput" || suite == "all" {
		if err := b.throughput(ctx); err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
	}
	if suite == "latency" || suite == "all" {
		if err := b.latency(ctx); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if suite == "group" || suite == "all" {
		if err := b.group(ctx); err != nil {
			return fmt.Errorf("group: %w", err)
		}
	}
	fmt.Fprintf(stdout, "\nbench %s finished in %s; load average now %s\n", suite, time.Since(start).Round(time.Second), loadavg())
	return nil
}

// bench holds what every suite shares.
type bench struct {
	o    options
	bins binaries
	dir  string
	out  io.Writer // the report: markdown
	log  io.Writer // progress
	runs int       // runs so far, for unique consumer names
}

func (b *bench) consumer(prog string) string {
	b.runs++
	return fmt.Sprintf("%s-run-%d", prog, b.runs)
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

const (
	kib = 1 << 10
	mib = 1 << 20
)

func mibs(n float64) string { return fmt.Sprintf("%.1f", n/mib) }
