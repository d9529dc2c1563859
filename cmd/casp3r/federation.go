package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"casp3r/internal/config"
	"casp3r/internal/jid"
	"casp3r/internal/policy"
	"casp3r/internal/storage"
	"casp3r/internal/storage/sqlite"
)

// cmdFederation manages the federation domain rules kept in storage; the
// mode and the config file's lists are in casp3r.toml. A running server
// reads the stored rules again within a second.
func cmdFederation(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("federation needs a subcommand: allow, deny, remove or list")
	}
	sub := args[0]
	switch sub {
	case "allow", "deny", "remove", "list":
	default:
		return usagef("unknown federation subcommand %q (allow, deny, remove, list)", sub)
	}
	fs := newFlagSet("federation " + sub)
	data := fs.String("data", "", "data folder")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if *data == "" {
		return usagef("federation %s needs --data DIR", sub)
	}
	if sub == "list" && len(pos) > 0 {
		return usagef("federation list takes no arguments")
	}
	if sub != "list" && len(pos) == 0 {
		return usagef("federation %s needs at least one domain", sub)
	}
	cfg, err := config.Load(*data)
	if err != nil {
		return err
	}
	// Check every domain before changing anything.
	domains, err := prepareDomains(pos, cfg.Domain)
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, cfg.Path(cfg.Storage.Database), nil)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	pol := policy.New(db, cfg.Federation, cfg.S2S.Allow, cfg.S2S.Deny)

	switch sub {
	case "list":
		return listFederation(ctx, pol, stdout)
	case "remove":
		rules, err := pol.Rules(ctx)
		if err != nil {
			return err
		}
		for _, d := range domains {
			err := db.RemoveFederationRule(ctx, d)
			if errors.Is(err, storage.ErrNotFound) {
				if i := slices.IndexFunc(rules, func(r policy.Rule) bool { return r.Domain == d }); i >= 0 {
					return fmt.Errorf("%s is %s by the config file (%s): remove it there", d, past(rules[i].Action), config.FileName)
				}
				return fmt.Errorf("%s has no rule", d)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "removed the rule for %s\n", d)
		}
	default: // allow, deny
		for _, d := range domains {
			if err := db.SetFederationRule(ctx, d, sub); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s %s\n", past(sub), d)
		}
		if pol.Mode() == policy.ModePrivate {
			fmt.Fprintf(stdout, "note: federation is %q in %s, so no other server is reached whatever the rules\n",
				policy.ModePrivate, config.FileName)
		}
	}
	return nil
}

// past returns the past participle of a rule's action: "allowed", "denied".
func past(action string) string {
	if action == policy.Deny {
		return "denied"
	}
	return "allowed"
}

// listFederation prints the mode and every rule in force with its origin.
func listFederation(ctx context.Context, pol *policy.Policy, stdout io.Writer) error {
	rules, err := pol.Rules(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mode: %s (%s)\n", pol.Mode(), config.FileName)
	if len(rules) == 0 {
		fmt.Fprintln(stdout, "no domain rules")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, r := range rules {
		origin := r.Origin
		if r.Config != "" {
			origin += fmt.Sprintf(" (overrides %s in the config)", r.Config)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Action, r.Domain, origin)
	}
	return tw.Flush()
}

// prepareDomains prepares each domain (RFC 7622 §3.2) and refuses the
// server's own.
func prepareDomains(args []string, own string) ([]string, error) {
	own, err := jid.PrepareDomain(own)
	if err != nil {
		return nil, fmt.Errorf("configured domain: %w", err)
	}
	out := make([]string, 0, len(args))
	for _, a := range args {
		d, err := jid.PrepareDomain(a)
		if err != nil {
			return nil, fmt.Errorf("%q is not a domain name like example.org: %w", a, err)
		}
		if d == own {
			return nil, fmt.Errorf("%s is this server's own domain", d)
		}
		out = append(out, d)
	}
	return out, nil
}
