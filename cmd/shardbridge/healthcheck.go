package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// defaultHealthURL is /healthz on the default http.addr.
const defaultHealthURL = "http://127.0.0.1:8083/healthz"

// cmdHealthcheck GETs a health URL and succeeds only on 200 OK. It exists so that the
// distroless image's HEALTHCHECK needs no curl or shell: the binary checks itself.
func cmdHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", defaultHealthURL, "URL to GET; healthy only on 200 OK")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the whole answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: pass the URL with --url", fs.Arg(0))
	}
	if err := checkHealth(ctx, *url, *timeout); err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return exitError{1}
	}
	fmt.Fprintf(stdout, "healthy: %s\n", *url)
	return nil
}

// checkHealth returns nil when GET url answers 200 within timeout, else a one-line reason.
func checkHealth(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("bad --url: %w", err)
	}
	// A probe must not follow redirects (a 200 elsewhere says nothing about this process) nor
	// keep connections open between runs.
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("GET %s: no answer within %s", url, timeout)
		}
		return err // a *url.Error already names the method and the URL
	}
	defer resp.Body.Close()
	// Read a little of the body: /readyz explains a 503 there.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		reason := strings.Join(strings.Fields(string(body)), " ")
		if reason != "" {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, reason)
		}
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
