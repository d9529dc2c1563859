package sasl

import "unicode/utf8"

// NS is the namespace of SASL elements in XMPP (RFC 6120 §6.4).
const NS = "urn:ietf:params:xml:ns:xmpp-sasl"

// AppendMechanisms appends the <mechanisms/> stream feature listing mechs,
// as returned by Server.Mechanisms. Nothing is appended when mechs is empty.
func AppendMechanisms(dst []byte, mechs []string) []byte {
	if len(mechs) == 0 {
		return dst
	}
	dst = append(dst, "<mechanisms xmlns='"+NS+"'>"...)
	for _, m := range mechs {
		dst = append(dst, "<mechanism>"...)
		dst = appendEscaped(dst, m)
		dst = append(dst, "</mechanism>"...)
	}
	return append(dst, "</mechanisms>"...)
}

// AppendXML appends the <failure/> element for f (RFC 6120 §6.4.5). The
// cause returned by Unwrap is not included.
func (f *Failure) AppendXML(dst []byte) []byte {
	cond := f.Condition
	if !validCondition(cond) {
		cond = NotAuthorized
	}
	dst = append(dst, "<failure xmlns='"+NS+"'><"...)
	dst = append(dst, cond...)
	dst = append(dst, "/>"...)
	if f.Text != "" {
		dst = append(dst, "<text xml:lang='en'>"...)
		dst = appendEscaped(dst, f.Text)
		dst = append(dst, "</text>"...)
	}
	return append(dst, "</failure>"...)
}

func validCondition(c string) bool {
	switch c {
	case Aborted, AccountDisabled, CredentialsExpired, EncryptionRequired,
		IncorrectEncoding, InvalidAuthzID, InvalidMechanism, MalformedRequest,
		MechanismTooWeak, NotAuthorized, TemporaryAuthFailure:
		return true
	}
	return false
}

// appendEscaped appends s escaped for XML character data and attribute
// values, dropping characters XML 1.0 does not allow and replacing invalid
// UTF-8.
func appendEscaped(dst []byte, s string) []byte {
	for _, r := range s {
		switch r {
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '&':
			dst = append(dst, "&amp;"...)
		case '\'':
			dst = append(dst, "&apos;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		case '\t', '\n', '\r':
			dst = append(dst, byte(r))
		default:
			if r >= 0x20 && r != 0xFFFE && r != 0xFFFF && (r < 0xD800 || r > 0xDFFF) {
				dst = utf8.AppendRune(dst, r)
			}
		}
	}
	return dst
}
