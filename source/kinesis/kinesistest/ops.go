package kinesistest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

type handler func(s *Server, body []byte) (any, *apiError)

// handlers maps an operation name to its handler. SubscribeToShard is
// served apart, because it streams its answer.
var handlers = map[string]handler{
	"CreateStream":             (*Server).createStream,
	"DeleteStream":             (*Server).deleteStream,
	"DescribeStreamSummary":    (*Server).describeStreamSummary,
	"DescribeStream":           (*Server).describeStream,
	"ListStreams":              (*Server).listStreams,
	"ListShards":               (*Server).listShards,
	"PutRecord":                (*Server).putRecord,
	"PutRecords":               (*Server).putRecords,
	"GetShardIterator":         (*Server).getShardIterator,
	"GetRecords":               (*Server).getRecords,
	"RegisterStreamConsumer":   (*Server).registerConsumer,
	"DescribeStreamConsumer":   (*Server).describeConsumer,
	"ListStreamConsumers":      (*Server).listConsumers,
	"DeregisterStreamConsumer": (*Server).deregisterConsumer,
	"SplitShard":               (*Server).splitShard,
	"MergeShards":              (*Server).mergeShards,
	"UpdateShardCount":         (*Server).updateShardCount,
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

func validName(n string) bool { return nameRE.MatchString(n) }

// epoch is a timestamp on the wire: seconds since the Unix epoch as a JSON
// number, with millisecond precision like AWS.
type epoch float64

func toEpoch(t time.Time) epoch { return epoch(float64(t.UnixMilli()) / 1000) }

func fromEpoch(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9)))
}

// streamRef names a stream by name or ARN, as most requests may.
type streamRef struct {
	StreamName string `json:"StreamName"`
	StreamARN  string `json:"StreamARN"`
}

func (s *Server) streamARN(name string) string {
	return fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", s.cfg.region, s.cfg.account, name)
}

// streamLocked finds the stream a request names.
func (s *Server) streamLocked(ref streamRef) (*stream, *apiError) {
	name := ref.StreamName
	if ref.StreamARN != "" {
		prefix := fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/", s.cfg.region, s.cfg.account)
		n, ok := strings.CutPrefix(ref.StreamARN, prefix)
		if !ok || n == "" || strings.Contains(n, "/") {
			if !strings.HasPrefix(ref.StreamARN, "arn:") {
				return nil, invalidArg("invalid StreamARN %q", ref.StreamARN)
			}
			return nil, notFound("Stream %s not found", ref.StreamARN)
		}
		if name != "" && name != n {
			return nil, invalidArg("StreamName %s and StreamARN %s name different streams", name, ref.StreamARN)
		}
		name = n
	}
	if name == "" {
		return nil, invalidArg("either StreamName or StreamARN is required")
	}
	st, ok := s.streams[name]
	if !ok {
		return nil, notFound("Stream %s under account %s not found.", name, s.cfg.account)
	}
	return st, nil
}

// activeStreamLocked is streamLocked for data operations, which need the
// stream ACTIVE.
func (s *Server) activeStreamLocked(ref streamRef) (*stream, *apiError) {
	st, err := s.streamLocked(ref)
	if err != nil {
		return nil, err
	}
	if st.status(s.cfg.clock()) != "ACTIVE" {
		return nil, errf("ResourceInUseException", "Stream %s is not ACTIVE", st.name)
	}
	return st, nil
}

func (s *Server) openShardsLocked() int {
	n := 0
	for _, st := range s.streams {
		n += len(st.open)
	}
	return n
}

func (s *Server) createStreamLocked(name string, shards int, mode string, now time.Time, active bool) (*stream, *apiError) {
	if !validName(name) {
		return nil, errf("ValidationException", "1 validation error detected: Value '%s' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+", name)
	}
	if _, ok := s.streams[name]; ok {
		return nil, errf("ResourceInUseException", "Stream %s under account %s already exists.", name, s.cfg.account)
	}
	if shards < 1 {
		return nil, invalidArg("ShardCount must be at least 1, got %d", shards)
	}
	if s.openShardsLocked()+shards > s.cfg.shardLimit {
		return nil, errf("LimitExceededException", "creating %d shards would exceed the shard limit of %d", shards, s.cfg.shardLimit)
	}
	s.epoch++
	st := &stream{
		name:      name,
		arn:       s.streamARN(name),
		epoch:     s.epoch,
		mode:      mode,
		created:   now,
		activeAt:  now,
		consumers: make(map[string]*consumer),
	}
	if !active {
		st.activeAt = now.Add(s.cfg.streamCreateDelay)
	}
	for _, r := range uniformRanges(shards) {
		st.addShard("", "", r[0], r[1], now)
	}
	s.streams[name] = st
	return st, nil
}

func (s *Server) createStream(body []byte) (any, *apiError) {
	var in struct {
		StreamName        string
		ShardCount        *int
		StreamModeDetails *struct{ StreamMode string }
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	mode := "PROVISIONED"
	if in.StreamModeDetails != nil && in.StreamModeDetails.StreamMode != "" {
		mode = in.StreamModeDetails.StreamMode
		if mode != "PROVISIONED" && mode != "ON_DEMAND" {
			return nil, errf("ValidationException", "invalid StreamMode %q", mode)
		}
	}
	shards := 4
	if in.ShardCount != nil {
		shards = *in.ShardCount
	} else if mode == "PROVISIONED" {
		return nil, invalidArg("ShardCount is required for a PROVISIONED stream")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.createStreamLocked(in.StreamName, shards, mode, s.cfg.clock(), false); err != nil {
		return nil, err
	}
	s.bumpLocked()
	return nil, nil
}

func (s *Server) deleteStream(body []byte) (any, *apiError) {
	var in struct {
		streamRef
		EnforceConsumerDeletion bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamLocked(in.streamRef)
	if err != nil {
		return nil, err
	}
	if len(st.consumers) > 0 && !in.EnforceConsumerDeletion {
		return nil, errf("ResourceInUseException", "Stream %s has %d registered consumers; set EnforceConsumerDeletion", st.name, len(st.consumers))
	}
	delete(s.streams, st.name)
	// Wake subscriptions so they notice the stream is gone.
	for _, sh := range st.shards {
		sh.wakeLocked()
	}
	s.bumpLocked()
	return nil, nil
}

type hashKeyRangeJSON struct {
	StartingHashKey string
	EndingHashKey   string
}

type seqRangeJSON struct {
	StartingSequenceNumber string
	EndingSequenceNumber   string `json:",omitempty"`
}

type shardJSON struct {
	ShardId               string
	ParentShardId         string `json:",omitempty"`
	AdjacentParentShardId string `json:",omitempty"`
	HashKeyRange          hashKeyRangeJSON
	SequenceNumberRange   seqRangeJSON
}

func shardOut(sh *shard) shardJSON {
	o := shardJSON{
		ShardId:               sh.id,
		ParentShardId:         sh.parent,
		AdjacentParentShardId: sh.adjacentParent,
		HashKeyRange:          hashKeyRangeJSON{sh.start.String(), sh.end.String()},
		SequenceNumberRange:   seqRangeJSON{StartingSequenceNumber: sh.startingSeq()},
	}
	if sh.closed {
		o.SequenceNumberRange.EndingSequenceNumber = sh.endingSeq()
	}
	return o
}

type streamModeJSON struct{ StreamMode string }

type enhancedMonitoringJSON struct{ ShardLevelMetrics []string }

func (s *Server) describeStreamSummary(body []byte) (any, *apiError) {
	var in streamRef
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamLocked(in)
	if err != nil {
		return nil, err
	}
	type summary struct {
		StreamName              string
		StreamARN               string
		StreamStatus            string
		StreamModeDetails       streamModeJSON
		RetentionPeriodHours    int
		StreamCreationTimestamp epoch
		EnhancedMonitoring      []enhancedMonitoringJSON
		EncryptionType          string
		OpenShardCount          int
		ConsumerCount           int
	}
	return struct{ StreamDescriptionSummary summary }{summary{
		StreamName:              st.name,
		StreamARN:               st.arn,
		StreamStatus:            st.status(s.cfg.clock()),
		StreamModeDetails:       streamModeJSON{st.mode},
		RetentionPeriodHours:    24,
		StreamCreationTimestamp: toEpoch(st.created),
		EnhancedMonitoring:      []enhancedMonitoringJSON{{ShardLevelMetrics: []string{}}},
		EncryptionType:          "NONE",
		OpenShardCount:          len(st.open),
		ConsumerCount:           len(st.consumers),
	}}, nil
}

func (s *Server) describeStream(body []byte) (any, *apiError) {
	var in struct {
		streamRef
		Limit                 *int
		ExclusiveStartShardId string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit, err := pageLimit(in.Limit, 100, "Limit")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamLocked(in.streamRef)
	if err != nil {
		return nil, err
	}
	shards := []shardJSON{}
	more := false
	for _, sh := range st.shards {
		if in.ExclusiveStartShardId != "" && sh.id <= in.ExclusiveStartShardId {
			continue
		}
		if len(shards) == limit {
			more = true
			break
		}
		shards = append(shards, shardOut(sh))
	}
	type desc struct {
		StreamName              string
		StreamARN               string
		StreamStatus            string
		StreamModeDetails       streamModeJSON
		Shards                  []shardJSON
		HasMoreShards           bool
		RetentionPeriodHours    int
		StreamCreationTimestamp epoch
		EnhancedMonitoring      []enhancedMonitoringJSON
		EncryptionType          string
	}
	return struct{ StreamDescription desc }{desc{
		StreamName:              st.name,
		StreamARN:               st.arn,
		StreamStatus:            st.status(s.cfg.clock()),
		StreamModeDetails:       streamModeJSON{st.mode},
		Shards:                  shards,
		HasMoreShards:           more,
		RetentionPeriodHours:    24,
		StreamCreationTimestamp: toEpoch(st.created),
		EnhancedMonitoring:      []enhancedMonitoringJSON{{ShardLevelMetrics: []string{}}},
		EncryptionType:          "NONE",
	}}, nil
}

func (s *Server) listStreams(body []byte) (any, *apiError) {
	var in struct {
		Limit                    *int
		ExclusiveStartStreamName string
		NextToken                string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit, err := pageLimit(in.Limit, 100, "Limit")
	if err != nil {
		return nil, err
	}
	after := in.ExclusiveStartStreamName
	if in.NextToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		if err != nil {
			return nil, invalidArg("invalid NextToken")
		}
		after = string(b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.streams))
	for n := range s.streams {
		if n > after {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	type summary struct {
		StreamName              string
		StreamARN               string
		StreamStatus            string
		StreamModeDetails       streamModeJSON
		StreamCreationTimestamp epoch
	}
	out := struct {
		StreamNames     []string
		HasMoreStreams  bool
		StreamSummaries []summary
		NextToken       string `json:",omitempty"`
	}{StreamNames: names, HasMoreStreams: more, StreamSummaries: []summary{}}
	now := s.cfg.clock()
	for _, n := range names {
		st := s.streams[n]
		out.StreamSummaries = append(out.StreamSummaries, summary{st.name, st.arn, st.status(now), streamModeJSON{st.mode}, toEpoch(st.created)})
	}
	if more {
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(names[len(names)-1]))
	}
	return out, nil
}

type shardFilter struct {
	Type      string
	ShardId   string
	Timestamp *float64
}

// listShardsToken is the decoded ListShards NextToken: the request it
// continues and the last shard returned.
type listShardsToken struct {
	Stream string       `json:"s"`
	Epoch  uint64       `json:"e"`
	After  string       `json:"a"`
	Filter *shardFilter `json:"f,omitempty"`
}

func (s *Server) listShards(body []byte) (any, *apiError) {
	var in struct {
		streamRef
		NextToken             string
		MaxResults            *int
		ExclusiveStartShardId string
		ShardFilter           *shardFilter
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit, err := pageLimit(in.MaxResults, 1000, "MaxResults")
	if err != nil {
		return nil, err
	}
	after := in.ExclusiveStartShardId
	filter := in.ShardFilter
	ref := in.streamRef
	var tokEpoch uint64
	if in.NextToken != "" {
		if in.StreamName != "" || in.StreamARN != "" || in.ExclusiveStartShardId != "" || in.ShardFilter != nil {
			return nil, invalidArg("NextToken cannot be combined with StreamName, StreamARN, ExclusiveStartShardId or ShardFilter")
		}
		var tok listShardsToken
		b, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		if err != nil || json.Unmarshal(b, &tok) != nil {
			return nil, invalidArg("invalid NextToken")
		}
		ref = streamRef{StreamName: tok.Stream}
		after, filter, tokEpoch = tok.After, tok.Filter, tok.Epoch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamLocked(ref)
	if err != nil {
		return nil, err
	}
	if tokEpoch != 0 && tokEpoch != st.epoch {
		return nil, errf("ExpiredNextTokenException", "NextToken belongs to a deleted stream")
	}
	keep, aerr := shardFilterFunc(st, filter)
	if aerr != nil {
		return nil, aerr
	}
	shards := []shardJSON{}
	var last string
	more := false
	for _, sh := range st.shards {
		if after != "" && sh.id <= after {
			continue
		}
		if !keep(sh) {
			continue
		}
		if len(shards) == limit {
			more = true
			break
		}
		shards = append(shards, shardOut(sh))
		last = sh.id
	}
	out := struct {
		Shards    []shardJSON
		NextToken string `json:",omitempty"`
	}{Shards: shards}
	if more {
		b, _ := json.Marshal(listShardsToken{Stream: st.name, Epoch: st.epoch, After: last, Filter: filter})
		out.NextToken = base64.RawURLEncoding.EncodeToString(b)
	}
	return out, nil
}

// shardFilterFunc implements ListShards' ShardFilter. Records are never
// trimmed here, so the trim horizon is the stream's creation.
func shardFilterFunc(st *stream, f *shardFilter) (func(*shard) bool, *apiError) {
	if f == nil {
		return func(*shard) bool { return true }, nil
	}
	var ts time.Time
	switch f.Type {
	case "AT_TIMESTAMP", "FROM_TIMESTAMP":
		if f.Timestamp == nil {
			return nil, invalidArg("ShardFilter %s needs a Timestamp", f.Type)
		}
		ts = fromEpoch(*f.Timestamp)
	}
	switch f.Type {
	case "AFTER_SHARD_ID":
		if f.ShardId == "" {
			return nil, invalidArg("ShardFilter AFTER_SHARD_ID needs a ShardId")
		}
		return func(sh *shard) bool { return sh.id > f.ShardId }, nil
	case "AT_TRIM_HORIZON":
		return func(sh *shard) bool { return !sh.createdAt.After(st.created) }, nil
	case "FROM_TRIM_HORIZON":
		return func(*shard) bool { return true }, nil
	case "AT_LATEST":
		return func(sh *shard) bool { return !sh.closed }, nil
	case "AT_TIMESTAMP":
		return func(sh *shard) bool {
			return !sh.createdAt.After(ts) && (!sh.closed || sh.closedAt.After(ts))
		}, nil
	case "FROM_TIMESTAMP":
		return func(sh *shard) bool { return !sh.closed || sh.closedAt.After(ts) }, nil
	}
	return nil, errf("ValidationException", "invalid ShardFilter type %q", f.Type)
}

type putEntry struct {
	Data            []byte
	PartitionKey    string
	ExplicitHashKey *string
}

// routeLocked validates one record and returns its shard.
func (s *Server) routeLocked(st *stream, e *putEntry) (*shard, *apiError) {
	if len(e.PartitionKey) < 1 || len(e.PartitionKey) > 256 {
		return nil, errf("ValidationException", "PartitionKey must be 1 to 256 characters")
	}
	if len(e.Data) > s.cfg.maxRecordSize {
		return nil, errf("ValidationException", "record data of %d bytes exceeds the maximum of %d", len(e.Data), s.cfg.maxRecordSize)
	}
	h := partitionHash(e.PartitionKey)
	if e.ExplicitHashKey != nil {
		var ok bool
		if h, ok = parseHashKey(*e.ExplicitHashKey); !ok {
			return nil, invalidArg("invalid ExplicitHashKey %q", *e.ExplicitHashKey)
		}
	}
	return st.route(h), nil
}

// appendLocked stores a record and returns its counter.
func (s *Server) appendLocked(sh *shard, e *putEntry, now int64) uint64 {
	if n := len(sh.records); n > 0 && sh.records[n-1].arrival > now {
		now = sh.records[n-1].arrival // keep arrivals ordered if the clock steps back
	}
	sh.records = append(sh.records, record{data: e.Data, pk: e.PartitionKey, arrival: now})
	sh.bytes += int64(len(e.Data))
	return uint64(len(sh.records))
}

func (s *Server) putRecord(body []byte) (any, *apiError) {
	var in struct {
		streamRef
		putEntry
		SequenceNumberForOrdering string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.activeStreamLocked(in.streamRef)
	if err != nil {
		return nil, err
	}
	sh, err := s.routeLocked(st, &in.putEntry)
	if err != nil {
		return nil, err
	}
	if f := s.callFaultLocked("PutRecord", sh.id); f != nil {
		return nil, f.callError()
	}
	c := s.appendLocked(sh, &in.putEntry, s.cfg.clock().UnixNano())
	sh.wakeLocked()
	s.bumpLocked()
	return struct {
		ShardId        string
		SequenceNumber string
		EncryptionType string
	}{sh.id, sh.seq(c), "NONE"}, nil
}

func (s *Server) putRecords(body []byte) (any, *apiError) {
	var in struct {
		streamRef
		Records []putEntry
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Records) < 1 || len(in.Records) > 500 {
		return nil, errf("ValidationException", "Records must hold 1 to 500 entries, got %d", len(in.Records))
	}
	total := 0
	for i := range in.Records {
		total += len(in.Records[i].Data) + len(in.Records[i].PartitionKey)
	}
	if total > 5<<20 {
		return nil, invalidArg("PutRecords request of %d bytes exceeds 5 MiB", total)
	}
	s.mu.Lock()
	st, err := s.activeStreamLocked(in.streamRef)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	shards := make([]*shard, len(in.Records))
	for i := range in.Records {
		if shards[i], err = s.routeLocked(st, &in.Records[i]); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	// Shard-scoped throttles fail only the records of that shard, the
	// partial failure callers must handle without resending the rest.
	throttled := map[*shard]bool{}
	for _, sh := range shards {
		if _, seen := throttled[sh]; !seen {
			throttled[sh] = s.callFaultLocked("PutRecords", sh.id) != nil
		}
	}
	now := s.cfg.clock().UnixNano()
	counters := make([]uint64, len(in.Records))
	failed := 0
	for i := range in.Records {
		if throttled[shards[i]] {
			failed++
			continue
		}
		counters[i] = s.appendLocked(shards[i], &in.Records[i], now)
	}
	for sh, thr := range throttled {
		if !thr {
			sh.wakeLocked()
		}
	}
	s.bumpLocked()
	s.mu.Unlock()

	b := make([]byte, 0, 64+len(in.Records)*112)
	b = append(b, `{"EncryptionType":"NONE","FailedRecordCount":`...)
	b = strconv.AppendInt(b, int64(failed), 10)
	b = append(b, `,"Records":[`...)
	for i := range in.Records {
		if i > 0 {
			b = append(b, ',')
		}
		if throttled[shards[i]] {
			b = append(b, `{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard `...)
			b = append(b, shards[i].id...)
			b = append(b, ` (injected fault)"}`...)
			continue
		}
		b = append(b, `{"SequenceNumber":"`...)
		b = shards[i].appendSeq(b, counters[i])
		b = append(b, `","ShardId":"`...)
		b = append(b, shards[i].id...)
		b = append(b, `"}`...)
	}
	b = append(b, "]}"...)
	return rawJSON(b), nil
}

// position resolves a starting position in sh to the index of the first
// record to read. It serves GetShardIterator and SubscribeToShard.
func (s *Server) positionLocked(sh *shard, typ, seq string, ts *float64) (int, *apiError) {
	switch typ {
	case "TRIM_HORIZON":
		return 0, nil
	case "LATEST":
		return len(sh.records), nil
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		if seq == "" {
			return 0, invalidArg("%s needs a sequence number", typ)
		}
		c, ok := sh.parseSeq(seq)
		if !ok {
			return 0, invalidArg("Invalid StartingSequenceNumber. It encodes %s, while it was used in a call to a shard with %s", seq, sh.id)
		}
		i := int(min(c, uint64(len(sh.records))+1)) // record index i has counter i+1
		if typ == "AT_SEQUENCE_NUMBER" && i > 0 {
			i--
		}
		return min(i, len(sh.records)), nil
	case "AT_TIMESTAMP":
		if ts == nil {
			return 0, invalidArg("AT_TIMESTAMP needs a Timestamp")
		}
		return sh.indexAtTime(fromEpoch(*ts).UnixNano()), nil
	}
	return 0, errf("ValidationException", "invalid ShardIteratorType %q", typ)
}

// iterator is a decoded shard iterator.
type iterator struct {
	stream string
	epoch  uint64
	shard  string
	pos    int
	issued int64
}

func (it iterator) encode() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s|%d|%s|%d|%d", it.stream, it.epoch, it.shard, it.pos, it.issued))
}

func decodeIterator(s string) (iterator, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return iterator{}, false
	}
	p := strings.Split(string(b), "|")
	if len(p) != 5 {
		return iterator{}, false
	}
	var it iterator
	var e1, e2, e3 error
	it.stream, it.shard = p[0], p[2]
	it.epoch, e1 = strconv.ParseUint(p[1], 10, 64)
	it.pos, e2 = strconv.Atoi(p[3])
	it.issued, e3 = strconv.ParseInt(p[4], 10, 64)
	return it, e1 == nil && e2 == nil && e3 == nil && it.pos >= 0
}

func (s *Server) getShardIterator(body []byte) (any, *apiError) {
	var in struct {
		streamRef
		ShardId                string
		ShardIteratorType      string
		StartingSequenceNumber string
		Timestamp              *float64
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.activeStreamLocked(in.streamRef)
	if err != nil {
		return nil, err
	}
	sh := st.shard(in.ShardId)
	if sh == nil {
		return nil, notFound("Shard %s in stream %s under account %s does not exist", in.ShardId, st.name, s.cfg.account)
	}
	if f := s.callFaultLocked("GetShardIterator", sh.id); f != nil {
		return nil, f.callError()
	}
	pos, err := s.positionLocked(sh, in.ShardIteratorType, in.StartingSequenceNumber, in.Timestamp)
	if err != nil {
		return nil, err
	}
	it := iterator{st.name, st.epoch, sh.id, pos, s.cfg.clock().UnixNano()}
	return struct{ ShardIterator string }{it.encode()}, nil
}

func (s *Server) getRecords(body []byte) (any, *apiError) {
	var in struct {
		ShardIterator string
		Limit         *int
		StreamARN     string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit, err := pageLimit(in.Limit, 10000, "Limit")
	if err != nil {
		return nil, err
	}
	it, ok := decodeIterator(in.ShardIterator)
	if !ok {
		return nil, invalidArg("invalid ShardIterator")
	}
	s.mu.Lock()
	nowT := s.cfg.clock()
	now := nowT.UnixNano()
	st, ok := s.streams[it.stream]
	if !ok || st.epoch != it.epoch {
		s.mu.Unlock()
		return nil, notFound("Stream %s under account %s not found.", it.stream, s.cfg.account)
	}
	sh := st.shard(it.shard)
	if sh == nil || it.pos > len(sh.records) {
		s.mu.Unlock()
		return nil, invalidArg("invalid ShardIterator")
	}
	if f := s.callFaultLocked("GetRecords", sh.id); f != nil {
		s.mu.Unlock()
		return nil, f.callError()
	}
	if now-it.issued > s.cfg.iteratorLifetime.Nanoseconds() {
		s.mu.Unlock()
		return nil, errf("ExpiredIteratorException", "Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.",
			time.Unix(0, it.issued).UTC().Format(time.RFC3339Nano), nowT.UTC().Format(time.RFC3339Nano), s.cfg.iteratorLifetime.Milliseconds())
	}
	end := min(len(sh.records), it.pos+limit)
	recs := sh.records[it.pos:end]
	behind := millisBehindLocked(sh, end, now)
	var children []*shard
	if sh.closed && end == len(sh.records) {
		children = childShards(st, sh)
	}
	s.mu.Unlock()

	// Encoded by hand: this is the polling hot path, and records are
	// immutable once stored, so no lock is needed to read recs.
	b := make([]byte, 0, 256+encodedSize(recs))
	b = append(b, '{')
	if children != nil {
		b = appendChildShards(append(b, `"ChildShards":`...), children)
		b = append(b, ',')
	}
	b = append(b, `"MillisBehindLatest":`...)
	b = strconv.AppendInt(b, behind, 10)
	if children == nil {
		next := iterator{it.stream, it.epoch, it.shard, end, now}
		b = append(b, `,"NextShardIterator":"`...)
		b = append(b, next.encode()...)
		b = append(b, '"')
	}
	b = append(b, `,"Records":`...)
	b = appendRecords(b, sh, it.pos, recs)
	b = append(b, '}')
	return rawJSON(b), nil
}

// millisBehindLocked is how far a reader at index pos is behind the
// shard's tip: the age of the next unread record, or 0 when caught up.
func millisBehindLocked(sh *shard, pos int, now int64) int64 {
	if pos >= len(sh.records) {
		return 0
	}
	return max(0, (now-sh.records[pos].arrival)/int64(time.Millisecond))
}

// childShards returns the children of a closed shard.
func childShards(st *stream, sh *shard) []*shard {
	out := make([]*shard, 0, len(sh.children))
	for _, id := range sh.children {
		if c := st.shard(id); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// pageLimit is a request's optional Limit or MaxResults (field names which): def when absent, and
// a ValidationException outside 1..10000, as Kinesis answers.
func pageLimit(v *int, def int, field string) (int, *apiError) {
	if v == nil {
		return def, nil
	}
	if *v < 1 || *v > 10000 {
		return 0, errf("ValidationException", "%s must be between 1 and 10000", field)
	}
	return *v, nil
}
