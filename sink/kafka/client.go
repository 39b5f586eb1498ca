package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	kaws "github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// batchFraming is what franz-go counts in a record batch beyond Kafka's own batch size: the
// 4-byte length of the records array in the produce request. ProducerBatchMaxBytes is set to
// max_message_bytes plus this, so that franz-go and recordBatchSize agree on which record fits.
const batchFraming = 4

// defaultRequestOverhead is franz-go's default RequestTimeoutOverhead; a shorter request_timeout
// lowers it.
const defaultRequestOverhead = 10 * time.Second

// clientOpts maps a validated Config to franz-go options shared by the sink's producer and the
// checkpoint store: the connection options and the producer options.
//
// Build new options for every client: franz-go's DefaultCompressor dedups the codec slice held by
// ProducerBatchCompression in place, so one []kgo.Opt shared by concurrent NewClient calls races.
func clientOpts(ctx context.Context, cfg *Config, log *slog.Logger) ([]kgo.Opt, error) {
	opts, err := connOpts(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ProduceRequestTimeout(cfg.RequestTimeout.D()),
		// No kgo.RecordDeliveryTimeout: franz-go measures it from the record's Timestamp, which
		// here is the Kinesis arrival time, so every record read behind the stream's tip would
		// time out at once. Write bounds delivery with a context deadline instead.
		kgo.ProducerLinger(cfg.Linger.D()),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.MaxBufferedBytes(int(cfg.MaxBufferedBytes)),
		kgo.ProducerBatchMaxBytes(int32(cfg.MaxMessageBytes)+batchFraming),
		// A nil hasher is KafkaHasher(murmur2): toPositive(murmur2(key)) % partitions, the Java
		// client's default partitioner for keyed records (pinned in partition_test.go).
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	// Validate refuses acks none: a record must count as written only once a broker has it.
	switch cfg.Acks {
	case "all":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "leader":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	}
	if cfg.Idempotence != nil && !*cfg.Idempotence {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	switch cfg.Compression {
	case "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	}
	return opts, nil
}

// connOpts are the options to reach and authenticate to the brokers.
func connOpts(ctx context.Context, cfg *Config, log *slog.Logger) ([]kgo.Opt, error) {
	overhead := min(defaultRequestOverhead, cfg.RequestTimeout.D())
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DialTimeout(overhead),
		kgo.RequestTimeoutOverhead(overhead),
		kgo.WithLogger(slogAdapter{log}),
	}
	if cfg.TLS.Enabled {
		tc, err := tlsConfig(&cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if cfg.SASL.Mechanism != "" {
		m, err := saslMechanism(ctx, &cfg.SASL)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func tlsConfig(t *TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in for local use, documented
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read sink.kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sink.kafka.tls.ca_file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// The error names the files, never their content.
			return nil, fmt.Errorf("load sink.kafka.tls.cert_file and key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func saslMechanism(ctx context.Context, s *SASLConfig) (sasl.Mechanism, error) {
	switch s.Mechanism {
	case SASLPlain:
		return plain.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsMechanism(), nil
	case SASLScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsSha256Mechanism(), nil
	case SASLScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password.Reveal()}.AsSha512Mechanism(), nil
	case SASLAWSMSKIAM:
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("load AWS config for sink.kafka.sasl AWS_MSK_IAM: %w", err)
		}
		creds := awsCfg.Credentials
		if creds == nil {
			return nil, errors.New("sink.kafka.sasl AWS_MSK_IAM: the AWS credential chain found no credentials; provide them through the environment, a profile or a role")
		}
		// Credentials are fetched for every authentication: the provider caches and refreshes
		// them, so rotated role credentials are picked up when franz-go re-authenticates.
		return kaws.ManagedStreamingIAM(func(ctx context.Context) (kaws.Auth, error) {
			c, err := creds.Retrieve(ctx)
			if err != nil {
				return kaws.Auth{}, fmt.Errorf("retrieve AWS credentials for AWS_MSK_IAM: %w", err)
			}
			return kaws.Auth{AccessKey: c.AccessKeyID, SecretKey: c.SecretAccessKey, SessionToken: c.SessionToken}, nil
		}), nil
	}
	return nil, fmt.Errorf("unknown sink.kafka.sasl.mechanism %q", s.Mechanism)
}

// UnreachableError reports that no broker answered the connectivity check at start within
// request_timeout: the address is wrong or unreachable, or TLS or SASL failed.
type UnreachableError struct {
	Brokers []string
	Timeout time.Duration
	Err     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("kafka brokers %s could not be reached (checked for up to %s, sink.kafka.request_timeout): %v; check sink.kafka.brokers, the network, sink.kafka.tls and the sink.kafka.sasl credentials",
		strings.Join(e.Brokers, ","), e.Timeout, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// ping asks the brokers for metadata, bounded by request_timeout, so a broker that cannot be
// reached is reported at start with its address instead of as a silent hang later.
func ping(ctx context.Context, cl *kgo.Client, cfg *Config) error {
	pctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout.D())
	defer cancel()
	err := cl.Ping(pctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("check kafka brokers %s: %w", strings.Join(cfg.Brokers, ","), ctx.Err())
	}
	return &UnreachableError{Brokers: cfg.Brokers, Timeout: cfg.RequestTimeout.D(), Err: err}
}

// slogAdapter logs franz-go's messages through slog. franz-go never logs SASL secrets.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case a.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelDebug
	case a.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case a.l.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (a slogAdapter) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		// franz-go's info messages are connection chatter; keep them at debug.
		l = slog.LevelDebug
	default:
		l = slog.LevelDebug - 4
	}
	a.l.Log(context.Background(), l, "kafka client: "+msg, keyvals...)
}
