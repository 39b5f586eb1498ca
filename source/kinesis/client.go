package kinesis

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// kinesisAPI lists the Kinesis calls the source makes, and nothing more, so tests can fake them.
// *kinesis.Client implements it.
type kinesisAPI interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error)
	DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error)
	DeregisterStreamConsumer(ctx context.Context, in *kinesis.DeregisterStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.DeregisterStreamConsumerOutput, error)
	SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ kinesisAPI = (*kinesis.Client)(nil)

// newClient builds the Kinesis client from cfg: the standard credential chain unless credentials
// are configured, HTTP/2 with bounded receive buffers, and the initial-response shim.
func newClient(ctx context.Context, cfg *Config) (*kinesis.Client, error) {
	perStream := cfg.HTTP2MaxReceiveBufferPerStream.Int64()
	// A BuildableClient, not a plain *http.Client: when AWS_CA_BUNDLE is set, the config loader
	// must add its roots to the transport, and refuses a client it cannot do that to.
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ForceAttemptHTTP2 = true
		// Only the per-stream window is set: it bounds what a subscription buffers (counted per
		// shard by the memory limit). The connection's window is left at net/http's default (1
		// GiB, so in effect no cap), because a cap below the sum of the streams' windows
		// deadlocks the decode budget: readers waiting for their share leave their streams'
		// windows full, and once those fill the connection's, the events of the readers that
		// hold the budget stop arriving, so they never give it back.
		tr.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: int(perStream)}
		if cfg.TLSSkipVerify {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{}
			}
			tr.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // opt-in, for local emulators
		}
	})
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.Region),
		awsconfig.WithHTTPClient(hc),
	}
	cr := cfg.Credentials
	if cr.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			cr.AccessKeyID, cr.SecretAccessKey.Reveal(), cr.SessionToken.Reveal())))
	}
	if cr.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(cr.Profile))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	if cr.RoleARN != "" {
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(awsCfg), cr.RoleARN))
	}
	return kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.HTTPClient = shimClient{next: o.HTTPClient}
	}), nil
}

// shimClient puts initialResponseTransport, the read gate of a SubscribeToShard call (see
// readGate) and the decode meter of a GetRecords call (see decodeMeter) in front of the SDK's
// HTTP client.
type shimClient struct{ next kinesis.HTTPClient }

func (c shimClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := initialResponseTransport{next: roundTripFunc(c.next.Do)}.RoundTrip(req)
	if err == nil {
		gateBody(req, resp) // outermost: the supplied initial-response is a message too
		meterBody(req, resp)
	}
	return resp, err
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
