package c2s

import (
	"context"
	"encoding/base64"
	"errors"

	"casp3r/internal/sasl"
	"casp3r/internal/stanza"
	"casp3r/internal/xmlstream"
)

// handleSASL runs one step of SASL negotiation (RFC 6120 §6.4).
func (s *Session) handleSASL(ctx context.Context, el *xmlstream.Element) error {
	if s.authenticated {
		return stanza.StreamErr("policy-violation", "already authenticated")
	}
	if !s.secure && s.srv.cfg.RequireTLS {
		s.saslFailure(&sasl.Failure{Condition: "encryption-required"})
		return nil
	}
	var in []byte
	switch el.Name.Local {
	case "auth":
		s.neg = nil
		var cert = s.srv.cfg.ServerCert
		n, err := s.srv.cfg.SASL.Start(ctx, el.Get("mechanism"), s.t.tlsState(), cert())
		if err != nil {
			return s.authFailed(err)
		}
		s.neg = n
		text := el.Text()
		if text == "" {
			// No initial response: ask for one with an empty challenge.
			s.sendNow(xmlstream.New(nsSASL, "challenge"))
			return nil
		}
		if in, err = decodeSASL(text); err != nil {
			return s.authFailed(err)
		}
	case "response":
		if s.neg == nil {
			return s.authFailed(&sasl.Failure{Condition: "malformed-request", Text: "no authentication in progress"})
		}
		var err error
		if in, err = decodeSASL(el.Text()); err != nil {
			return s.authFailed(err)
		}
	case "abort":
		s.neg = nil
		s.saslFailure(&sasl.Failure{Condition: "aborted"})
		return nil
	default:
		return stanza.StreamErr("unsupported-stanza-type", "")
	}
	out, done, err := s.neg.Step(ctx, in)
	if err != nil {
		return s.authFailed(err)
	}
	if !done {
		s.sendNow(xmlstream.New(nsSASL, "challenge").SetText(base64.StdEncoding.EncodeToString(out)))
		return nil
	}
	s.username = s.neg.Username()
	s.neg = nil
	s.authenticated = true
	success := xmlstream.New(nsSASL, "success")
	if len(out) > 0 {
		success.SetText(base64.StdEncoding.EncodeToString(out))
	}
	s.sendNow(success)
	s.logger().Info("authenticated", "user", s.username)
	s.t.restart()
	return s.openStream(askNone)
}

// decodeSASL decodes the base64 text of auth and response; "=" is the empty
// response.
func decodeSASL(text string) ([]byte, error) {
	if text == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, &sasl.Failure{Condition: "incorrect-encoding"}
	}
	return b, nil
}

// authFailed answers a failed step with <failure/> and ends the stream after
// too many failures (RFC 6120 §6.4.5).
func (s *Session) authFailed(err error) error {
	s.neg = nil
	var f *sasl.Failure
	if !errors.As(err, &f) {
		s.logger().Warn("sasl", "err", err)
		f = &sasl.Failure{Condition: "temporary-auth-failure"}
	}
	s.saslFailure(f)
	s.authFails++
	if s.authFails >= maxAuthFail {
		return stanza.StreamErr("policy-violation", "too many failed authentication attempts")
	}
	return nil
}

func (s *Session) saslFailure(f *sasl.Failure) {
	el := xmlstream.New(nsSASL, "failure").Append(xmlstream.New(nsSASL, f.Condition))
	if f.Text != "" {
		el.Append(xmlstream.New(nsSASL, "text").SetText(f.Text))
	}
	s.sendNow(el)
}
