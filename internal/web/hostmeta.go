package web

import (
	"encoding/json"
	"net/http"
	"strings"
)

const relWebSocket = "urn:xmpp:alt-connections:websocket"

// HostMeta serves /.well-known/host-meta and /.well-known/host-meta.json
// (XEP-0156), pointing browsers at the WebSocket endpoint. wsURL returns the
// endpoint for a request, so that it names the host and port the client
// used.
type HostMeta struct {
	WebSocketURL func(r *http.Request) string
}

// Register mounts the two documents on mux.
func (h HostMeta) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/host-meta", h.xrd)
	mux.HandleFunc("GET /.well-known/host-meta.json", h.json)
}

func (h HostMeta) xrd(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	var b strings.Builder
	b.WriteString("<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n")
	b.WriteString("  <Link rel='" + relWebSocket + "' href='")
	b.WriteString(escapeAttr(h.WebSocketURL(r)))
	b.WriteString("'/>\n</XRD>\n")
	_, _ = w.Write([]byte(b.String()))
}

func (h HostMeta) json(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	doc := map[string]any{"links": []map[string]string{{"rel": relWebSocket, "href": h.WebSocketURL(r)}}}
	_ = json.NewEncoder(w).Encode(doc)
}

func escapeAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&apos;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
