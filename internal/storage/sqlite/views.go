package sqlite

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"casp3r/internal/storage"
)

// Event payloads (the JSON data of each event type).
type (
	accountCreatedData struct {
		Key         []byte          `json:"key"` // Ed25519 public key
		Credentials json.RawMessage `json:"credentials"`
	}
	credentialsSetData struct {
		Credentials json.RawMessage `json:"credentials"`
	}
	rosterRemovedData struct {
		JID string `json:"jid"`
	}
	offlineStoredData struct {
		Stanza   *string `json:"stanza,omitempty"`   // when the stanza is valid UTF-8
		Stanza64 []byte  `json:"stanza64,omitempty"` // otherwise, base64
	}
	offlineDeletedData struct {
		IDs []int64 `json:"ids"`
	}
	roleSetData struct {
		Role string `json:"role"`
	}
	vcardSetData struct {
		VCard   *string `json:"vcard,omitempty"`   // when the XML is valid UTF-8
		VCard64 []byte  `json:"vcard64,omitempty"` // otherwise, base64
	}
	federationData struct {
		Domain string `json:"domain"`
	}
)

// The view appliers below are the only code that writes the views. The
// write path calls them right after appending the event; RebuildViews calls
// them from the decoded log, so that the views are a function of the logs.

func (t *wtx) viewAccountCreated(account string, creds []byte, unixNano int64) error {
	if _, err := t.exec(sDeleteAccountRoster, account); err != nil {
		return fmt.Errorf("clear roster: %w", err)
	}
	if _, err := t.exec(sDeleteAccountOffline, account); err != nil {
		return fmt.Errorf("clear offline messages: %w", err)
	}
	if _, err := t.exec(sDeleteAccountVCard, account); err != nil {
		return fmt.Errorf("clear vCard: %w", err)
	}
	if _, err := t.exec(sUpsertAccount, account, creds, unixNano); err != nil {
		return fmt.Errorf("store account: %w", err)
	}
	return nil
}

func (t *wtx) viewCredentialsSet(account string, creds []byte) error {
	if _, err := t.exec(sSetCredentials, creds, account); err != nil {
		return fmt.Errorf("store credentials: %w", err)
	}
	return nil
}

func (t *wtx) viewAccountDeleted(account string) error {
	for _, i := range [...]int{sDeleteAccountRoster, sDeleteAccountOffline, sDeleteAccountVCard, sDeleteAccount} {
		if _, err := t.exec(i, account); err != nil {
			return fmt.Errorf("delete account views: %w", err)
		}
	}
	return nil
}

func (t *wtx) viewRosterSet(account string, it *storage.RosterItem, seq uint64) error {
	var groups any // NULL when there are none
	if len(it.Groups) > 0 {
		groups = strings.Join(it.Groups, groupSep)
	}
	if _, err := t.exec(sUpsertRoster, account, it.JID, it.Name, groups, it.Subscription,
		it.Ask, it.PendingIn, it.Approved, it.Hidden); err != nil {
		return fmt.Errorf("store roster item: %w", err)
	}
	return t.setRosterVer(account, seq)
}

func (t *wtx) viewRosterRemoved(account, jid string, seq uint64) error {
	if _, err := t.exec(sDeleteRoster, account, jid); err != nil {
		return fmt.Errorf("delete roster item: %w", err)
	}
	return t.setRosterVer(account, seq)
}

func (t *wtx) setRosterVer(account string, seq uint64) error {
	if _, err := t.exec(sSetRosterVer, int64(seq), account); err != nil {
		return fmt.Errorf("store roster version: %w", err)
	}
	return nil
}

func (t *wtx) viewOfflineStored(account string, id uint64, stanza []byte, unixNano int64) error {
	if _, err := t.exec(sInsertOffline, account, int64(id), stanza, unixNano); err != nil {
		return fmt.Errorf("store offline message: %w", err)
	}
	return nil
}

func (t *wtx) viewOfflineDeleted(account string, ids []int64) error {
	for _, id := range ids {
		if _, err := t.exec(sDeleteOffline, account, id); err != nil {
			return fmt.Errorf("delete offline message: %w", err)
		}
	}
	return nil
}

func (t *wtx) viewRoleSet(account, role string) error {
	if _, err := t.exec(sSetRole, role, account); err != nil {
		return fmt.Errorf("store role: %w", err)
	}
	return nil
}

func (t *wtx) viewVCardSet(account string, xml []byte) error {
	if _, err := t.exec(sUpsertVCard, account, xml); err != nil {
		return fmt.Errorf("store vCard: %w", err)
	}
	return nil
}

func (t *wtx) viewFederationSet(domain, action string) error {
	if _, err := t.exec(sUpsertFederation, domain, action); err != nil {
		return fmt.Errorf("store federation rule: %w", err)
	}
	return nil
}

func (t *wtx) viewFederationRemoved(domain string) error {
	if _, err := t.exec(sDeleteFederation, domain); err != nil {
		return fmt.Errorf("delete federation rule: %w", err)
	}
	return nil
}

// apply applies one event of the log to the views. Events of unknown types
// are skipped, so that an older program can rebuild what it knows.
func (t *wtx) apply(e *storage.Event) error {
	var err error
	switch e.Type {
	case storage.EventAccountCreated:
		var d accountCreatedData
		if err = json.Unmarshal(e.Data, &d); err == nil {
			err = t.viewAccountCreated(e.Account, d.Credentials, e.Time.UnixNano())
		}
	case storage.EventCredentialsSet:
		var d credentialsSetData
		if err = json.Unmarshal(e.Data, &d); err == nil {
			err = t.viewCredentialsSet(e.Account, d.Credentials)
		}
	case storage.EventAccountDeleted:
		err = t.viewAccountDeleted(e.Account)
	case storage.EventRosterSet:
		var it storage.RosterItem
		if err = json.Unmarshal(e.Data, &it); err == nil {
			err = t.viewRosterSet(e.Account, &it, e.Seq)
		}
	case storage.EventRosterRemoved:
		var d rosterRemovedData
		if err = json.Unmarshal(e.Data, &d); err == nil {
			err = t.viewRosterRemoved(e.Account, d.JID, e.Seq)
		}
	case storage.EventOfflineStored:
		var d offlineStoredData
		if err = json.Unmarshal(e.Data, &d); err == nil {
			stanza := d.Stanza64
			if d.Stanza != nil {
				stanza = []byte(*d.Stanza)
			}
			err = t.viewOfflineStored(e.Account, e.Seq, stanza, e.Time.UnixNano())
		}
	case storage.EventOfflineDeleted:
		var d offlineDeletedData
		if err = json.Unmarshal(e.Data, &d); err == nil {
			err = t.viewOfflineDeleted(e.Account, d.IDs)
		}
	case storage.EventRoleSet:
		var d roleSetData
		if err = json.Unmarshal(e.Data, &d); err == nil {
			err = t.viewRoleSet(e.Account, d.Role)
		}
	case storage.EventVCardSet:
		var d vcardSetData
		if err = json.Unmarshal(e.Data, &d); err == nil {
			xml := d.VCard64
			if d.VCard != nil {
				xml = []byte(*d.VCard)
			}
			err = t.viewVCardSet(e.Account, xml)
		}
	}
	if err != nil {
		return fmt.Errorf("apply %s event %d of %q: %w", e.Type, e.Seq, e.Account, err)
	}
	return nil
}

// applyServer applies one event of a server log (e.Account is the log's
// name) to the views. Unknown types are skipped, as in apply.
func (t *wtx) applyServer(e *storage.Event) error {
	var err error
	switch e.Type {
	case storage.EventFederationAllow, storage.EventFederationDeny:
		var d federationData
		if err = json.Unmarshal(e.Data, &d); err == nil {
			action := storage.FederationAllow
			if e.Type == storage.EventFederationDeny {
				action = storage.FederationDeny
			}
			err = t.viewFederationSet(d.Domain, action)
		}
	case storage.EventFederationRemove:
		var d federationData
		if err = json.Unmarshal(e.Data, &d); err == nil {
			err = t.viewFederationRemoved(d.Domain)
		}
	}
	if err != nil {
		return fmt.Errorf("apply %s event %d of server log %q: %w", e.Type, e.Seq, e.Account, err)
	}
	return nil
}

// appendOfflineData appends the JSON data of an offline-stored event to dst:
// the stanza as a JSON string when it is valid UTF-8 (escaping only what JSON
// requires, so XML stays readable and compact), else as base64.
func appendOfflineData(dst, stanza []byte) []byte {
	return appendXMLData(dst, "stanza", stanza)
}

// appendXMLData appends {"key": xml} to dst, with xml as a JSON string when
// it is valid UTF-8, else {"key64": base64 of xml}. key needs no escaping.
func appendXMLData(dst []byte, key string, xml []byte) []byte {
	dst = append(dst, `{"`...)
	dst = append(dst, key...)
	if !utf8.Valid(xml) {
		dst = append(dst, `64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, xml)
		return append(dst, `"}`...)
	}
	dst = append(dst, `":"`...)
	const hex = "0123456789abcdef"
	for _, c := range xml {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, `"}`...)
}

// replayServerLogs applies every server log to the views.
func (t *wtx) replayServerLogs() error {
	rows, err := t.tx.QueryContext(t.ctx,
		`SELECT log, seq, type, data, time FROM server_events ORDER BY log, seq`)
	if err != nil {
		return fmt.Errorf("read server logs: %w", err)
	}
	defer rows.Close()
	var e storage.Event
	for rows.Next() {
		var unixNano int64
		if err := rows.Scan(&e.Account, &e.Seq, &e.Type, &e.Data, &unixNano); err != nil {
			return fmt.Errorf("read server logs: %w", err)
		}
		e.Time = timeFromNano(unixNano)
		if err := t.applyServer(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read server logs: %w", err)
	}
	return nil
}

// RebuildViews recomputes every view from the logs (the accounts' and the
// server's), in one transaction.
func (db *DB) RebuildViews(ctx context.Context) error {
	err := db.write(ctx, func(t *wtx) error {
		for _, q := range [...]string{`DELETE FROM accounts`, `DELETE FROM roster`, `DELETE FROM offline`,
			`DELETE FROM vcards`, `DELETE FROM federation_domains`} {
			if _, err := t.tx.ExecContext(t.ctx, q); err != nil {
				return fmt.Errorf("clear views: %w", err)
			}
		}
		rows, err := t.tx.QueryContext(t.ctx,
			`SELECT account, seq, type, data, time FROM events ORDER BY account, seq`)
		if err != nil {
			return fmt.Errorf("read logs: %w", err)
		}
		defer rows.Close()
		var e storage.Event
		for rows.Next() {
			var unixNano int64
			if err := rows.Scan(&e.Account, &e.Seq, &e.Type, &e.Data, &unixNano); err != nil {
				return fmt.Errorf("read logs: %w", err)
			}
			e.Time = timeFromNano(unixNano)
			if err := t.apply(&e); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read logs: %w", err)
		}
		rows.Close()
		return t.replayServerLogs()
	})
	if err != nil {
		return fmt.Errorf("rebuild views: %w", err)
	}
	return nil
}
