package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error_code":503,"message":"orders: FAILED"}`, http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/healthz", http.StatusFound) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A port nobody listens on: listen, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()

	tests := []struct {
		name     string
		args     []string
		code     int
		contains string // in stdout when healthy, in stderr otherwise
	}{
		{"200 is healthy", []string{"--url", srv.URL + "/healthz"}, 0, "healthy: " + srv.URL + "/healthz"},
		{"503 is unhealthy with the reason", []string{"--url", srv.URL + "/readyz"}, 1, "503 Service Unavailable: {\"error_code\":503,\"message\":\"orders: FAILED\"}"},
		{"a redirect is not followed", []string{"--url", srv.URL + "/moved"}, 1, "302 Found"},
		{"connection refused", []string{"--url", refused}, 1, "connection refused"},
		{"no answer within the timeout", []string{"--url", srv.URL + "/hang", "--timeout", "200ms"}, 1, "no answer within 200ms"},
		{"a URL that does not parse", []string{"--url", "http://[::1"}, 1, "bad --url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"healthcheck"}, tc.args...), &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errOut.String())
			}
			got := out.String()
			if tc.code != 0 {
				got = errOut.String()
				if !strings.HasPrefix(got, "unhealthy: ") || strings.Count(got, "\n") != 1 {
					t.Errorf("want one line starting \"unhealthy: \", got %q", got)
				}
			}
			if !strings.Contains(got, tc.contains) {
				t.Errorf("output %q lacks %q", got, tc.contains)
			}
		})
	}
}
