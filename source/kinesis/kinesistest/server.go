package kinesistest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// targetPrefix is the X-Amz-Target prefix of every Kinesis operation.
const targetPrefix = "Kinesis_20131202."

// maxBody bounds a request body: PutRecords allows 5 MiB of data, which
// base64 and JSON framing grow by about a third.
const maxBody = 16 << 20

// Server is an in-process Kinesis API server. Its methods are safe for
// concurrent use.
type Server struct {
	cfg      config
	endpoint string
	caPEM    []byte
	certPool *x509.CertPool
	ln       net.Listener
	hs       *http.Server
	served   chan error // receives Serve's result once
	done     chan struct{}
	reqID    atomic.Uint64

	mu sync.Mutex
	// mu guards everything below, and all stream, shard and consumer state.
	streams  map[string]*stream
	epoch    uint64
	subs     map[subKey]*subscription
	faults   []*faultState
	calls    map[string]int64
	opened   map[string]int64 // subscriptions opened, by shard ID
	changed  chan struct{}    // closed and replaced on every change, for WaitFor
	closing  bool
	inflight int
	idle     *sync.Cond // signalled when inflight drops to 0
}

// NewServer starts a server on a loopback port. Close it when done.
func NewServer(opts ...Option) (*Server, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("kinesistest: invalid options: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		served:  make(chan error, 1),
		done:    make(chan struct{}),
		streams: make(map[string]*stream),
		subs:    make(map[subKey]*subscription),
		calls:   make(map[string]int64),
		opened:  make(map[string]int64),
		changed: make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	now := cfg.clock()
	for _, is := range cfg.streams {
		if _, err := s.createStreamLocked(is.name, is.shards, "PROVISIONED", now, true); err != nil {
			return nil, fmt.Errorf("kinesistest: create stream %s: %w", is.name, err)
		}
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("kinesistest: listen on %s: %w", cfg.addr, err)
	}
	s.ln = ln
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 1000},
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	if cfg.plain {
		protos.SetUnencryptedHTTP2(true)
		s.endpoint = "http://" + ln.Addr().String()
	} else {
		protos.SetHTTP2(true)
		cert, caPEM, err := selfSigned()
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("kinesistest: generate certificate: %w", err)
		}
		s.caPEM = caPEM
		s.certPool = x509.NewCertPool()
		s.certPool.AppendCertsFromPEM(caPEM)
		s.hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.endpoint = "https://" + ln.Addr().String()
	}
	s.hs.Protocols = &protos

	go func() {
		var err error
		if cfg.plain {
			err = s.hs.Serve(ln)
		} else {
			err = s.hs.ServeTLS(ln, "", "")
		}
		s.served <- err
	}()
	return s, nil
}

// selfSigned makes an ECDSA P-256 certificate for 127.0.0.1, ::1 and
// localhost, valid for a day either side of now.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "kinesistest"},
		NotBefore:             time.Now().Add(-24 * time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemCert, nil
}

// Endpoint is the server's base URL, "https://127.0.0.1:PORT" (or http://
// with WithPlainHTTP), for kinesis.Options.BaseEndpoint.
func (s *Server) Endpoint() string { return s.endpoint }

// CACertPEM is the PEM of the self-signed certificate the server presents,
// to add to a client's roots. It is nil with WithPlainHTTP.
func (s *Server) CACertPEM() []byte { return s.caPEM }

// TLSConfig returns a client TLS configuration that trusts the server's
// certificate and offers HTTP/2. It is nil with WithPlainHTTP.
func (s *Server) TLSConfig() *tls.Config {
	if s.certPool == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.certPool, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
}

// HTTPClient returns an SDK HTTP client that trusts the server and
// negotiates HTTP/2. It is built with awshttp.NewBuildableClient, so an
// AWS_CA_BUNDLE in the environment does not interfere.
func (s *Server) HTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if tc := s.TLSConfig(); tc != nil {
			tr.TLSClientConfig = tc
		}
		tr.ForceAttemptHTTP2 = true
		tr.MaxIdleConnsPerHost = 64
	})
}

// Client returns an aws-sdk-go-v2 Kinesis client for the server: static
// credentials, the server's region, HTTPClient, and no retries, so callers
// see every injected fault. optFns adjust it further.
func (s *Server) Client(optFns ...func(*kinesis.Options)) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:           s.cfg.region,
		BaseEndpoint:     aws.String(s.endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDKINESISTEST", "secret", ""),
		HTTPClient:       s.HTTPClient(),
		RetryMaxAttempts: 1,
	}, optFns...)
}

// Close ends every subscription, closes every connection, and returns once
// every request handler has returned.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	close(s.done)
	s.mu.Unlock()

	err := s.hs.Close()
	s.mu.Lock()
	for s.inflight > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()
	if serr := <-s.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("kinesistest: close: %w", err)
	}
	return nil
}

// Calls returns how many calls of op (e.g. "GetRecords") the server has
// received, including failed ones.
func (s *Server) Calls(op string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Subscriptions returns how many SubscribeToShard streams the server has
// opened for shardID, in any stream.
func (s *Server) Subscriptions(shardID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened[shardID]
}

// WaitFor returns nil once cond returns true, or ctx's error. cond is
// checked at once and again after every change the server sees (a call, a
// write, a subscription opening or ending), never by polling. cond runs
// without the server's lock held, so it may call Calls and Subscriptions.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		// Reading ch before cond means a change between the two still
		// wakes us: it closes the very channel we wait on.
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("kinesistest: wait for condition: %w", ctx.Err())
		}
	}
}

// bumpLocked wakes WaitFor callers.
func (s *Server) bumpLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// apiError is an AWS JSON error answer.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errf(code, format string, args ...any) *apiError {
	st := http.StatusBadRequest
	switch code {
	case "InternalFailure", "InternalFailureException":
		st = http.StatusInternalServerError
	case "ServiceUnavailable", "ServiceUnavailableException":
		st = http.StatusServiceUnavailable
	case "MissingAuthenticationTokenException", "AccessDeniedException":
		st = http.StatusForbidden
	}
	return &apiError{status: st, code: code, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return errf("ResourceNotFoundException", format, args...)
}

func invalidArg(format string, args ...any) *apiError {
	return errf("InvalidArgumentException", format, args...)
}

// ServeHTTP implements the Kinesis AWS JSON 1.1 protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		http.Error(w, "server closing", http.StatusServiceUnavailable)
		return
	}
	s.inflight++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		if s.inflight == 0 {
			s.idle.Broadcast()
		}
		s.mu.Unlock()
	}()

	w.Header().Set("X-Amzn-Requestid", strconv.FormatUint(s.reqID.Add(1), 10))
	if r.Method != http.MethodPost {
		writeError(w, errf("UnknownOperationException", "method %s not allowed", r.Method))
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, targetPrefix)
	if !ok {
		writeError(w, errf("UnknownOperationException", "unknown target %q", target))
		return
	}
	if r.Header.Get("Authorization") == "" {
		writeError(w, errf("MissingAuthenticationTokenException", "Missing Authentication Token"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		// The client went away mid-request; there is no one to answer.
		return
	}
	if len(body) > maxBody {
		writeError(w, errf("ValidationException", "request body larger than %d bytes", maxBody))
		return
	}

	s.mu.Lock()
	s.calls[op]++
	s.bumpLocked()
	// Faults without a Shard fire here, before the call is parsed; faults
	// scoped to a shard fire in the handlers, once the shard is known.
	fault := s.callFaultLocked(op, "")
	s.mu.Unlock()
	if fault != nil {
		writeError(w, fault.callError())
		return
	}

	if op == "SubscribeToShard" {
		s.subscribeToShard(w, r, body)
		return
	}
	h, ok := handlers[op]
	if !ok {
		writeError(w, errf("UnknownOperationException", "operation %s is not supported by kinesistest", op))
		return
	}
	out, aerr := h(s, body)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch v := out.(type) {
	case rawJSON:
		w.Header().Set("Content-Length", strconv.Itoa(len(v)))
		w.Write(v)
	case nil:
		w.Write([]byte("{}"))
	default:
		b, err := json.Marshal(v)
		if err != nil {
			writeError(w, errf("InternalFailure", "encode response: %v", err))
			return
		}
		w.Write(b)
	}
}

// rawJSON is a response body encoded by hand, for the hot operations.
type rawJSON []byte

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", e.code)
	w.WriteHeader(e.status)
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{e.code, e.msg})
	w.Write(b)
}

// decode unmarshals a request body, answering SerializationException for
// malformed JSON as AWS does.
func decode(body []byte, v any) *apiError {
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errf("SerializationException", "malformed request: %v", err)
	}
	return nil
}
