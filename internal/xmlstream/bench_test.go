package xmlstream

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"io"
	"testing"
)

// chatMessage is a typical chat message from a client: about 300 bytes.
const chatMessage = "<message from='juliet@example.com/balcony' to='romeo@example.net' type='chat' id='ktx72v49' xml:lang='en'>" +
	"<body>Art thou not Romeo, and a Montague?</body>" +
	"<active xmlns='http://jabber.org/protocol/chatstates'/>" +
	"<request xmlns='urn:xmpp:receipts'/>" +
	"<origin-id xmlns='urn:xmpp:sid:0' id='de1a7f0b-2c5d-4b6e-9d1a-3f2e4c5b6a7d'/>" +
	"</message>"

func BenchmarkNextMessage(b *testing.B) {
	const n = 1000
	var buf bytes.Buffer
	buf.WriteString(clientHeader)
	for range n {
		buf.WriteString(chatMessage)
		buf.WriteByte('\n')
	}
	data := buf.Bytes()
	src := bytes.NewReader(data)
	lim := Limits{MaxStanzaBytes: 1 << 16, MaxDepth: 16, MaxAttrs: 32}
	var r *Reader
	restart := func() {
		src.Reset(data)
		r = NewReader(src, lim)
		if _, err := r.ReadHeader(); err != nil {
			b.Fatal(err)
		}
	}
	restart()
	b.SetBytes(int64(len(chatMessage) + 1))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		e, err := r.Next()
		if err == io.EOF {
			restart()
			e, err = r.Next()
		}
		if err != nil || e == nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNextMessageBufio reads the same stream through a 512-byte
// bufio.Reader, as internal/stream does.
func BenchmarkNextMessageBufio(b *testing.B) {
	const n = 1000
	var buf bytes.Buffer
	buf.WriteString(clientHeader)
	for range n {
		buf.WriteString(chatMessage)
		buf.WriteByte('\n')
	}
	data := buf.Bytes()
	src := bytes.NewReader(data)
	br := bufio.NewReaderSize(src, 512)
	lim := Limits{MaxStanzaBytes: 1 << 16, MaxDepth: 16, MaxAttrs: 32}
	var r *Reader
	restart := func() {
		src.Reset(data)
		br.Reset(src)
		r = NewReader(br, lim)
		if _, err := r.ReadHeader(); err != nil {
			b.Fatal(err)
		}
	}
	restart()
	b.SetBytes(int64(len(chatMessage) + 1))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		e, err := r.Next()
		if err == io.EOF {
			restart()
			e, err = r.Next()
		}
		if err != nil || e == nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFrame(b *testing.B) {
	frame := []byte("<message xmlns='jabber:client'" + chatMessage[len("<message"):])
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for range b.N {
		if _, err := ParseFrame(frame, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendXML(b *testing.B) {
	e, err := ParseFrame([]byte("<message xmlns='jabber:client'"+chatMessage[len("<message"):]), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	buf := AppendXML(nil, e, NSClient)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.Run("reused", func(b *testing.B) {
		for range b.N {
			buf = AppendXML(buf[:0], e, NSClient)
		}
	})
	// As a session queues a stanza: each in a buffer of its own.
	b.Run("fresh", func(b *testing.B) {
		for range b.N {
			buf = AppendXML(nil, e, NSClient)
		}
	})
}

// BenchmarkBaselineToken is for comparison: encoding/xml's own Token loop
// over the same stream, without building elements or checking anything.
func BenchmarkBaselineToken(b *testing.B) {
	const n = 1000
	var buf bytes.Buffer
	buf.WriteString(clientHeader)
	for range n {
		buf.WriteString(chatMessage)
		buf.WriteByte('\n')
	}
	buf.WriteString("</stream:stream>")
	data := buf.Bytes()
	src := bytes.NewReader(data)
	d := xml.NewDecoder(src)
	depth := 0
	b.SetBytes(int64(len(chatMessage) + 1))
	b.ReportAllocs()
	for range b.N {
		for {
			tok, err := d.Token()
			if err == io.EOF {
				src.Reset(data)
				d = xml.NewDecoder(src)
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			switch tok.(type) {
			case xml.StartElement:
				depth++
			case xml.EndElement:
				depth--
			}
			if _, ok := tok.(xml.EndElement); ok && depth == 1 {
				break
			}
		}
	}
}
