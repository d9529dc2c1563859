//go:build cluster

package main

import (
	"casp3r/internal/clusternode"
	"casp3r/internal/server"
)

// clusterSupport reports whether this build can join a cluster.
const clusterSupport = true

// serverOptions are the options of server.New for this build: with cluster
// support, a [cluster] section starts the cluster engine.
func serverOptions() []server.Option {
	return []server.Option{server.WithCluster(clusternode.Start)}
}
