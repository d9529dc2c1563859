//go:build withcluster

package main

import (
	"context"
	"os"

	"casp3r/internal/cluster"
)

// start starts and stops a node, so that the linker keeps everything
// cluster.Start needs.
func start() error {
	n, err := cluster.Start(context.Background(), cluster.Config{Name: "size", Dir: os.TempDir()})
	if err != nil {
		return err
	}
	return n.Shutdown(context.Background())
}
