package sasl

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/xdg-go/scram"
)

func TestServerEndPointHash(t *testing.T) {
	raw := []byte("certificate bytes")
	s256 := sha256.Sum256(raw)
	s384 := sha512.Sum384(raw)
	s512 := sha512.Sum512(raw)
	tests := []struct {
		alg  x509.SignatureAlgorithm
		want []byte
	}{
		{x509.MD5WithRSA, s256[:]},
		{x509.SHA1WithRSA, s256[:]},
		{x509.ECDSAWithSHA1, s256[:]},
		{x509.SHA256WithRSA, s256[:]},
		{x509.ECDSAWithSHA256, s256[:]},
		{x509.SHA256WithRSAPSS, s256[:]},
		{x509.SHA384WithRSA, s384[:]},
		{x509.ECDSAWithSHA384, s384[:]},
		{x509.SHA384WithRSAPSS, s384[:]},
		{x509.SHA512WithRSA, s512[:]},
		{x509.ECDSAWithSHA512, s512[:]},
		{x509.SHA512WithRSAPSS, s512[:]},
		{x509.PureEd25519, nil},
		{x509.UnknownSignatureAlgorithm, nil},
	}
	for _, tt := range tests {
		got, err := serverEndPointData(&x509.Certificate{Raw: raw, SignatureAlgorithm: tt.alg})
		if (err != nil) != (tt.want == nil) || !bytes.Equal(got, tt.want) {
			t.Errorf("%v: got %x, %v; want %x", tt.alg, got, err, tt.want)
		}
	}
	if _, err := serverEndPointData(nil); err == nil {
		t.Errorf("nil certificate accepted")
	}
}

// TestBindingsMatchClientView checks that the server's binding data equals
// what an xdg-go client computes from its side of the same connection.
func TestBindingsMatchClientView(t *testing.T) {
	cert, leaf := ecdsaCert(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		ss, cs := tlsPair(t, v, cert)
		want, err := scram.NewTLSExporterBinding(cs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := channelBinding(TLSExporter, ss, leaf)
		if err != nil || !got.Matches(want) {
			t.Errorf("TLS %x exporter: got %x, %v; want %x", v, got.Data, err, want.Data)
		}
		want, err = scram.NewTLSServerEndpointBinding(cs)
		if err != nil {
			t.Fatal(err)
		}
		got, err = channelBinding(TLSServerEndPoint, ss, leaf)
		if err != nil || !got.Matches(want) {
			t.Errorf("TLS %x end-point: got %x, %v; want %x", v, got.Data, err, want.Data)
		}
		if _, err := channelBinding("tls-unique", ss, leaf); err == nil {
			t.Errorf("tls-unique accepted")
		}
	}
	if _, err := channelBinding(TLSExporter, nil, leaf); err == nil {
		t.Errorf("binding without TLS accepted")
	}
}
