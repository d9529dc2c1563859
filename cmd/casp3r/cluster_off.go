//go:build !cluster

package main

import "casp3r/internal/server"

// clusterSupport reports whether this build can join a cluster. The
// default build leaves the cluster engine (NATS) out: a single node pays
// nothing for it, neither binary size nor memory (docs/design/cluster.md).
const clusterSupport = false

// serverOptions are the options of server.New for this build.
func serverOptions() []server.Option { return nil }
