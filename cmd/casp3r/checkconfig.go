package main

import (
	"fmt"
	"io"

	"casp3r/internal/config"
)

// cmdCheckConfig loads and validates a data folder's config, naming every
// problem at once.
func cmdCheckConfig(args []string, stdout io.Writer) error {
	fs := newFlagSet("check-config")
	data := fs.String("data", "", "data folder")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *data == "" {
		return usagef("check-config needs --data DIR and nothing else")
	}
	cfg, err := config.Load(*data)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (domain %s)\n", cfg.Path(config.FileName), cfg.Domain)
	return nil
}
