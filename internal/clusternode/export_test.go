package clusternode

import (
	"casp3r/internal/cluster"
	"casp3r/internal/server"
)

// Engine returns the NATS node under a node that Start returned.
func Engine(c server.Cluster) *cluster.Node { return c.(*Node).c }
