package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shardbridge/shardbridge/runtime/config"
)

// echoSource is what a connector package would define for its section.
type echoSource struct {
	Greeting string          `koanf:"greeting"`
	Every    config.Duration `koanf:"every"`
}

func (c *echoSource) Validate(connector, path string) error {
	if c.Greeting == "" {
		c.Greeting = "hello from " + connector // a default derived from the connector's name
	}
	if c.Every <= 0 {
		return &config.FieldError{Key: path + ".every", Problem: "required", Fix: `use a duration such as "1s"`}
	}
	return nil
}

type stdoutSink struct {
	Password config.Secret `koanf:"password"`
}

func (c *stdoutSink) Validate(connector, path string) error { return nil }

func ExampleLoad() {
	dir, err := os.MkdirTemp("", "shardbridge-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "echo.yaml")
	err = os.WriteFile(path, []byte(`
pool:
  max_pending_bytes: 16MiB
connectors:
  - name: echo
    source:
      echo: {every: 2s}
    sink:
      stdout: {}
`), 0o600)
	if err != nil {
		fmt.Println(err)
		return
	}

	reg := config.Registry{
		Sources: map[string]func() config.PluginConfig{"echo": func() config.PluginConfig { return new(echoSource) }},
		Sinks:   map[string]func() config.PluginConfig{"stdout": func() config.PluginConfig { return new(stdoutSink) }},
	}
	environ := []string{
		"SHARDBRIDGE_POOL__MAX_PENDING_RECORDS=1000",
		"SHARDBRIDGE_CONNECTORS__0__SINK__STDOUT__PASSWORD=hunter2",
	}
	cfg, err := config.Load(reg, []string{path}, environ)
	if err != nil {
		for _, p := range config.Problems(err) {
			fmt.Println(p)
		}
		return
	}
	src := cfg.Connectors[0].Source.Config.(*echoSource)
	sink := cfg.Connectors[0].Sink.Config.(*stdoutSink)
	fmt.Println(cfg.Pool.MaxPendingRecords, cfg.Pool.MaxPendingBytes, cfg.Pool.WaitTimeout)
	fmt.Println(src.Greeting, src.Every)
	fmt.Println(sink.Password, len(sink.Password.Reveal()))

	// A typo is reported with the key, the value and the fix.
	_, err = config.Load(reg, []string{path}, []string{"SHARDBRIDGE_POOL__WAIT_TIMEOUT=30", "SHARDBRIDGE_POOL__MAX_PENDNG_RECORDS=1"})
	var fe *config.FieldError
	fmt.Println(errors.As(err, &fe))
	for _, p := range config.Problems(err) {
		fmt.Println(p)
	}
	// Output:
	// 1000 16MiB 30s
	// hello from echo 2s
	// [redacted] 7
	// true
	// pool.max_pendng_records: unknown key; did you mean max_pending_records?
	// pool.wait_timeout: "30": a number without a unit is ambiguous; use a duration with a unit such as "30s", "1m30s" or "250ms"
}
