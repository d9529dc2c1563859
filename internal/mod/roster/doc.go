// Package roster implements RFC 6121: the roster (§2, with XEP-0237
// versioning), presence subscriptions (§3, the full state machine of
// Appendix A including pending-in, pending-out and pre-approval, §3.4), and
// presence exchange (§4: initial presence broadcast, probes, unavailable
// broadcast and directed presence).
//
// # Wiring
//
// One [Module] serves one router: it is the router's PresenceHandler and
// answers jabber:iq:roster queries:
//
//	m := roster.New(r, db, offlineModule)
//	r.SetPresenceHandler(m)
//	r.HandleIQ(roster.NS, "query", m)
//
// # Stanzas are read-only
//
// Presence broadcast sends one stanza to many recipients. To keep that
// cheap, the copies the module makes share their child elements with the
// original and differ only in their attributes: a stanza handed to
// Router.Route or Session.Send must not be modified in place (Copy it
// first).
//
// # Roster items the user never added
//
// A subscription request from an entity that is not in the user's roster is
// kept durably as a hidden item (storage.RosterItem.Hidden): it is not
// shown in a roster get nor pushed, and it is delivered again each time a
// resource of the user sends initial presence, until the user answers it.
package roster
