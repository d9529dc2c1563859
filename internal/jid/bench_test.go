package jid

import "testing"

func BenchmarkParse(b *testing.B) {
	benchmarks := []struct{ name, in string }{
		{"domain", "example.com"},
		{"bare", "juliet@example.com"},
		{"full", "juliet@example.com/balcony-4f2a"},
		{"uppercase", "Juliet@Example.com/Balcony"},
		{"trailing-dot", "juliet@example.com./balcony"},
		{"unicode", "πλάτων@example.com/ἀπολογία"},
		{"idna", "juliet@xn--caf-dma.example/balcony"},
		{"ipv6", "juliet@[::1]/balcony"},
		{"invalid", "juliet@exa mple.com/balcony"},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bm.in); err != nil && bm.name != "invalid" {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkString(b *testing.B) {
	j := MustParse("juliet@example.com/balcony")
	b.ReportAllocs()
	for b.Loop() {
		_ = j.Bare().String()
	}
}
