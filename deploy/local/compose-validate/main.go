// Command compose-validate loads and validates a compose project exactly as `docker compose config` does
// (compose-go: schema validation, interpolation, YAML anchors and merges, normalisation, consistency checks
// such as depends_on targets and undefined volumes), with no Docker engine. The development machines have no
// engine and no compose plugin; this is what the unit tests run.
//
//	compose-validate -f deploy/docker-compose.yml --env-file deploy/compose/env.example [--profile demo] [--json]
//
// Exit 0 and nothing printed when valid (like `config -q`); --json prints the resolved project for tests to
// inspect. The OS environment is ignored unless --os-env is given, so a developer's shell cannot change the
// verdict.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var files, envFiles, profiles list
	flag.Var(&files, "f", "compose file (repeatable)")
	flag.Var(&envFiles, "env-file", "env file used for interpolation, as with docker compose --env-file (repeatable)")
	flag.Var(&profiles, "profile", "profile to enable (repeatable)")
	asJSON := flag.Bool("json", false, "print the resolved project as JSON")
	osEnv := flag.Bool("os-env", false, "also interpolate from the OS environment (docker compose does)")
	flag.Parse()
	if len(files) == 0 {
		fmt.Fprintln(os.Stderr, "compose-validate: give at least one -f FILE")
		os.Exit(2)
	}

	opts := []cli.ProjectOptionsFn{cli.WithEnvFiles(envFiles...), cli.WithDotEnv, cli.WithProfiles(profiles),
		cli.WithConsistency(true), cli.WithResolvedPaths(true)}
	if *osEnv {
		opts = append([]cli.ProjectOptionsFn{cli.WithOsEnv}, opts...)
	}
	options, err := cli.NewProjectOptions(files, opts...)
	if err == nil {
		var out []byte
		project, lerr := options.LoadProject(context.Background())
		err = lerr
		if err == nil && *asJSON {
			if out, err = project.MarshalJSON(); err == nil {
				fmt.Println(string(out))
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "compose-validate: %v\n", err)
		os.Exit(1)
	}
}
