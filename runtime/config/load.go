package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// Registry maps source and sink type names to constructors of their typed config sections.
// cmd/shardbridge fills it with the connector packages' types; the runtime never imports
// a connector.
type Registry struct {
	// Sources maps a source type name (e.g. "kinesis") to a function returning a new zero
	// config: a pointer to a struct with koanf tags, which Load decodes with Decode and then
	// validates.
	Sources map[string]func() PluginConfig
	// Sinks is the same for sink types (e.g. "kafka").
	Sinks map[string]func() PluginConfig
}

// EnvPrefix starts the names of the environment variables that Load reads.
const EnvPrefix = "SHARDBRIDGE_"

// EnvConfig is the variable cmd/shardbridge may read config paths from. Load never treats it
// as a key.
const EnvConfig = "SHARDBRIDGE_CONFIG"

// WithoutEnv returns environ without the variables named in names, for variables that carry
// the prefix but are not config keys (cmd/shardbridge's own flags, say). environ is in
// os.Environ's "NAME=value" form; names are matched exactly.
func WithoutEnv(environ []string, names ...string) []string {
	drop := make(map[string]bool, len(names))
	for _, n := range names {
		drop[n] = true
	}
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !drop[name] {
			out = append(out, kv)
		}
	}
	return out
}

// Load reads the config files named by paths, applies environment overrides from environ,
// decodes the result strictly into a Config holding runtime defaults, decodes each
// connector's source and sink section with the type registered in reg, and validates
// everything. It returns every problem at once, as errors.Join of *FieldError (file errors
// are plain errors naming the path); use Problems to list them. On any problem the Config
// is nil.
//
// Files. Each path is a file ending in .yaml, .yml or .toml (case-insensitive) or a
// directory, whose files with those extensions are loaded in lexical order of their names;
// subdirectories and other files in it are ignored, and a directory without any config
// file is an error. Paths are loaded in the order given.
//
// Merging. Every key except connectors is merged key by key with koanf: a later file
// overrides a scalar or list set by an earlier one, and nested tables merge recursively.
// The connectors lists are instead concatenated in load order, so each file may hold one
// connector (or several). A connector is never merged with another; connectors[N] in
// messages and in environment variables is the position in the concatenated list.
//
// Environment. Only variables starting with EnvPrefix are read, except EnvConfig. The rest
// of the name is lower-cased and split at "__" into key levels, so
// SHARDBRIDGE_POOL__MAX_PENDING_BYTES=128MiB sets pool.max_pending_bytes. A connector is
// addressed by its index: SHARDBRIDGE_CONNECTORS__0__SINK__KAFKA__BROKERS=a:9092,b:9092
// merges into the first connector's sink.kafka.brokers, and naming an index that no file
// defines is an error (the environment cannot add connectors). Values are strings; Decode
// converts them to numbers, booleans, sizes, durations and, split at commas, lists. The
// environment overrides every file. Pass os.Environ() in main, possibly through WithoutEnv.
func Load(reg Registry, paths []string, environ []string) (*Config, error) {
	var errs []error
	k := koanf.New(".")
	var connectors []any

	files, ferrs := expandPaths(paths)
	errs = append(errs, ferrs...)
	for _, f := range files {
		raw, err := readFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c, ok := raw["connectors"]; ok {
			delete(raw, "connectors")
			switch l := c.(type) {
			case []any:
				connectors = append(connectors, l...)
			case nil:
			default:
				errs = append(errs, &FieldError{Key: "connectors", Value: c, Problem: "expected a list in " + f + ", got " + kindName(c), Fix: "write connectors as a list (YAML \"- name: ...\" items or TOML [[connectors]] tables)"})
			}
		}
		if err := k.Load(confmap.Provider(raw, ""), nil); err != nil {
			errs = append(errs, fmt.Errorf("config file %s: merge: %w", f, err))
		}
	}

	envRaw, envNames, eerrs := readEnv(environ)
	errs = append(errs, eerrs...)
	envConnectors, hasEnvConnectors := envRaw["connectors"]
	delete(envRaw, "connectors")
	if err := k.Load(confmap.Provider(envRaw, ""), nil); err != nil {
		errs = append(errs, fmt.Errorf("environment: merge: %w", err))
	}
	if hasEnvConnectors {
		errs = append(errs, applyEnvConnectors(connectors, envConnectors, envNames)...)
	}

	raw := k.Raw()
	if len(connectors) > 0 {
		raw["connectors"] = connectors
	}
	cfg, derrs := decodeConfig(reg, raw)
	errs = append(errs, derrs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// rawConfig mirrors Config with each source and sink left as a raw table, so the runtime
// part decodes strictly before the plugin types are looked up.
type rawConfig struct {
	HTTP            HTTP           `koanf:"http"`
	Pool            Pool           `koanf:"pool"`
	ShutdownTimeout Duration       `koanf:"shutdown_timeout"`
	MemoryLimit     MemoryLimit    `koanf:"memory_limit"`
	DecodeBudget    ByteSize       `koanf:"decode_budget"`
	WorkerID        string         `koanf:"worker_id"`
	Connectors      []rawConnector `koanf:"connectors"`
}

type rawConnector struct {
	Name            string         `koanf:"name"`
	Source          map[string]any `koanf:"source"`
	Sink            map[string]any `koanf:"sink"`
	Checkpoint      Checkpoint     `koanf:"checkpoint"`
	Errors          Errors         `koanf:"errors"`
	Group           Group          `koanf:"group"`
	Delivery        string         `koanf:"delivery"`
	TransactionalID string         `koanf:"transactional_id"`
}

// decodeConfig decodes the merged tree into a Config and validates it.
func decodeConfig(reg Registry, raw map[string]any) (*Config, []error) {
	def := Default()
	rc := rawConfig{HTTP: def.HTTP, Pool: def.Pool, ShutdownTimeout: def.ShutdownTimeout, MemoryLimit: def.MemoryLimit, DecodeBudget: def.DecodeBudget}
	// Pre-size the list with defaulted connectors: mapstructure decodes onto existing slice
	// elements, so keys a connector leaves out keep their defaults, while a value written
	// as zero stays zero and is rejected by validation instead of silently defaulted.
	if l, ok := raw["connectors"].([]any); ok {
		for range l {
			d := DefaultConnector()
			rc.Connectors = append(rc.Connectors, rawConnector{Checkpoint: d.Checkpoint, Errors: d.Errors, Group: d.Group, Delivery: d.Delivery})
		}
	}
	var errs []error
	skip := make(map[string]bool)
	note := func(err error) {
		for _, fe := range Problems(err) {
			skip[fe.Key] = true
			errs = append(errs, fe)
		}
	}
	note(Decode(raw, &rc, ""))

	cfg := &Config{HTTP: rc.HTTP, Pool: rc.Pool, ShutdownTimeout: rc.ShutdownTimeout, MemoryLimit: rc.MemoryLimit, DecodeBudget: rc.DecodeBudget, WorkerID: rc.WorkerID}
	for i, rcn := range rc.Connectors {
		p := "connectors[" + strconv.Itoa(i) + "]"
		cn := Connector{Name: rcn.Name, Checkpoint: rcn.Checkpoint, Errors: rcn.Errors, Group: rcn.Group,
			Delivery: rcn.Delivery, TransactionalID: rcn.TransactionalID}
		if cn.TransactionalID == "" {
			cn.TransactionalID = DefaultTransactionalIDPrefix + cn.Name
		}
		// The group's id and topic default to names derived from the connector's.
		if cn.Group.ID == "" {
			cn.Group.ID = DefaultGroupIDPrefix + cn.Name
		}
		if cn.Group.Topic == "" {
			cn.Group.Topic = DefaultGroupTopicPrefix + cn.Name
		}
		var err error
		cn.Source, err = decodePlugin(reg.Sources, rcn.Source, p+".source", "source")
		note(err)
		cn.Sink, err = decodePlugin(reg.Sinks, rcn.Sink, p+".sink", "sink")
		note(err)
		cfg.Connectors = append(cfg.Connectors, cn)
	}
	errs = append(errs, cfg.validate(skip)...)
	return cfg, errs
}

// decodePlugin finds the one registered type named in section and decodes its table.
// A section that names no, several or an unknown type gets Plugin{} and an error keyed at
// path, which also keeps validation from reporting the missing section again.
func decodePlugin(types map[string]func() PluginConfig, section map[string]any, path, kind string) (Plugin, error) {
	names := sortedNames(types)
	keys := sortedKeys(section)
	switch len(keys) {
	case 0:
		return Plugin{}, &FieldError{Key: path, Problem: "no " + kind + " type", Fix: "add a " + kind + " section with exactly one of " + knownList(names)}
	case 1:
	default:
		return Plugin{}, &FieldError{Key: path, Value: strings.Join(keys, ", "), Problem: "several " + kind + " types", Fix: "keep exactly one " + kind + " type per connector"}
	}
	typ := keys[0]
	newCfg, ok := types[typ]
	if !ok || newCfg == nil {
		fix := "use one of " + knownList(names)
		if s := suggest(typ, names); s != "" {
			fix = "did you mean " + s + "?"
		}
		return Plugin{}, &FieldError{Key: path, Value: typ, Problem: "unknown " + kind + " type", Fix: fix}
	}
	pc := newCfg()
	body := section[typ]
	if body == nil {
		body = map[string]any{}
	}
	if _, isMap := body.(map[string]any); !isMap {
		return Plugin{Type: typ, Config: pc}, &FieldError{Key: joinKey(path, typ), Value: body, Problem: "expected a table of keys, got " + kindName(body), Fix: "write it as a nested table (YAML mapping or TOML table)"}
	}
	return Plugin{Type: typ, Config: pc}, Decode(body, pc, joinKey(path, typ))
}

// expandPaths turns the given paths into the list of files to load, in order.
func expandPaths(paths []string) ([]string, []error) {
	var files []string
	var errs []error
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("config path %s: %w", p, err))
			continue
		}
		if !st.IsDir() {
			if parserFor(p) == nil {
				errs = append(errs, fmt.Errorf("config file %s: unknown extension %q; use .yaml, .yml or .toml", p, filepath.Ext(p)))
				continue
			}
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("config directory %s: %w", p, err))
			continue
		}
		var found []string
		for _, e := range entries {
			if e.IsDir() || parserFor(e.Name()) == nil {
				continue
			}
			found = append(found, filepath.Join(p, e.Name()))
		}
		// os.ReadDir already sorts by name; sort again so the order is the documented contract
		// rather than an implementation detail of ReadDir.
		sort.Strings(found)
		if len(found) == 0 {
			errs = append(errs, fmt.Errorf("config directory %s: no .yaml, .yml or .toml files", p))
		}
		files = append(files, found...)
	}
	return files, errs
}

func parserFor(name string) koanf.Parser {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
		return yaml.Parser()
	case ".toml":
		return toml.Parser()
	}
	return nil
}

// readFile parses one config file into a tree, with koanf's parsers.
func readFile(path string) (map[string]any, error) {
	fk := koanf.New(".")
	if err := fk.Load(file.Provider(path), parserFor(path)); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return fk.Raw(), nil
}

// readEnv reads the prefixed variables into a tree. names maps each lower-cased flat key
// ("connectors__0__name") to its variable's name, for messages.
func readEnv(environ []string) (map[string]any, map[string]string, []error) {
	names := make(map[string]string)
	var errs []error
	p := env.Provider("__", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(name, value string) (string, any) {
			if name == EnvConfig {
				return "", nil
			}
			key := strings.ToLower(strings.TrimPrefix(name, EnvPrefix))
			for _, part := range strings.Split(key, "__") {
				if part == "" {
					errs = append(errs, &FieldError{Key: name, Problem: "environment variable names an empty key level", Fix: "separate key levels with exactly two underscores, e.g. " + EnvPrefix + "POOL__MAX_PENDING_BYTES"})
					return "", nil
				}
			}
			names[key] = name
			return key, value
		},
	})
	mp, err := p.Read()
	if err != nil {
		errs = append(errs, fmt.Errorf("environment: %w", err))
		return map[string]any{}, names, errs
	}
	return mp, names, errs
}

// applyEnvConnectors merges index-addressed environment overrides into the connectors
// loaded from files.
func applyEnvConnectors(connectors []any, envConnectors any, names map[string]string) []error {
	varsFor := func(prefix string) string {
		var vs []string
		for k, n := range names {
			if k == prefix || strings.HasPrefix(k, prefix+"__") {
				vs = append(vs, n)
			}
		}
		sort.Strings(vs)
		return strings.Join(vs, ", ")
	}
	byIndex, ok := envConnectors.(map[string]any)
	if !ok {
		return []error{&FieldError{Key: varsFor("connectors"), Problem: "cannot set the connectors list from the environment", Fix: "address one connector's key by index, e.g. " + EnvPrefix + "CONNECTORS__0__NAME"}}
	}
	var errs []error
	for _, idx := range sortedKeys(byIndex) {
		vars := varsFor("connectors__" + idx)
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || strconv.Itoa(i) != idx {
			errs = append(errs, &FieldError{Key: vars, Value: idx, Problem: "connector index is not a number", Fix: "address a connector by its position, e.g. " + EnvPrefix + "CONNECTORS__0__NAME"})
			continue
		}
		if i >= len(connectors) {
			errs = append(errs, &FieldError{Key: vars, Value: i, Problem: fmt.Sprintf("no connector at index %d; the files define %d", i, len(connectors)), Fix: "define the connector in a config file; the environment can only override it"})
			continue
		}
		over, ok := byIndex[idx].(map[string]any)
		if !ok {
			errs = append(errs, &FieldError{Key: vars, Problem: "cannot replace a whole connector from the environment", Fix: "set its keys, e.g. " + EnvPrefix + "CONNECTORS__" + idx + "__NAME"})
			continue
		}
		dst, ok := connectors[i].(map[string]any)
		if !ok {
			// The file's entry is not a table; decoding reports that, so leave it alone.
			continue
		}
		mergeTree(over, dst)
	}
	return errs
}

// mergeTree merges src into dst recursively: tables merge, anything else replaces.
func mergeTree(src, dst map[string]any) {
	for k, v := range src {
		sm, sIsMap := v.(map[string]any)
		dm, dIsMap := dst[k].(map[string]any)
		if sIsMap && dIsMap {
			mergeTree(sm, dm)
			continue
		}
		dst[k] = v
	}
}
