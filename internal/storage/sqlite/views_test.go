package sqlite

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzOfflineData checks that the JSON data of an offline-stored event is
// valid JSON and decodes to the stanza, whatever its bytes.
func FuzzOfflineData(f *testing.F) {
	for _, s := range []string{
		"", "<message/>", `<message a="b"><body>"\</body></message>`,
		"\x00\x01\x1f\x7f", "\xff\xfe", "<m>\u2028\u2029 ὀδυσσεύς &amp; &lt;</m>", "\t\n\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stanza []byte) {
		data, err := appendOfflineData(nil, stanza)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(data) {
			t.Fatalf("not JSON: %q", data)
		}
		var d offlineStoredData
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		got := d.Stanza64
		if d.Stanza != nil {
			got = []byte(*d.Stanza)
		}
		if !bytes.Equal(got, stanza) {
			t.Fatalf("decoded %q, want %q", got, stanza)
		}
	})
}
