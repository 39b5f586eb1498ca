package kafka

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ConnOptions returns the franz-go options that reach and authenticate to the brokers of cfg
// (seed brokers, client id, timeouts, TLS, SASL), for other clients of the connector's cluster,
// such as its group membership. cfg must have passed Validate.
func ConnOptions(ctx context.Context, cfg Config, log *slog.Logger) ([]kgo.Opt, error) {
	return connOpts(ctx, &cfg, log)
}
