// Command casp3r runs and administers a CASP3R XMPP server.
//
//	casp3r init  --data DIR --domain DOMAIN [--listen IP] [--force]
//	casp3r serve --data DIR
//	casp3r check-config --data DIR
//	casp3r user add|del|passwd|role|list --data DIR [--password PW] [--role ROLE] [JID] [ROLE]
//	casp3r federation allow|deny|remove|list --data DIR [DOMAIN...]
//	casp3r version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// usageError is a mistake in the command line; main prints it with a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

const usage = `casp3r: a self-hosted XMPP server

Usage:
  casp3r init   --data DIR --domain DOMAIN [--listen IP] [--force]
                                      create a data folder: config, TLS certificate, database
  casp3r serve  --data DIR            run the server until SIGINT or SIGTERM
  casp3r check-config --data DIR      check the config file and name every problem
  casp3r user add    --data DIR [--password PW] [--role ROLE] JID
                                      create an account (role: member unless given)
  casp3r user passwd --data DIR [--password PW] JID   change a password
  casp3r user role   --data DIR JID ROLE              set a role: admin, member or limited
  casp3r user del    --data DIR JID                   delete an account
  casp3r user list   --data DIR                       list accounts and their roles
  casp3r federation allow|deny --data DIR DOMAIN...   allow or deny other servers' domains
  casp3r federation remove --data DIR DOMAIN...       remove the rules of domains
  casp3r federation list   --data DIR                 show the federation mode and rules
  casp3r cluster status --data DIR [--json]          the cluster's nodes, users, replication lag
  casp3r cluster token  --data DIR                    print the token other nodes join with
  casp3r cluster digest --data DIR                    fingerprint of this node's data (equal = in sync)
  casp3r version                      print the version

Cluster (several nodes serving one domain; needs a build with -tags cluster):
  casp3r init --data DIR --domain DOMAIN --listen IP --cluster-name NAME --cluster-peers HOST:PORT,...
                                      first node of a new cluster (prints the join token)
  casp3r init --data DIR --listen IP --join HOST:PORT --token TOKEN --cluster-name NAME
                                      a node joining it
  casp3r init ... --cluster-leaf-listen HOST:PORT
                                      (full node) where leaf nodes connect
  casp3r init --data DIR --listen IP --leaf --join HOST:PORT --token TOKEN --cluster-name NAME
                                      a leaf node: serves clients, holds no vote
                                      (--join names a full node's leaf address)

Without --password, the password is read from the terminal (or one line of stdin).
Limited accounts cannot reach other servers nor make invites. A domain rule also
covers its subdomains, unless they have one of their own; the modes are set in
casp3r.toml. A running server applies role and federation changes within a second.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "init":
		err = cmdInit(args[1:], stdin, stdout)
	case "serve":
		err = cmdServe(args[1:], stderr)
	case "check-config":
		err = cmdCheckConfig(args[1:], stdout)
	case "user":
		err = cmdUser(args[1:], stdin, stdout)
	case "federation":
		err = cmdFederation(args[1:], stdout)
	case "cluster":
		err = cmdCluster(args[1:], stdout)
	case "version", "--version", "-v":
		err = cmdVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usagef("unknown command %q", args[0])
	}
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "casp3r: %v\n\n", err)
		}
		fmt.Fprint(stderr, usage)
		return 2
	}
	fmt.Fprintf(stderr, "casp3r: %v\n", err)
	return 1
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("user add alice@example.org --password x").
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
