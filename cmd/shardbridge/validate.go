package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/shardbridge/shardbridge/runtime/config"
	"github.com/shardbridge/shardbridge/sink/kafka"
	"github.com/shardbridge/shardbridge/source/kinesis"
)

// registry names the source and sink types this binary knows.
func registry() config.Registry {
	return config.Registry{
		Sources: map[string]func() config.PluginConfig{"kinesis": func() config.PluginConfig { return new(kinesis.Config) }},
		Sinks:   map[string]func() config.PluginConfig{"kafka": func() config.PluginConfig { return new(kafka.Config) }},
	}
}

// loadConfig loads the config files or folders in paths, with environment overrides.
func loadConfig(paths []string) (*config.Config, error) {
	if len(paths) == 0 {
		if p := os.Getenv(config.EnvConfig); p != "" {
			paths = []string{p}
		}
	}
	if len(paths) == 0 {
		return nil, errors.New("no config given: pass --config PATH (a YAML or TOML file, or a folder of them), or set " + config.EnvConfig)
	}
	return config.Load(registry(), paths, config.WithoutEnv(os.Environ(), config.EnvConfig))
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths pathsFlag
	fs.Var(&paths, "config", "config file or folder (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(paths)
	if err != nil {
		problems := config.Problems(err)
		if len(problems) == 0 {
			fmt.Fprintf(stderr, "invalid config: %v\n", err)
			return exitError{1}
		}
		fmt.Fprintf(stderr, "invalid config: %d problem(s)\n", len(problems))
		for _, p := range problems {
			fmt.Fprintf(stderr, "  - %v\n", p)
		}
		return exitError{1}
	}
	fmt.Fprintf(stdout, "config is valid: %d connector(s)\n", len(cfg.Connectors))
	for _, c := range cfg.Connectors {
		fmt.Fprintf(stdout, "  %s: %s -> %s\n", c.Name, c.Source.Type, c.Sink.Type)
	}
	return nil
}
