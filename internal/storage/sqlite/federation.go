package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"casp3r/internal/storage"
)

// SetFederationRule sets the rule of domain to action, storage.FederationAllow
// or storage.FederationDeny, replacing its previous rule: a domain has at most
// one. Setting the rule a domain already has writes nothing. domain is used as
// given; the caller prepares it (RFC 7622 §3.2).
func (db *DB) SetFederationRule(ctx context.Context, domain, action string) error {
	var typ string
	switch action {
	case storage.FederationAllow:
		typ = storage.EventFederationAllow
	case storage.FederationDeny:
		typ = storage.EventFederationDeny
	default:
		return fmt.Errorf("set federation rule: invalid action %q (want %s or %s)",
			action, storage.FederationAllow, storage.FederationDeny)
	}
	if domain == "" {
		return errors.New("set federation rule: empty domain")
	}
	data, err := json.Marshal(federationData{Domain: domain})
	if err != nil {
		return fmt.Errorf("set federation rule: %w", err)
	}
	err = db.write(ctx, func(t *wtx) error {
		cur, err := t.federationRule(domain)
		if err != nil {
			return err
		}
		if cur == action {
			return nil
		}
		if err := t.appendServer(storage.ServerLogFederation, typ, data); err != nil {
			return err
		}
		return t.viewFederationSet(domain, action)
	})
	if err != nil {
		return fmt.Errorf("set federation rule for %s: %w", domain, err)
	}
	return nil
}

// RemoveFederationRule removes the rule of domain, or returns
// storage.ErrNotFound if it has none.
func (db *DB) RemoveFederationRule(ctx context.Context, domain string) error {
	data, err := json.Marshal(federationData{Domain: domain})
	if err != nil {
		return fmt.Errorf("remove federation rule: %w", err)
	}
	err = db.write(ctx, func(t *wtx) error {
		cur, err := t.federationRule(domain)
		if err != nil {
			return err
		}
		if cur == "" {
			return fmt.Errorf("federation rule for %q: %w", domain, storage.ErrNotFound)
		}
		if err := t.appendServer(storage.ServerLogFederation, storage.EventFederationRemove, data); err != nil {
			return err
		}
		return t.viewFederationRemoved(domain)
	})
	if err != nil {
		return fmt.Errorf("remove federation rule for %s: %w", domain, err)
	}
	return nil
}

// federationRule returns the action of domain's rule, "" if it has none.
func (t *wtx) federationRule(domain string) (string, error) {
	var action string
	err := t.queryRow(sFederationRule, domain).Scan(&action)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up federation rule: %w", err)
	}
	return action, nil
}

// FederationRules returns every federation rule: the action
// (storage.FederationAllow or FederationDeny) by domain.
func (db *DB) FederationRules(ctx context.Context) (map[string]string, error) {
	rules, err := db.stringMap(ctx, `SELECT domain, action FROM federation_domains`)
	if err != nil {
		return nil, fmt.Errorf("load federation rules: %w", err)
	}
	return rules, nil
}

// ServerLog returns the events of the server log named log (such as
// storage.ServerLogFederation) with seq > afterSeq, in order; Account holds
// the log's name. A log with no events is empty.
func (db *DB) ServerLog(ctx context.Context, log string, afterSeq uint64) ([]storage.Event, error) {
	rows, err := db.query(ctx,
		`SELECT seq, type, data, time, prev, hash FROM server_events WHERE log = ? AND seq > ? ORDER BY seq`,
		log, int64(afterSeq))
	if err != nil {
		return nil, fmt.Errorf("read server log %q: %w", log, err)
	}
	defer rows.Close()
	var evs []storage.Event
	for rows.Next() {
		e := storage.Event{Account: log}
		var unixNano int64
		if err := rows.Scan(&e.Seq, &e.Type, &e.Data, &unixNano, &e.Prev, &e.Hash); err != nil {
			return nil, fmt.Errorf("read server log %q: %w", log, err)
		}
		e.Time = timeFromNano(unixNano)
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read server log %q: %w", log, err)
	}
	return evs, nil
}

// VerifyServerLog checks the hash chain of the server log named log: seqs
// run 1..n, each event's hash is storage.HashEvent of its fields and links
// to the previous one. Server logs are not signed. It returns an error
// wrapping storage.ErrCorrupt when a check fails; an empty log verifies.
func (db *DB) VerifyServerLog(ctx context.Context, log string) error {
	evs, err := db.ServerLog(ctx, log, 0)
	if err != nil {
		return fmt.Errorf("verify server log: %w", err)
	}
	var last []byte
	for i, e := range evs {
		switch h := e.ComputeHash(); {
		case e.Seq != uint64(i+1):
			return fmt.Errorf("verify server log %q: event %d: want seq %d: %w", log, e.Seq, i+1, storage.ErrCorrupt)
		case !bytes.Equal(e.Prev, last):
			return fmt.Errorf("verify server log %q: event %d: prev hash does not match: %w", log, e.Seq, storage.ErrCorrupt)
		case !bytes.Equal(h[:], e.Hash):
			return fmt.Errorf("verify server log %q: event %d: hash mismatch: %w", log, e.Seq, storage.ErrCorrupt)
		}
		last = e.Hash
	}
	return nil
}
