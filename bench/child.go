package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildBinaries builds shardbridge and the floor, without -race, into dir.
func buildBinaries(ctx context.Context, dir string) (shardbridge, floor string, err error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", "", err
	}
	shardbridge, floor = filepath.Join(dir, "shardbridge"), filepath.Join(dir, "floor")
	for bin, pkg := range map[string]string{shardbridge: "./cmd/shardbridge", floor: "./bench/floor"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	return shardbridge, floor, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the bench from inside the shardbridge module")
	}
	return filepath.Dir(mod), nil
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// clockTicks is the unit of utime and stime in /proc/PID/stat (sysconf(_SC_CLK_TCK)).
var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || n <= 0 {
		return 100
	}
	return float64(n)
}()

// child is a process under measurement: shardbridge or the floor.
type child struct {
	cmd     *exec.Cmd
	addr    string // its /metrics address
	logPath string
	exited  chan struct{} // closed once cmd.Wait returned
	waitErr error         // set before exited is closed
	http    *http.Client
}

func startChild(bin string, args, env []string, addr, logPath string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A GOMEMLIMIT of the bench's own environment would override the child's memory_limit.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMEMLIMIT=") }), env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	c := &child{cmd: cmd, addr: addr, logPath: logPath, exited: make(chan struct{}), http: &http.Client{Timeout: 5 * time.Second}}
	go func() {
		c.waitErr = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// metrics scrapes /metrics and sums each named metric over its label sets.
func (c *child) metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range names {
			if !strings.HasPrefix(line, name) || len(line) == len(name) || (line[len(name)] != ' ' && line[len(name)] != '{') {
				continue
			}
			rest := line[len(name):]
			if i := strings.LastIndexByte(rest, '}'); i >= 0 {
				rest = rest[i+1:]
			}
			f := strings.Fields(rest)
			if len(f) == 0 {
				continue
			}
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				out[name] += v
			}
		}
	}
	return out, sc.Err()
}

// cpuSeconds reads the child's user plus system CPU time so far from /proc.
func (c *child) cpuSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat: %q", b)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64) // field 14, utime
	st, err2 := strconv.ParseFloat(f[12], 64) // field 15, stime
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (ut + st) / clockTicks, nil
}

// peakRSS reads the child's peak resident set size so far (VmHWM, the kernel's high-water mark
// of this program's address space), or 0 once it has exited. It is read while the child is
// known to be running, never around its exit.
//
// rusage's ru_maxrss is no use here: os/exec starts the child with vfork semantics, so until
// exec the child runs in the bench process's address space, and Linux carries that high-water
// mark, the size of the bench with its whole in-memory backlog, into the child's maxrss. (Reads
// of VmHWM made while the child was exiting showed the same inflated figure, so the bench takes
// the peak at the moment the last record is acknowledged and leaves the drain out.)
func (c *child) peakRSS() int64 { return c.status()["VmHWM"] }

// status reads the byte sizes in the child's /proc/PID/status (VmHWM, VmRSS, RssAnon, RssFile,
// ...), or nil once it has exited. RssAnon is the memory the Go runtime manages (heap, stacks,
// its own metadata); RssFile is the binary's pages that are resident.
func (c *child) status() map[string]int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return nil
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err == nil {
			m[k] = kb << 10
		}
	}
	return m
}

// usage is what the kernel accounted to the child over its whole life.
type usage struct {
	cpu float64 // user + system seconds
}

// stop sends SIGTERM (a graceful drain for shardbridge), waits up to timeout, then kills.
func (c *child) stop(timeout time.Duration) (usage, error) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.exited
		return usage{}, fmt.Errorf("did not exit within %s of SIGTERM; log: %s", timeout, c.tail())
	}
	ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return usage{}, errors.New("no rusage for the child")
	}
	u := usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()}
	if c.waitErr != nil {
		return u, fmt.Errorf("exit: %w; log: %s", c.waitErr, c.tail())
	}
	return u, nil
}

// kill ends a child that failed; it is safe after stop.
func (c *child) kill() {
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

func (c *child) tail() string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
