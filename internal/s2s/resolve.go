package s2s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// target is one address to try for a domain.
type target struct {
	addr      string
	directTLS bool
}

// errNoService is a domain that says, with an SRV target of ".", that it
// has no XMPP service.
var errNoService = errors.New("domain has no xmpp server")

// resolve lists where to reach domain, in order: the admin's static route,
// else DNS SRV records for direct TLS (_xmpps-server, XEP-0368) and
// STARTTLS (_xmpp-server), else the domain itself on port 5269.
func (s *Server) resolve(ctx context.Context, domain string) ([]target, error) {
	if addr, ok := s.route(domain); ok {
		return []target{{addr: addr}}, nil
	}
	var out []target
	none := 0
	for _, svc := range []struct {
		name   string
		direct bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, srvs, err := s.resolver.LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			continue
		}
		for _, r := range srvs {
			if r.Target == "." {
				none++
				continue
			}
			out = append(out, target{addr: net.JoinHostPort(trimDot(r.Target), strconv.Itoa(int(r.Port))), directTLS: svc.direct})
		}
	}
	if len(out) == 0 && none > 0 {
		return nil, fmt.Errorf("resolve %s: %w", domain, errNoService)
	}
	if len(out) == 0 {
		out = append(out, target{addr: net.JoinHostPort(domain, "5269")})
	}
	return out, nil
}

func trimDot(s string) string {
	if len(s) > 0 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}
