package kafka

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shardbridge/shardbridge/internal/syncbuf"
	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/config"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client certificate, as PEM files.
type testPKI struct {
	caFile, clientCert, clientKey string
	caPool                        *x509.CertPool
	server                        tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	issue := func(serial int64, usage x509.ExtKeyUsage, ip bool) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: fmt.Sprint("leaf ", serial)},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth, true)
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth, false)
	p.clientCert = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p.clientKey = writePEM(t, dir, "client-key.pem", "PRIVATE KEY", keyDER)
	return p
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// produceOne writes one record through a new sink and waits for its ack.
func produceOne(t *testing.T, cfg Config, opts ...Option) error {
	t.Helper()
	ctx := testCtx(t)
	s, err := NewSink(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	a := newAcks()
	recs := []runtime.Record{makeRecord("s", "sh", "k", 1, time.Now())}
	if err := s.Write(ctx, recs, a.ack); err != nil {
		return err
	}
	a.wait(ctx, t, 1)
	err, _ = a.get(recID(&recs[0]))
	return err
}

func TestMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	_, cfg := newCluster(t, kfake.SeedTopics(1, "mirror.s"), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.caPool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}))
	cfg.RequestTimeout = config.Duration(time.Second)

	ok := cfg
	ok.TLS = TLSConfig{Enabled: true, CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}
	if err := produceOne(t, ok); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}

	for name, bad := range map[string]TLSConfig{
		"no TLS":         {},
		"no client cert": {Enabled: true, CAFile: pki.caFile},
		"unknown CA":     {Enabled: true, CertFile: pki.clientCert, KeyFile: pki.clientKey},
	} {
		c := cfg
		c.TLS = bad
		_, err := NewSink(testCtx(t), c)
		var ue *UnreachableError
		if !errors.As(err, &ue) {
			t.Errorf("%s: NewSink = %v, want *UnreachableError", name, err)
		}
	}
}

func TestTLSInsecureSkipVerify(t *testing.T) {
	pki := newTestPKI(t)
	_, cfg := newCluster(t, kfake.SeedTopics(1, "mirror.s"), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12,
	}))
	cfg.TLS = TLSConfig{Enabled: true, InsecureSkipVerify: true}
	if err := produceOne(t, cfg); err != nil {
		t.Fatalf("skip verify: %v", err)
	}
}

// TestSASL authenticates with each user/password mechanism, and checks that a wrong password is
// reported without the password appearing in the error or the debug log.
func TestSASL(t *testing.T) {
	const pass = "correct-horse-battery-staple"
	const wrong = "wrong-password-d0nt-print"
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			_, cfg := newCluster(t, kfake.SeedTopics(1, "mirror.s"), kfake.EnableSASL(), kfake.Superuser(mech, "svc", pass))
			cfg.RequestTimeout = config.Duration(time.Second)
			var logs syncbuf.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug - 8}))

			cfg.SASL = SASLConfig{Mechanism: mech, Username: "svc", Password: pass}
			if err := produceOne(t, cfg, WithLogger(log)); err != nil {
				t.Fatalf("authenticate: %v", err)
			}

			cfg.SASL.Password = wrong
			_, err := NewSink(testCtx(t), cfg, WithLogger(log))
			if err == nil {
				t.Fatal("wrong password accepted")
			}
			out := err.Error() + fmt.Sprintf("%+v %#v", cfg, cfg) + logs.String()
			for _, secret := range []string{pass, wrong} {
				if strings.Contains(out, secret) {
					t.Errorf("secret %q appears in the error, the config's printed form or the log", secret)
				}
			}
		})
	}
}

// TestMSKIAMUsesCredentialChain checks that AWS_MSK_IAM takes its credentials from the standard
// AWS chain (here the environment) and fetches them when it authenticates. No MSK broker is
// involved: the first SASL message is signed locally.
func TestMSKIAMUsesCredentialChain(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE0000TEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-key-not-to-print")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CA_BUNDLE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	ctx := testCtx(t)
	m, err := saslMechanism(ctx, &SASLConfig{Mechanism: SASLAWSMSKIAM})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != "AWS_MSK_IAM" {
		t.Errorf("mechanism %s", m.Name())
	}
	_, first, err := m.Authenticate(ctx, "b-1.demo.abc123.c2.kafka.us-east-1.amazonaws.com:9098")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(first, []byte("AKIDEXAMPLE0000TEST")) {
		t.Errorf("first IAM message does not use the chain's access key: %s", first)
	}
	if bytes.Contains(first, []byte("secret-key-not-to-print")) {
		t.Error("first IAM message carries the secret key itself")
	}
}
