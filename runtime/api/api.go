package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardbridge/shardbridge/runtime"
)

// Options configure the handler.
type Options struct {
	// Token, when not empty, is required as a bearer token on mutating requests.
	Token string
	// Gatherer serves /metrics; nil serves no metrics.
	Gatherer prometheus.Gatherer
	// StopTimeout bounds how long stop and restart wait for a connector to drain. Default 60s.
	StopTimeout time.Duration
}

// Handler returns the API's http.Handler over w.
func Handler(w *runtime.Worker, o Options) http.Handler {
	if o.StopTimeout <= 0 {
		o.StopTimeout = 60 * time.Second
	}
	s := &server{w: w, o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /connectors", s.list)
	mux.HandleFunc("GET /connectors/{name}", s.config)
	mux.HandleFunc("GET /connectors/{name}/status", s.status)
	mux.HandleFunc("PUT /connectors/{name}/pause", s.auth(s.pause))
	mux.HandleFunc("PUT /connectors/{name}/resume", s.auth(s.resume))
	mux.HandleFunc("PUT /connectors/{name}/stop", s.auth(s.stop))
	mux.HandleFunc("POST /connectors/{name}/restart", s.auth(s.restart))
	mux.HandleFunc("GET /connectors/{name}/offsets", s.offsets)
	mux.HandleFunc("PATCH /connectors/{name}/offsets", s.auth(s.patchOffsets))
	mux.HandleFunc("DELETE /connectors/{name}/offsets", s.auth(s.deleteOffsets))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	if o.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		writeError(rw, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

type server struct {
	w *runtime.Worker
	o Options
}

type errorBody struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(rw http.ResponseWriter, code int, msg string) {
	writeJSON(rw, code, errorBody{Code: code, Message: msg})
}

// fail maps a Worker error to a status code.
func fail(rw http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, runtime.ErrUnknownConnector):
		writeError(rw, http.StatusNotFound, err.Error())
	case errors.Is(err, runtime.ErrNotStopped):
		writeError(rw, http.StatusConflict, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(rw, http.StatusGatewayTimeout, err.Error())
	default:
		writeError(rw, http.StatusInternalServerError, err.Error())
	}
}

func (s *server) auth(h http.HandlerFunc) http.HandlerFunc {
	if s.o.Token == "" {
		return h
	}
	want := []byte("Bearer " + s.o.Token)
	return func(rw http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="shardbridge"`)
			writeError(rw, http.StatusUnauthorized, "this endpoint needs the bearer token set in http.auth_token")
			return
		}
		h(rw, r)
	}
}

func (s *server) list(rw http.ResponseWriter, r *http.Request) {
	writeJSON(rw, http.StatusOK, s.w.Names())
}

func (s *server) config(rw http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	cfg, err := s.w.Config(name)
	if err != nil {
		fail(rw, err)
		return
	}
	writeJSON(rw, http.StatusOK, map[string]any{"name": name, "config": cfg})
}

func (s *server) status(rw http.ResponseWriter, r *http.Request) {
	st, err := s.w.Describe(r.Context(), r.PathValue("name"))
	if err != nil {
		fail(rw, err)
		return
	}
	writeJSON(rw, http.StatusOK, st)
}

func (s *server) pause(rw http.ResponseWriter, r *http.Request) {
	if err := s.w.Pause(r.PathValue("name")); err != nil {
		fail(rw, err)
		return
	}
	rw.WriteHeader(http.StatusAccepted)
}

func (s *server) resume(rw http.ResponseWriter, r *http.Request) {
	if err := s.w.Resume(r.PathValue("name")); err != nil {
		fail(rw, err)
		return
	}
	rw.WriteHeader(http.StatusAccepted)
}

func (s *server) stop(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.o.StopTimeout)
	defer cancel()
	if err := s.w.Stop(ctx, r.PathValue("name")); err != nil {
		fail(rw, err)
		return
	}
	rw.WriteHeader(http.StatusAccepted)
}

func (s *server) restart(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.o.StopTimeout)
	defer cancel()
	if err := s.w.Restart(ctx, r.PathValue("name")); err != nil {
		fail(rw, err)
		return
	}
	rw.WriteHeader(http.StatusAccepted)
}

// offsetEntry is one shard's checkpoint in Kafka Connect's partition/offset shape.
type offsetEntry struct {
	Partition struct {
		Stream string `json:"stream,omitempty"`
		Shard  string `json:"shard"`
	} `json:"partition"`
	Offset *struct {
		Sequence    string `json:"sequence_number"`
		SubSequence int64  `json:"sub_sequence_number"`
		End         bool   `json:"end"`
	} `json:"offset"`
}

type offsetsBody struct {
	Offsets []offsetEntry `json:"offsets"`
}

func (s *server) offsets(rw http.ResponseWriter, r *http.Request) {
	cps, err := s.w.Offsets(r.Context(), r.PathValue("name"))
	if err != nil {
		fail(rw, err)
		return
	}
	body := offsetsBody{Offsets: []offsetEntry{}}
	for _, cp := range cps {
		var e offsetEntry
		e.Partition.Stream, e.Partition.Shard = cp.Stream, cp.Shard
		e.Offset = &struct {
			Sequence    string `json:"sequence_number"`
			SubSequence int64  `json:"sub_sequence_number"`
			End         bool   `json:"end"`
		}{cp.Mark.Position.Sequence, cp.Mark.Position.SubSequence, cp.Mark.End}
		body.Offsets = append(body.Offsets, e)
	}
	writeJSON(rw, http.StatusOK, body)
}

func (s *server) patchOffsets(rw http.ResponseWriter, r *http.Request) {
	var body offsetsBody
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(rw, http.StatusBadRequest, "offsets body: "+err.Error()+`; expected {"offsets":[{"partition":{"shard":"ID"},"offset":{"sequence_number":"N","sub_sequence_number":0}}]}`)
		return
	}
	if len(body.Offsets) == 0 {
		writeError(rw, http.StatusBadRequest, "offsets body lists no offsets")
		return
	}
	var cps []runtime.Checkpoint
	for i, e := range body.Offsets {
		if e.Partition.Shard == "" {
			writeError(rw, http.StatusBadRequest, fmt.Sprintf("offsets[%d].partition.shard is missing", i))
			return
		}
		if e.Offset == nil {
			writeError(rw, http.StatusBadRequest, fmt.Sprintf("offsets[%d].offset is missing; to reset a shard use DELETE /connectors/{name}/offsets?shard=%s", i, e.Partition.Shard))
			return
		}
		if !isDecimal(e.Offset.Sequence) || e.Offset.SubSequence < 0 {
			writeError(rw, http.StatusBadRequest, fmt.Sprintf("offsets[%d].offset: sequence_number %q must be a Kinesis sequence number (decimal digits) and sub_sequence_number >= 0", i, e.Offset.Sequence))
			return
		}
		cps = append(cps, runtime.Checkpoint{Shard: e.Partition.Shard, Mark: runtime.Mark{
			Position: runtime.Position{Sequence: e.Offset.Sequence, SubSequence: e.Offset.SubSequence},
			End:      e.Offset.End,
		}})
	}
	if err := s.w.SetOffsets(r.Context(), r.PathValue("name"), cps); err != nil {
		fail(rw, err)
		return
	}
	writeJSON(rw, http.StatusOK, map[string]string{"message": fmt.Sprintf("%d offset(s) written; they apply at the next start", len(cps))})
}

func isDecimal(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (s *server) deleteOffsets(rw http.ResponseWriter, r *http.Request) {
	shards := r.URL.Query()["shard"]
	if err := s.w.ResetOffsets(r.Context(), r.PathValue("name"), shards); err != nil {
		fail(rw, err)
		return
	}
	what := "all shards"
	if len(shards) > 0 {
		what = strings.Join(shards, ", ")
	}
	writeJSON(rw, http.StatusOK, map[string]string{"message": "offsets reset for " + what + "; they start from the configured start_position at the next start"})
}

func (s *server) ready(rw http.ResponseWriter, r *http.Request) {
	ok, why := s.w.Ready()
	if !ok {
		writeJSON(rw, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reasons": why})
		return
	}
	writeJSON(rw, http.StatusOK, map[string]string{"status": "ready"})
}
