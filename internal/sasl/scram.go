package sasl

import (
	"bytes"
	"context"
	"errors"
	"unicode/utf8"

	"github.com/xdg-go/scram"
)

// stepSCRAM handles one SCRAM message (RFC 5802 §5). On done the out is the
// server-final-message.
func (n *Negotiation) stepSCRAM(ctx context.Context, in []byte) ([]byte, bool, error) {
	if !validText(in) {
		return nil, false, fail(MalformedRequest, "invalid characters")
	}
	if n.state == stateStart {
		return n.scramFirst(ctx, in)
	}
	out, err := n.conv.Step(string(in))
	if err != nil {
		if out == "" {
			// xdg-go reports parse errors without a SCRAM error value.
			return nil, false, &Failure{Condition: MalformedRequest, err: err}
		}
		return nil, false, &Failure{Condition: NotAuthorized, err: err}
	}
	if !n.conv.Valid() {
		return nil, false, fail(NotAuthorized, "")
	}
	return []byte(out), true, nil
}

// scramFirst handles the client-first-message: it picks the channel binding
// the gs2 header asks for, then lets xdg-go answer with the
// server-first-message.
func (n *Negotiation) scramFirst(ctx context.Context, in []byte) ([]byte, bool, error) {
	flag, cbType, ok := parseGS2Flag(in)
	if !ok {
		return nil, false, fail(MalformedRequest, "invalid gs2 header")
	}
	srv, err := n.hash.NewServer(func(user string) (scram.StoredCredentials, error) {
		return n.scramCredentials(ctx, user)
	})
	if err != nil {
		return nil, false, &Failure{Condition: TemporaryAuthFailure, err: err}
	}
	switch {
	case n.plus:
		if flag != 'p' {
			return nil, false, fail(MalformedRequest, "-PLUS mechanism without channel binding")
		}
		cb, err := channelBinding(cbType, n.cs, n.cert)
		if err != nil {
			return nil, false, &Failure{Condition: NotAuthorized, Text: "unsupported channel binding type", err: err}
		}
		n.conv = srv.NewConversationWithChannelBindingRequired(cb)
	case flag == 'p':
		return nil, false, fail(MalformedRequest, "channel binding requires a -PLUS mechanism")
	case len(n.cbTypes) > 0:
		// We advertised -PLUS: a client that supports channel binding
		// but says we don't ('y') was downgraded; xdg-go rejects that.
		cb, err := channelBinding(n.cbTypes[0], n.cs, n.cert)
		if err != nil {
			return nil, false, &Failure{Condition: TemporaryAuthFailure, err: err}
		}
		n.conv = srv.NewConversationWithChannelBinding(cb)
	default:
		n.conv = srv.NewConversation()
	}
	out, err := n.conv.Step(string(in))
	if err != nil {
		var f *Failure
		switch {
		case errors.As(err, &f):
			return nil, false, f
		case out == scram.ErrServerDoesSupportChannelBinding:
			return nil, false, &Failure{Condition: NotAuthorized, Text: "channel binding downgrade", err: err}
		case out == scram.ErrChannelBindingNotSupported || out == scram.ErrUnsupportedChannelBindingType:
			return nil, false, &Failure{Condition: NotAuthorized, Text: "unsupported channel binding type", err: err}
		}
		return nil, false, &Failure{Condition: MalformedRequest, err: err}
	}
	n.state = stateFinal
	return []byte(out), false, nil
}

// scramCredentials is the xdg-go credential lookup. Unknown users get fake
// keys so that they fail at the proof, exactly like a wrong password.
func (n *Negotiation) scramCredentials(ctx context.Context, user string) (scram.StoredCredentials, error) {
	creds, name, err := n.lookup(ctx, user, n.conv.AuthzID())
	if err != nil {
		return scram.StoredCredentials{}, err
	}
	keys, hashName, size := creds.SHA256, "SHA-256", 32
	if n.mech == ScramSHA1 || n.mech == ScramSHA1Plus {
		keys, hashName, size = creds.SHA1, "SHA-1", 20
	}
	if n.fake || !keys.usable() {
		n.fake = true
		keys = n.s.fakeKeys(hashName, name, size)
	}
	return keys.stored(), nil
}

// parseGS2Flag parses the gs2-cbind-flag that starts a client-first-message
// and checks that the authzid field is terminated. The rest is parsed by
// xdg-go.
func parseGS2Flag(msg []byte) (flag byte, cbType string, ok bool) {
	i := bytes.IndexByte(msg, ',')
	if i < 0 || bytes.IndexByte(msg[i+1:], ',') < 0 {
		return 0, "", false
	}
	f := msg[:i]
	switch {
	case len(f) == 1 && (f[0] == 'n' || f[0] == 'y'):
		return f[0], "", true
	case len(f) > 2 && f[0] == 'p' && f[1] == '=':
		// cb-name = 1*(ALPHA / DIGIT / "." / "-")
		for _, c := range f[2:] {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
				return 0, "", false
			}
		}
		return 'p', string(f[2:]), true
	}
	return 0, "", false
}

// validText reports whether a SCRAM message is UTF-8 without control
// characters (RFC 5802 §7: all attribute values are printable or saslname).
func validText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(b)
}
