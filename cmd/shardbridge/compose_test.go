package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// repoRoot is the repository's root, seen from this package's directory.
const repoRoot = "../.."

// versionTag is a pinned image tag: a version number, optionally with a suffix such as
// "-bookworm". Floating tags (latest, stable, edge, a bare major) do not match.
var versionTag = regexp.MustCompile(`^v?\d+\.\d+(\.\d+)*([-.][0-9A-Za-z.]+)*$`)

// loadCompose loads compose files (later ones override earlier ones, as with `docker compose
// -f a -f b`) with the compose-spec loader, what `docker compose config` runs.
func loadCompose(t *testing.T, files ...string) (*types.Project, string) {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(root, f))
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithWorkingDirectory(root),
		// Only the defaults written in the file: the test must not depend on the caller's shell.
		cli.WithEnv(nil),
		cli.WithName("shardbridge"),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("%s do(es) not load: %v", strings.Join(files, " + "), err)
	}
	return p, root
}

// checkComposeServices checks every service: built from the Dockerfile or a pinned image,
// dependencies on known services, mounted files that exist.
func checkComposeServices(t *testing.T, p *types.Project) {
	t.Helper()
	for name, s := range p.Services {
		switch {
		case s.Build != nil:
			if s.Image != "" {
				t.Errorf("service %s: both build and image %q; the image would be tagged from the build", name, s.Image)
			}
			df := s.Build.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			if _, err := os.Stat(filepath.Join(s.Build.Context, df)); err != nil {
				t.Errorf("service %s: build file: %v", name, err)
			}
		case s.Image == "":
			t.Errorf("service %s: neither image nor build", name)
		default:
			if tag := imageTag(s.Image); !versionTag.MatchString(tag) {
				t.Errorf("service %s: image %q is not pinned to a version tag", name, s.Image)
			}
		}
		for dep := range s.DependsOn {
			if _, ok := p.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s: %v", name, v.Source, err)
			}
		}
	}
}

// mountedConfig returns the one config file mounted into shardbridge's config folder, which
// must be a file of configs/, mounted read-only.
func mountedConfig(t *testing.T, root string, sb types.ServiceConfig) string {
	t.Helper()
	var mounted []string
	for _, v := range sb.Volumes {
		if v.Type == types.VolumeTypeBind && strings.HasPrefix(v.Target, "/etc/shardbridge/") {
			mounted = append(mounted, v.Source)
			if !v.ReadOnly {
				t.Errorf("config mount %s is writable; mount it read-only", v.Target)
			}
		}
	}
	if len(mounted) != 1 || filepath.Dir(mounted[0]) != filepath.Join(root, "configs") {
		t.Fatalf("shardbridge mounts %q; want one file of configs/ under /etc/shardbridge/ (the image loads every file there)", mounted)
	}
	return mounted[0]
}

// docker-compose.yml loads with the compose-spec loader (what `docker compose config` runs),
// every image is pinned, every mounted file exists, and shardbridge waits for its peers.
func TestComposeFile(t *testing.T) {
	p, root := loadCompose(t, "docker-compose.yml")
	checkComposeServices(t, p)

	for _, want := range []string{"kinesis", "kafka", "kafka-setup", "kinesis-setup", "shardbridge"} {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("service %s is missing", want)
		}
	}
	sb, ok := p.Services["shardbridge"]
	if !ok {
		t.FailNow()
	}
	if sb.Build == nil {
		t.Errorf("shardbridge is not built from the Dockerfile")
	}
	for _, dep := range []string{"kafka-setup", "kinesis-setup"} {
		if c := sb.DependsOn[dep].Condition; c != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("shardbridge depends on %s with condition %q, want %q", dep, c, types.ServiceConditionCompletedSuccessfully)
		}
	}
	if c := p.Services["kafka-setup"].DependsOn["kafka"].Condition; c != types.ServiceConditionHealthy {
		t.Errorf("kafka-setup waits for kafka with condition %q, want service_healthy", c)
	}
	if p.Services["kafka"].HealthCheck == nil || sb.HealthCheck == nil {
		t.Errorf("kafka and shardbridge need healthchecks")
	}

	// The mounted config is one of configs/, lands in the folder the image runs, validates, and
	// makes the API reachable from outside the container with a token.
	mounted := mountedConfig(t, root, sb)
	cfg, err := loadConfig([]string{mounted})
	if err != nil {
		t.Fatalf("%s: %v", mounted, err)
	}
	if cfg.HTTP.Addr != "0.0.0.0:8083" || cfg.HTTP.AuthToken == "" {
		t.Errorf("%s: http.addr %q, token set %t; a container needs 0.0.0.0:8083 and a token", mounted, cfg.HTTP.Addr, cfg.HTTP.AuthToken != "")
	}
	if tok := sb.Environment["SHARDBRIDGE_HTTP__AUTH_TOKEN"]; tok == nil || *tok == "" {
		t.Errorf("shardbridge's environment sets no SHARDBRIDGE_HTTP__AUTH_TOKEN default")
	}
	if !publishes(sb, "8083") {
		t.Errorf("shardbridge does not publish 8083")
	}
	if sb.Deploy != nil && sb.Deploy.Replicas != nil && *sb.Deploy.Replicas != 1 {
		t.Errorf("shardbridge runs %d replicas without group mode: each would mirror every record", *sb.Deploy.Replicas)
	}
	for _, c := range cfg.Connectors {
		if c.Group.Enabled {
			t.Errorf("%s: connector %s is in group mode; docker-compose.group.yml is the group example", mounted, c.Name)
		}
	}
}

// docker-compose.group.yml, on top of docker-compose.yml, runs two replicas of shardbridge in
// group mode: the stack still loads and is pinned, the replicas mount one config (in place of
// compose.yaml) that validates and puts every connector in group mode with no fixed worker_id
// (each replica's host name makes its own), and each replica's API is published on a port of
// its own, with a token.
func TestComposeGroupFile(t *testing.T) {
	p, root := loadCompose(t, "docker-compose.yml", "docker-compose.group.yml")
	checkComposeServices(t, p)
	sb, ok := p.Services["shardbridge"]
	if !ok {
		t.Fatal("service shardbridge is missing")
	}
	if sb.Deploy == nil || sb.Deploy.Replicas == nil || *sb.Deploy.Replicas != 2 {
		t.Fatalf("shardbridge deploy %+v; want 2 replicas", sb.Deploy)
	}
	if sb.Build == nil || sb.HealthCheck == nil {
		t.Errorf("the replicas lost the build or the healthcheck of docker-compose.yml")
	}
	for _, dep := range []string{"kafka-setup", "kinesis-setup"} {
		if c := sb.DependsOn[dep].Condition; c != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("shardbridge depends on %s with condition %q, want %q", dep, c, types.ServiceConditionCompletedSuccessfully)
		}
	}
	mounted := mountedConfig(t, root, sb)
	if filepath.Base(mounted) != "compose-group.yaml" {
		t.Errorf("the replicas mount %s; want configs/compose-group.yaml", mounted)
	}
	cfg, err := loadConfig([]string{mounted})
	if err != nil {
		t.Fatalf("%s: %v", mounted, err)
	}
	if len(cfg.Connectors) == 0 {
		t.Fatalf("%s has no connector", mounted)
	}
	for _, c := range cfg.Connectors {
		if !c.Group.Enabled {
			t.Errorf("%s: connector %s is not in group mode: both replicas would mirror every record", mounted, c.Name)
		}
	}
	if cfg.WorkerID != "" {
		t.Errorf("%s sets worker_id %q: both replicas would share it", mounted, cfg.WorkerID)
	}
	if cfg.HTTP.Addr != "0.0.0.0:8083" || cfg.HTTP.AuthToken == "" {
		t.Errorf("%s: http.addr %q, token set %t; a container needs 0.0.0.0:8083 and a token", mounted, cfg.HTTP.Addr, cfg.HTTP.AuthToken != "")
	}
	if tok := sb.Environment["SHARDBRIDGE_HTTP__AUTH_TOKEN"]; tok == nil || *tok == "" {
		t.Errorf("shardbridge's environment sets no SHARDBRIDGE_HTTP__AUTH_TOKEN default")
	}
	var published []string
	for _, port := range sb.Ports {
		if port.Target != 8083 {
			t.Errorf("shardbridge publishes %s:%d; want only the API port 8083", port.Published, port.Target)
		}
		published = append(published, port.Published)
	}
	if len(published) != 1 || published[0] != "8083-8084" {
		t.Errorf("shardbridge publishes %v; want one range of a host port per replica, 8083-8084", published)
	}
}

// The Dockerfile builds a static, trimmed binary with the toolchain go.mod names, and runs it
// from distroless as non-root with a self-probing HEALTHCHECK.
func TestDockerfile(t *testing.T) {
	lines := dockerfileInstructions(t, filepath.Join(repoRoot, "Dockerfile"))
	goMod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(goMod)
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	goVersion := string(goLine[1])

	var froms []string
	for _, l := range lines {
		if f, ok := strings.CutPrefix(l, "FROM "); ok {
			froms = append(froms, strings.Fields(f)[0])
		}
	}
	if len(froms) != 2 {
		t.Fatalf("want a two-stage build, got FROM %v", froms)
	}
	if want := "golang:" + goVersion + "-bookworm"; froms[0] != want {
		t.Errorf("build stage FROM %s, want %s (go.mod's go line)", froms[0], want)
	}
	if froms[1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("run stage FROM %s, want gcr.io/distroless/static-debian12:nonroot", froms[1])
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		"CGO_ENABLED=0",
		"-trimpath",
		`-ldflags "-s -w -X main.version=${VERSION}"`,
		"USER nonroot:nonroot",
		"EXPOSE 8083",
		`CMD ["/shardbridge","healthcheck","--url","http://127.0.0.1:8083/healthz"]`,
		`ENTRYPOINT ["/shardbridge"]`,
		`CMD ["run","--config","/etc/shardbridge"]`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/shardbridge","healthcheck"`).MatchString(all) {
		t.Errorf("Dockerfile's HEALTHCHECK does not run the binary's healthcheck")
	}

	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", ".tools"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).Match(ignore) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

// imageTag returns the tag of an image reference ("" when it has none, or only a digest).
func imageTag(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndexByte(ref, '/')
	if colon := strings.LastIndexByte(ref, ':'); colon > slash {
		return ref[colon+1:]
	}
	return ""
}

func publishes(s types.ServiceConfig, port string) bool {
	for _, p := range s.Ports {
		if p.Published == port {
			return true
		}
	}
	return false
}

// dockerfileInstructions returns the Dockerfile's instructions with continuation lines joined
// and comments dropped.
func dockerfileInstructions(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cur.WriteString(strings.TrimSpace(s) + " ")
			continue
		}
		cur.WriteString(l)
		out = append(out, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
