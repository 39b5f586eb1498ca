package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/shardbridge/shardbridge/runtime/config"
	"github.com/shardbridge/shardbridge/sink/kafka"
	"github.com/shardbridge/shardbridge/source/kinesis"
)

// configsDir is the repository's configs/ folder, seen from this package's directory (go test
// runs tests in the package's folder).
const configsDir = "../../configs"

// Every file in configs/ is accepted by `shardbridge validate`, exactly as a user would run it.
func TestConfigsDirValidates(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(configsDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var checked []string
	for _, f := range files {
		switch strings.ToLower(filepath.Ext(f)) {
		case ".yaml", ".yml", ".toml":
		default:
			t.Errorf("%s: configs/ should hold only YAML and TOML configs", f)
			continue
		}
		checked = append(checked, filepath.Base(f))
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run([]string{"validate", "--config", f}, &out, &errOut); code != 0 {
				t.Fatalf("shardbridge validate --config %s exited %d:\n%s%s", f, code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), "config is valid: 1 connector(s)") {
				t.Fatalf("validate output: %q", out.String())
			}
		})
	}
	// The files the README and the compose files point at must be among them.
	for _, want := range []string{"example.yaml", "example.toml", "localstack.yaml", "msk-iam.yaml", "compose.yaml", "compose-group.yaml"} {
		if !slices.Contains(checked, want) {
			t.Errorf("configs/%s is missing", want)
		}
	}
}

// example.yaml and example.toml hold the same settings: they load to equal configs.
func TestExampleYAMLAndTOMLLoadTheSame(t *testing.T) {
	y, err := loadConfig([]string{filepath.Join(configsDir, "example.yaml")})
	if err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	tm, err := loadConfig([]string{filepath.Join(configsDir, "example.toml")})
	if err != nil {
		t.Fatalf("example.toml: %v", err)
	}
	if !reflect.DeepEqual(y, tm) {
		yj, _ := json.MarshalIndent(y, "", "  ")
		tj, _ := json.MarshalIndent(tm, "", "  ")
		t.Fatalf("example.yaml and example.toml differ\nyaml: %s\ntoml: %s", yj, tj)
	}
}

// Every option appears in both examples, set or commented out, so "an example of every option"
// cannot drift from the config structs.
func TestExamplesNameEveryOption(t *testing.T) {
	for _, name := range []string{"example.yaml", "example.toml"} {
		b, err := os.ReadFile(filepath.Join(configsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, k := range configKeys() {
			leaf := k.Path[strings.LastIndexByte(k.Path, '.')+1:]
			leaf = strings.TrimSuffix(leaf, "[]")
			// YAML writes "leaf:", TOML "leaf =" (both possibly commented out).
			re := regexp.MustCompile(`(?m)^[ \t]*(#[ \t]*)?` + regexp.QuoteMeta(leaf) + `[ \t]*[:=]`)
			if !re.MatchString(text) {
				t.Errorf("%s does not show option %s", name, k.Path)
			}
		}
	}
}

// validate on a broken config exits 1 and prints one line per problem, each naming its key.
func TestValidateBrokenConfigs(t *testing.T) {
	tests := []struct {
		name string
		file string // file name; its extension picks the parser
		text string
		keys []string // every key that must be named, one problem line each
	}{
		{
			name: "three mistakes",
			file: "three.yaml",
			text: `pool:
  max_pending_records: 0
connectors:
  - name: orders
    source:
      kinesis:
        stream: orders
        region: us-east-1
        efo:
          enabld: true
    sink:
      kafka:
        brokers: ["localhost:9092"]
        topic: orders
    errors:
      policy: dlq
`,
			keys: []string{"pool.max_pending_records", "connectors[0].source.kinesis.efo.enabld", "connectors[0].errors.dlq_topic"},
		},
		{
			name: "exactly once without its producer settings",
			file: "eos.yaml",
			text: `connectors:
  - name: orders
    delivery: exactly_once
    source:
      kinesis: {stream: orders, region: us-east-1}
    sink:
      kafka: {brokers: ["localhost:9092"], topic: orders, acks: leader, idempotence: false}
  - name: typo
    delivery: exactly_one
    source:
      kinesis: {stream: orders, region: us-east-1}
    sink:
      kafka: {brokers: ["localhost:9092"], topic: orders}
`,
			keys: []string{"connectors[0].sink.kafka.acks", "connectors[0].sink.kafka.idempotence", "connectors[1].delivery"},
		},
		{
			name: "missing required keys",
			file: "required.yaml",
			text: `connectors:
  - name: orders
    source:
      kinesis: {}
    sink:
      kafka: {}
`,
			keys: []string{"connectors[0].source.kinesis.stream", "connectors[0].source.kinesis.region",
				"connectors[0].sink.kafka.brokers", "connectors[0].sink.kafka.topic"},
		},
		{
			name: "bad values in TOML",
			file: "values.toml",
			text: `shutdown_timeout = "30"

[http]
addr = "localhost"

[[connectors]]
name = "bad name!"

[connectors.source.kinesis]
stream = "orders"
region = "us-east-1"
start_position = "at_timestamp"
# Named, because the default name derives from the (bad) connector name and would be a
# sixth, consequential problem.
efo = { consumer_name = "shardbridge-orders" }

[connectors.sink.kafka]
brokers = ["localhost:9092"]
topic = "orders"
acks = "leader"
`,
			keys: []string{"shutdown_timeout", "http.addr", "connectors[0].name",
				"connectors[0].source.kinesis.start_timestamp", "connectors[0].sink.kafka.acks"},
		},
		{
			name: "MSK IAM without TLS, and a second connector with the same name",
			file: "msk.yaml",
			text: `connectors:
  - name: a
    source: {kinesis: {stream: s, region: eu-west-1}}
    sink: {kafka: {brokers: ["b:9098"], topic: t, sasl: {mechanism: AWS_MSK_IAM}}}
  - name: a
    source: {kinesis: {stream: s, region: eu-west-1}}
    sink: {kafka: {brokers: ["b:9098"], topic: t}}
`,
			keys: []string{"connectors[0].sink.kafka.sasl.mechanism", "connectors[1].name"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			code := run([]string{"validate", "--config", path}, &out, &errOut)
			if code != 1 {
				t.Fatalf("validate exited %d; want 1\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
			}
			var lines []string
			for _, l := range strings.Split(errOut.String(), "\n") {
				if strings.HasPrefix(l, "  - ") {
					lines = append(lines, strings.TrimPrefix(l, "  - "))
				}
			}
			if len(lines) != len(tc.keys) {
				t.Errorf("got %d problem lines, want %d:\n%s", len(lines), len(tc.keys), errOut.String())
			}
			for _, k := range tc.keys {
				n := 0
				for _, l := range lines {
					if strings.HasPrefix(l, k+":") {
						n++
					}
				}
				if n != 1 {
					t.Errorf("want exactly one problem line for %s, got %d:\n%s", k, n, errOut.String())
				}
			}
			if want := "invalid config: " + strconv.Itoa(len(tc.keys)) + " problem(s)"; !strings.Contains(errOut.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
			}
		})
	}
}

// configKey is one config key path, as a user writes it, with the Go type behind it.
type configKey struct {
	Path string // e.g. "connectors[].source.kinesis.efo.consumer_name"
	Type reflect.Type
}

// configKeys walks the config structs by their koanf tags and returns every leaf key path, in
// order: runtime/config.Config, and in place of each connector's source and sink section the
// struct this binary registers for it (kinesis.Config, kafka.Config).
func configKeys() []configKey {
	var out []configKey
	plugins := map[string]map[string]reflect.Type{
		"source": {"kinesis": reflect.TypeFor[kinesis.Config]()},
		"sink":   {"kafka": reflect.TypeFor[kafka.Config]()},
	}
	pluginType := reflect.TypeFor[config.Plugin]()
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
			if tag == "-" {
				continue
			}
			if tag == "" {
				tag = f.Name
			}
			path := tag
			if prefix != "" {
				path = prefix + "." + tag
			}
			ft := f.Type
			if ft == pluginType {
				names := make([]string, 0, len(plugins[tag]))
				for n := range plugins[tag] {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					walk(plugins[tag][n], path+"."+n)
				}
				continue
			}
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct:
				walk(ft, path)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), path+"[]")
			default:
				out = append(out, configKey{Path: path, Type: f.Type})
			}
		}
	}
	walk(reflect.TypeFor[config.Config](), "")
	return out
}

// keyTypeName is how the README's reference table names a key's type.
func keyTypeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[config.ByteSize]():
		return "size"
	case reflect.TypeFor[config.Duration]():
		return "duration"
	case reflect.TypeFor[config.Secret]():
		return "secret"
	case reflect.TypeFor[config.MemoryLimit]():
		return "auto, off or size"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Slice:
		return "list of " + keyTypeName(t.Elem())
	}
	return t.String()
}
