package kinesismock

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/internal/syncbuf"
)

// Delay is the state-change delay the emulator is started with, for stream
// creation, deletion, resharding and consumer registration. The emulator's
// own default is 500ms.
const Delay = 50 * time.Millisecond

// startTimeout bounds how long Start waits for the emulator to answer. The
// node process needs a second or two to boot on a loaded machine.
const startTimeout = 60 * time.Second

// Region is the region the emulator serves and NewClient signs for.
const Region = "us-east-1"

// Mock is one running kinesis-mock process.
type Mock struct {
	// Endpoint is the HTTPS endpoint (self-signed certificate, HTTP/2 by
	// ALPN), e.g. "https://127.0.0.1:41234". EFO needs it.
	Endpoint string
	// PlainEndpoint is the plain HTTP/1.1 endpoint.
	PlainEndpoint string
}

// Start starts kinesis-mock and returns it once it answers and every stream
// in streams is ACTIVE. Each element of streams is "name" or "name:shards"
// (4 shards when omitted), as kinesis-mock's INITIALIZE_STREAMS takes them.
// The process is killed, and waited for, at t's cleanup; its output is
// logged if the test failed.
func Start(t testing.TB, streams ...string) *Mock {
	t.Helper()
	dir, reason := findInstall()
	if reason != "" {
		t.Skipf("kinesismock: skipping, kinesis-mock is not available: %s", reason)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("kinesismock: skipping, node is not on PATH (%v); install Node.js 18+", err)
	}

	tlsPort, plainPort := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, filepath.Join("node_modules", "kinesis-local", "main.js"))
	cmd.Dir = dir
	env := append(os.Environ(),
		"KINESIS_MOCK_CERT_PATH="+filepath.Join("node_modules", "kinesis-local", "server.json"),
		fmt.Sprintf("KINESIS_MOCK_TLS_PORT=%d", tlsPort),
		fmt.Sprintf("KINESIS_MOCK_PLAIN_PORT=%d", plainPort),
		"AWS_REGION="+Region,
		"LOG_LEVEL=ERROR",
		"SHOULD_PERSIST_DATA=false",
		"LOAD_DATA_IF_EXISTS=false",
	)
	for _, k := range []string{
		"CREATE_STREAM_DURATION", "DELETE_STREAM_DURATION",
		"REGISTER_STREAM_CONSUMER_DURATION", "DEREGISTER_STREAM_CONSUMER_DURATION",
		"MERGE_SHARDS_DURATION", "SPLIT_SHARD_DURATION", "UPDATE_SHARD_COUNT_DURATION",
		"UPDATE_STREAM_MODE_DURATION",
	} {
		env = append(env, k+"="+Delay.String())
	}
	if len(streams) > 0 {
		env = append(env, "INITIALIZE_STREAMS="+strings.Join(streams, ","))
	}
	cmd.Env = env
	out := &syncbuf.Buffer{} // written from exec's copying goroutines, read at cleanup
	cmd.Stdout, cmd.Stderr = out, out
	// Kill, not interrupt: the emulator keeps nothing we need to flush.
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("kinesismock: start node in %s: %v", dir, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("kinesismock: emulator output:\n%s", out.String())
		}
	})

	m := &Mock{
		Endpoint:      fmt.Sprintf("https://127.0.0.1:%d", tlsPort),
		PlainEndpoint: fmt.Sprintf("http://127.0.0.1:%d", plainPort),
	}
	client := NewClient(m.Endpoint)
	names := make([]string, len(streams))
	for i, s := range streams {
		names[i], _, _ = strings.Cut(s, ":")
	}
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		lastErr = ready(ctx, client, names)
		if lastErr == nil {
			return m
		}
		select {
		case err := <-exited:
			t.Fatalf("kinesismock: emulator exited before it was ready: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kinesismock: emulator not ready after %s: %v\n%s", startTimeout, lastErr, out.String())
		}
		// Polling the emulator's readiness with a short tick and an overall
		// deadline: there is no event to wait on in another process.
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports nil once the emulator answers and every named stream is
// ACTIVE.
func ready(ctx context.Context, c *kinesis.Client, streams []string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	for _, s := range streams {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s)})
		if err != nil {
			return fmt.Errorf("describe stream %s: %w", s, err)
		}
		if st := out.StreamDescriptionSummary.StreamStatus; st != types.StreamStatusActive {
			return fmt.Errorf("stream %s is %s", s, st)
		}
	}
	return nil
}

// NewClient returns a Kinesis client for endpoint (either of Mock's), with
// static credentials, region Region, HTTP/2 enabled, certificate
// verification off (the emulator's certificate is self-signed), and no SDK
// retries so tests see every error. It is built without the shared config
// loader, so AWS_CA_BUNDLE in the environment does not affect it.
func NewClient(endpoint string, optFns ...func(*kinesis.Options)) *kinesis.Client {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.InsecureSkipVerify = true
		tr.ForceAttemptHTTP2 = true
	})
	opts := kinesis.Options{
		Region:           Region,
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		HTTPClient:       hc,
		RetryMaxAttempts: 1,
	}
	return kinesis.New(opts, optFns...)
}

// findInstall returns the kinesis-mock install directory, or a reason why
// there is none.
func findInstall() (dir, reason string) {
	const mainJS = "node_modules/kinesis-local/main.js"
	if d := os.Getenv("KINESIS_MOCK_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, mainJS)); err != nil {
			return "", fmt.Sprintf("KINESIS_MOCK_DIR=%s has no %s (%v)", d, mainJS, err)
		}
		return d, ""
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Sprintf("get working directory: %v", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			cand := filepath.Join(d, ".tools", "kinesis-mock")
			if _, err := os.Stat(filepath.Join(cand, mainJS)); err != nil {
				return "", fmt.Sprintf("%s not found under the repository root; run `npm install --no-save kinesis-local@0.6.2` in .tools/kinesis-mock or set KINESIS_MOCK_DIR", mainJS)
			}
			return cand, ""
		}
		if filepath.Dir(d) == d {
			return "", "no go.mod above the working directory and KINESIS_MOCK_DIR is not set"
		}
	}
}

// freePort returns a loopback port that was free a moment ago. Another
// process could take it before the emulator binds it; Start then fails
// clearly rather than talking to the wrong server, because the emulator
// exits when it cannot bind.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("kinesismock: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
