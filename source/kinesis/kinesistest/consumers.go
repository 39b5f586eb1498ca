package kinesistest

import (
	"fmt"
	"sort"
	"strings"
)

type consumerJSON struct {
	ConsumerName              string
	ConsumerARN               string
	ConsumerStatus            string
	ConsumerCreationTimestamp epoch
	StreamARN                 string `json:",omitempty"`
}

func (s *Server) consumerOut(st *stream, c *consumer, withStream bool) consumerJSON {
	o := consumerJSON{c.name, c.arn, c.status(s.cfg.clock()), toEpoch(c.created), ""}
	if withStream {
		o.StreamARN = st.arn
	}
	return o
}

type consumerRef struct {
	StreamARN    string
	ConsumerName string
	ConsumerARN  string
}

// consumerLocked finds a consumer by ARN, or by stream ARN and name.
func (s *Server) consumerLocked(ref consumerRef) (*stream, *consumer, *apiError) {
	if ref.ConsumerARN != "" {
		streamARN, rest, ok := strings.Cut(ref.ConsumerARN, "/consumer/")
		name, _, _ := strings.Cut(rest, ":")
		if !ok || name == "" {
			return nil, nil, invalidArg("invalid ConsumerARN %q", ref.ConsumerARN)
		}
		st, err := s.streamLocked(streamRef{StreamARN: streamARN})
		if err != nil {
			return nil, nil, err
		}
		c, ok := st.consumers[name]
		if !ok || c.arn != ref.ConsumerARN {
			return nil, nil, notFound("Consumer %s not found.", ref.ConsumerARN)
		}
		return st, c, nil
	}
	if ref.StreamARN == "" || ref.ConsumerName == "" {
		return nil, nil, invalidArg("either ConsumerARN, or StreamARN and ConsumerName, are required")
	}
	st, err := s.streamLocked(streamRef{StreamARN: ref.StreamARN})
	if err != nil {
		return nil, nil, err
	}
	c, ok := st.consumers[ref.ConsumerName]
	if !ok {
		return nil, nil, notFound("Consumer %s under stream %s not found.", ref.ConsumerName, st.arn)
	}
	return st, c, nil
}

func (s *Server) registerConsumer(body []byte) (any, *apiError) {
	var in struct {
		StreamARN    string
		ConsumerName string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if !validName(in.ConsumerName) {
		return nil, errf("ValidationException", "invalid ConsumerName %q", in.ConsumerName)
	}
	if in.StreamARN == "" {
		return nil, errf("ValidationException", "StreamARN is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamLocked(streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	if _, ok := st.consumers[in.ConsumerName]; ok {
		return nil, errf("ResourceInUseException", "Consumer %s under stream %s already exists.", in.ConsumerName, st.arn)
	}
	if len(st.consumers) >= s.cfg.maxConsumers {
		return nil, errf("LimitExceededException", "Stream %s already has %d consumers, the limit.", st.arn, s.cfg.maxConsumers)
	}
	now := s.cfg.clock()
	c := &consumer{
		name:     in.ConsumerName,
		arn:      fmt.Sprintf("%s/consumer/%s:%d", st.arn, in.ConsumerName, now.Unix()),
		created:  now,
		activeAt: now.Add(s.cfg.consumerDelay),
	}
	st.consumers[c.name] = c
	s.bumpLocked()
	return struct{ Consumer consumerJSON }{s.consumerOut(st, c, false)}, nil
}

func (s *Server) describeConsumer(body []byte) (any, *apiError) {
	var in consumerRef
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, c, err := s.consumerLocked(in)
	if err != nil {
		return nil, err
	}
	return struct{ ConsumerDescription consumerJSON }{s.consumerOut(st, c, true)}, nil
}

func (s *Server) listConsumers(body []byte) (any, *apiError) {
	var in struct {
		StreamARN  string
		MaxResults *int
		NextToken  string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit, err := pageLimit(in.MaxResults, 100, "MaxResults")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamLocked(streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(st.consumers))
	for n := range st.consumers {
		if n > in.NextToken {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := struct {
		Consumers []consumerJSON
		NextToken string `json:",omitempty"`
	}{Consumers: []consumerJSON{}}
	for i, n := range names {
		if i == limit {
			out.NextToken = names[i-1]
			break
		}
		out.Consumers = append(out.Consumers, s.consumerOut(st, st.consumers[n], false))
	}
	return out, nil
}

func (s *Server) deregisterConsumer(body []byte) (any, *apiError) {
	var in consumerRef
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, c, err := s.consumerLocked(in)
	if err != nil {
		return nil, err
	}
	delete(st.consumers, c.name)
	// Wake the consumer's subscriptions so they end.
	for _, sh := range st.shards {
		sh.wakeLocked()
	}
	s.bumpLocked()
	return nil, nil
}
