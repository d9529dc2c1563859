package xmlstream

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSlowCorpus(t *testing.T) {
	dir := os.Getenv("CORPUS")
	if dir == "" {
		t.Skip()
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines := strings.Split(string(b), "\n")
		s := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
		data, err := strconv.Unquote(s)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ParseFrame([]byte(data), Limits{MaxStanzaBytes: 1 << 14, MaxDepth: 32, MaxAttrs: 32})
		r := NewReader(strings.NewReader(clientHeader+data), Limits{MaxStanzaBytes: 1 << 14, MaxDepth: 32, MaxAttrs: 32})
		r.ReadHeader()
		for range 100 {
			if _, err := r.Next(); err != nil {
				break
			}
		}
		if el := time.Since(start); el > 20*time.Millisecond {
			t.Logf("%s: %v len %d", filepath.Base(f), el, len(data))
		}
	}
}
