// Package web serves the node's HTTPS endpoints other than the XMPP
// transports themselves: connection discovery (XEP-0156 host-meta in XRD
// and JSON form), and later the web app, invites and uploads.
package web
