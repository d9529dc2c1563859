//go:build integration

// Package peers runs real Prosody and ejabberd servers on loopback addresses
// as federation peers for CASP3R's interop tests: server-to-server streams
// (RFC 6120 §13.7, §6 SASL EXTERNAL with PKIX certificates, RFC 6125) and
// Server Dialback (XEP-0220).
//
// Each peer is a child process in its own process group with a private data
// directory under t.TempDir(), a generated configuration, accounts created
// at start (password "pw"), and its log kept for assertions. Everything
// binds to one 127.0.0.x address; no DNS query leaves the machine: domains
// resolve through a private hosts file (Hosts) and the only nameserver the
// peers know is 127.0.0.1:53, where nothing answers. Use .test domains, so
// Prosody's resolver answers SRV queries with NXDOMAIN at once (RFC 6761).
//
// Certificates come from a throwaway CA (NewCA). Without one, each peer has
// a self-signed certificate and federation falls back to dialback.
//
// ejabberd runs in a private mount namespace, to give it the hosts file
// (see StartEjabberd): that needs root.
//
// A test whose server is not installed is skipped, unless
// CASP3R_REQUIRE_INTEROP=1, which turns the skip into a failure. Debian
// packages: prosody, lua-unbound, ejabberd, python3-slixmpp (for Client).
//
// Run the self-test with
//
//	go test -tags integration -count=1 ./test/peers/
package peers
