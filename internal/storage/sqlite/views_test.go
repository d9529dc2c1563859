package sqlite

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzXMLData checks that the JSON data of an offline-stored or vcard-set
// event is valid JSON and decodes to the XML, whatever its bytes.
func FuzzXMLData(f *testing.F) {
	for _, s := range []string{
		"", "<message/>", `<message a="b"><body>"\</body></message>`,
		"\x00\x01\x1f\x7f", "\xff\xfe", "<m>\u2028\u2029 ὀδυσσεύς &amp; &lt;</m>", "\t\n\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, xml []byte) {
		data := appendOfflineData(nil, xml)
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
		if !bytes.Equal(got, xml) {
			t.Fatalf("offline data decoded %q, want %q", got, xml)
		}

		data = appendXMLData([]byte("junk"), "vcard", xml)[len("junk"):]
		var v vcardSetData
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatalf("vCard data %q: %v", data, err)
		}
		got = v.VCard64
		if v.VCard != nil {
			got = []byte(*v.VCard)
		}
		if !bytes.Equal(got, xml) {
			t.Fatalf("vCard data decoded %q, want %q", got, xml)
		}
	})
}
