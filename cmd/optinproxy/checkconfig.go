package main

import (
	"context"
	"flag"
	"fmt"
)

func init() {
	register("check-config", command{summary: "validate the configuration and print every problem", run: runCheckConfig})
}

func runCheckConfig(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	path := fs.String("config", e.getenv("OPTINPROXY_CONFIG"), "configuration file")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 1 && *path == "":
		*path = pos[0] // check-config FILE reads naturally too
	case len(pos) > 0:
		return usagef("takes at most one argument, the configuration file")
	}
	cfg, err := loadConfig(*path, e.environ)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(e.stdout, "warning:", w)
	}
	name := *path
	if name == "" {
		name = "built-in defaults"
	}
	fmt.Fprintf(e.stdout, "%s: ok\n", name)
	return nil
}
