package kinesistest

func (s *Server) openShardLocked(st *stream, id, field string) (*shard, *apiError) {
	sh := st.shard(id)
	if sh == nil {
		return nil, notFound("Could not find shard %s in stream %s under account %s.", id, st.name, s.cfg.account)
	}
	if sh.closed {
		return nil, errf("ResourceInUseException", "%s %s is closed and cannot be resharded", field, id)
	}
	return sh, nil
}

func (s *Server) splitShard(body []byte) (any, *apiError) {
	var in struct {
		streamRef
		ShardToSplit       string
		NewStartingHashKey string
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
	sh, err := s.openShardLocked(st, in.ShardToSplit, "ShardToSplit")
	if err != nil {
		return nil, err
	}
	at, ok := parseHashKey(in.NewStartingHashKey)
	if !ok || at.cmp(sh.start) <= 0 || at.cmp(sh.end) > 0 {
		return nil, invalidArg("NewStartingHashKey %s must be greater than %s and at most %s, the hash range of %s", in.NewStartingHashKey, sh.start, sh.end, sh.id)
	}
	if s.openShardsLocked()+1 > s.cfg.shardLimit {
		return nil, errf("LimitExceededException", "splitting would exceed the shard limit of %d", s.cfg.shardLimit)
	}
	st.split(sh, at, s.cfg.clock())
	s.bumpLocked()
	return nil, nil
}

func (s *Server) mergeShards(body []byte) (any, *apiError) {
	var in struct {
		streamRef
		ShardToMerge         string
		AdjacentShardToMerge string
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
	a, err := s.openShardLocked(st, in.ShardToMerge, "ShardToMerge")
	if err != nil {
		return nil, err
	}
	b, err := s.openShardLocked(st, in.AdjacentShardToMerge, "AdjacentShardToMerge")
	if err != nil {
		return nil, err
	}
	if a == b || !adjacent(a, b) {
		return nil, invalidArg("Shards %s and %s are not adjacent", a.id, b.id)
	}
	st.merge(a, b, s.cfg.clock())
	s.bumpLocked()
	return nil, nil
}

// updateShardCount reshapes the open shards into target uniform ranges. It
// merges every open shard into one and splits that into target shards, so
// each new shard has at most two parents, as Kinesis guarantees. That
// leaves more short-lived closed shards than AWS would; readers walk them
// like any other closed shard.
func (s *Server) updateShardCount(body []byte) (any, *apiError) {
	var in struct {
		streamRef
		TargetShardCount int
		ScalingType      string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.ScalingType != "UNIFORM_SCALING" {
		return nil, errf("ValidationException", "ScalingType must be UNIFORM_SCALING, got %q", in.ScalingType)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.activeStreamLocked(in.streamRef)
	if err != nil {
		return nil, err
	}
	cur := len(st.open)
	if in.TargetShardCount < 1 || in.TargetShardCount > 2*cur || 2*in.TargetShardCount < cur {
		return nil, invalidArg("TargetShardCount %d must be between half and double the current %d open shards", in.TargetShardCount, cur)
	}
	if s.openShardsLocked()-cur+in.TargetShardCount > s.cfg.shardLimit {
		return nil, errf("LimitExceededException", "%d shards would exceed the shard limit of %d", in.TargetShardCount, s.cfg.shardLimit)
	}
	ranges := uniformRanges(in.TargetShardCount)
	if !sameRanges(st.open, ranges) {
		now := s.cfg.clock()
		whole := st.open[0]
		for len(st.open) > 1 {
			whole = st.merge(st.open[0], st.open[1], now)
		}
		for _, r := range ranges[1:] {
			_, whole = st.split(whole, r[0], now)
		}
	}
	s.bumpLocked()
	return struct {
		StreamName        string
		StreamARN         string
		CurrentShardCount int
		TargetShardCount  int
	}{st.name, st.arn, cur, in.TargetShardCount}, nil
}

func sameRanges(open []*shard, ranges [][2]u128) bool {
	if len(open) != len(ranges) {
		return false
	}
	for i, sh := range open {
		if sh.start != ranges[i][0] || sh.end != ranges[i][1] {
			return false
		}
	}
	return true
}
