package xmlstream

import (
	"strings"
	"unicode/utf8"
)

// Byte classes of the scanners, in charClass.
const (
	cName     = 1 << iota // ASCII byte that may appear in a name: letters, digits, _ : . -
	cStart                // ASCII byte that may start a name: letters, _ :
	cNameScan             // continues a name as written (cName or any byte of a multi-byte character)
	cSpace                // XML white space
	cText                 // ends a plain run of character data
	cCDATA                // ends a plain run inside a CDATA section
	cAttr                 // ends a plain run inside an attribute value
	cColon                // ':'
)

// charClass gives the classes of each byte. Plain runs (no class bit of the
// current mode) are copied without looking at each byte again.
var charClass = func() (t [256]uint8) {
	for i := range t {
		c := byte(i)
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
			t[i] |= cName | cStart | cNameScan
		case c == ':':
			t[i] |= cName | cStart | cNameScan | cColon
		case '0' <= c && c <= '9', c == '.', c == '-':
			t[i] |= cName | cNameScan
		case c >= utf8.RuneSelf:
			t[i] |= cNameScan | cText | cCDATA | cAttr
		case c == ' ', c == '\t', c == '\n':
			t[i] |= cSpace
		case c == '\r':
			t[i] |= cSpace | cText | cCDATA | cAttr
		case c < ' ':
			t[i] |= cText | cCDATA | cAttr // not allowed in XML 1.0
		}
		switch c {
		case '<', '&':
			t[i] |= cText | cAttr
		case ']', '>':
			t[i] |= cText | cCDATA
		case '\'', '"':
			t[i] |= cAttr
		}
	}
	return t
}()

// isChar reports whether r may appear in an XML 1.0 document (the Char
// production of §2.2).
func isChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// isNameStartRune reports whether r may start an XML name (NameStartChar,
// XML 1.0 fifth edition §2.3, the edition RFC 6120 refers to).
func isNameStartRune(r rune) bool {
	if r < utf8.RuneSelf {
		return charClass[r]&cStart != 0
	}
	switch {
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	}
	return false
}

// isNameRune reports whether r may appear in an XML name (NameChar).
func isNameRune(r rune) bool {
	if r < utf8.RuneSelf {
		return charClass[r]&cName != 0
	}
	return isNameStartRune(r) || r == 0xB7 || r >= 0x300 && r <= 0x36F || r >= 0x203F && r <= 0x2040
}

// validName reports whether b, which is not empty, is an XML name.
func validName(b []byte) bool {
	r, size := utf8.DecodeRune(b)
	if !isNameStartRune(r) || size == 1 && r == utf8.RuneError {
		return false
	}
	for b = b[size:]; len(b) > 0; b = b[size:] {
		r, size = utf8.DecodeRune(b)
		if !isNameRune(r) || size == 1 && r == utf8.RuneError {
			return false
		}
	}
	return true
}

// startsNCName reports whether b starts with a character that may start
// the local part of a qualified name: a name start character but ':'.
func startsNCName(b []byte) bool {
	if len(b) == 0 || b[0] == ':' {
		return false
	}
	r, size := utf8.DecodeRune(b)
	return isNameStartRune(r) && (r != utf8.RuneError || size > 1)
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if charClass[c]&cSpace == 0 {
			return false
		}
	}
	return true
}

// declParam returns the value of param="..." or param='...' in the content
// of an XML declaration, or "". Like encoding/xml, which the reader replaced,
// it looks for the first "param=" followed by a quote anywhere in s.
func declParam(param, s string) string {
	param += "="
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], param)
		if k < 0 || i+k+len(param) >= len(s) {
			return ""
		}
		i += k + len(param)
		if q := s[i]; q == '\'' || q == '"' {
			j := strings.IndexByte(s[i+1:], q)
			if j < 0 {
				return ""
			}
			return s[i+1 : i+1+j]
		}
		i++
	}
	return ""
}

// firstWord returns the keyword of a directive, such as DOCTYPE.
func firstWord(d []byte) string {
	i := 0
	for i < len(d) && i < 16 && charClass[d[i]]&cSpace == 0 && d[i] != '[' {
		i++
	}
	return strings.ToValidUTF8(string(d[:i]), "?")
}
