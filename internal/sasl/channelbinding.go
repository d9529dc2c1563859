package sasl

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"

	"github.com/xdg-go/scram"
)

// Channel binding types (RFC 5929, RFC 9266).
const (
	TLSExporter       = "tls-exporter"
	TLSServerEndPoint = "tls-server-end-point"
)

// NSChannelBinding is the namespace of the XEP-0440 stream feature.
const NSChannelBinding = "urn:xmpp:sasl-cb:0"

// exporterLabel and exporterLen are fixed by RFC 9266 §2.
const (
	exporterLabel = "EXPORTER-Channel-Binding"
	exporterLen   = 32
)

// ChannelBindingTypes returns the channel binding types usable on a
// connection, preferred first: tls-exporter when keying material can be
// exported (TLS 1.3, or TLS 1.2 with extended master secret), and
// tls-server-end-point when serverCert, the leaf certificate this server
// presented on the connection, has a hash defined by RFC 5929 §4.1. cs must
// come from a completed tls.Conn handshake; nil means no TLS and gives none.
// The result is what the XEP-0440 feature advertises.
func ChannelBindingTypes(cs *tls.ConnectionState, serverCert *x509.Certificate) []string {
	if !isTLS(cs) {
		return nil
	}
	var types []string
	if _, err := exporterData(cs); err == nil {
		types = append(types, TLSExporter)
	}
	if _, err := serverEndPointData(serverCert); err == nil {
		types = append(types, TLSServerEndPoint)
	}
	return types
}

// channelBinding returns the binding data of type typ on this connection.
func channelBinding(typ string, cs *tls.ConnectionState, serverCert *x509.Certificate) (scram.ChannelBinding, error) {
	if !isTLS(cs) {
		return scram.ChannelBinding{}, errors.New("no tls")
	}
	var (
		data []byte
		err  error
	)
	switch typ {
	case TLSExporter:
		data, err = exporterData(cs)
	case TLSServerEndPoint:
		data, err = serverEndPointData(serverCert)
	default:
		return scram.ChannelBinding{}, fmt.Errorf("unsupported channel binding type %q", typ)
	}
	if err != nil {
		return scram.ChannelBinding{}, err
	}
	return scram.ChannelBinding{Type: scram.ChannelBindingType(typ), Data: data}, nil
}

// exporterData returns the tls-exporter channel binding (RFC 9266).
func exporterData(cs *tls.ConnectionState) (data []byte, err error) {
	// A ConnectionState not made by a tls.Conn (as in some tests) has no
	// exporter and ExportKeyingMaterial would panic.
	defer func() {
		if recover() != nil {
			data, err = nil, errors.New("tls-exporter: no keying material exporter")
		}
	}()
	data, err = cs.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
	if err != nil {
		return nil, fmt.Errorf("tls-exporter: %w", err)
	}
	return data, nil
}

// serverEndPointData returns the tls-server-end-point channel binding of our
// own certificate (RFC 5929 §4.1): its hash with the hash function of its
// signature algorithm, SHA-256 in place of MD5 and SHA-1.
func serverEndPointData(cert *x509.Certificate) ([]byte, error) {
	if cert == nil || len(cert.Raw) == 0 {
		return nil, errors.New("tls-server-end-point: no server certificate")
	}
	var h hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		h = sha256.New()
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = sha512.New()
	default:
		// Ed25519 and unknown algorithms: undefined by RFC 5929.
		return nil, fmt.Errorf("tls-server-end-point: undefined for signature algorithm %v", cert.SignatureAlgorithm)
	}
	h.Write(cert.Raw)
	return h.Sum(nil), nil
}

// AppendChannelBindingFeature appends the XEP-0440 stream feature listing
// types, as returned by ChannelBindingTypes:
//
//	<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/>…</sasl-channel-binding>
//
// Nothing is appended when types is empty.
func AppendChannelBindingFeature(dst []byte, types []string) []byte {
	if len(types) == 0 {
		return dst
	}
	dst = append(dst, "<sasl-channel-binding xmlns='"+NSChannelBinding+"'>"...)
	for _, t := range types {
		dst = append(dst, "<channel-binding type='"...)
		dst = appendEscaped(dst, t)
		dst = append(dst, "'/>"...)
	}
	return append(dst, "</sasl-channel-binding>"...)
}
