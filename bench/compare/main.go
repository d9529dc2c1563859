// Command compare prints the table of bench/compare.sh: what the load tool
// (bench/load) measured against Prosody, ejabberd and CASP3R side by side,
// in Markdown, with CASP3R's ratios against its performance targets.
//
//	go run ./bench/compare -dir DIR [-casp3r NAME] [-prosody NAME] [-ejabberd NAME] [-rate R]
//
// DIR holds the load tool's JSON summaries (-json), four per server:
// SERVER-idle.json (the idle scenario: memory and logins), SERVER-chat.json
// (chat with one message in flight per sender), SERVER-paced.json (chat
// at -rate messages/s) and SERVER-login.json (a login storm with -warm),
// where SERVER is casp3r, prosody or ejabberd. A server or run without its
// file shows "–".
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// summary is the part of the load tool's JSON summary the table uses.
type summary struct {
	Logins      int     `json:"logins"`
	LoginFailed int     `json:"login_failures"`
	LoginsPerS  float64 `json:"logins_per_second"`
	LoginCPUms  float64 `json:"server_cpu_ms_per_login"`
	Dropped     int64   `json:"connections_dropped"`
	Sent        int64   `json:"messages_sent"`
	Received    int64   `json:"messages_received"`
	Lost        int64   `json:"messages_lost"`
	Bounced     int64   `json:"messages_bounced"`
	MsgsPerS    float64 `json:"messages_per_second"`
	Latency     struct {
		N   int     `json:"n"`
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"latency"`
	MsgCPUus       float64 `json:"server_cpu_us_per_message"`
	RSSIdleKB      int64   `json:"rss_idle_kb"`
	RSSPerClientKB float64 `json:"rss_per_client_kb"`
}

// server is what was measured on one server; a nil run did not happen.
type server struct {
	name              string // column title, e.g. "Prosody 0.12.3"
	short             string // in ratios, e.g. "Prosody"
	idle, chat, paced *summary
	login             *summary // the login storm (-warm)
}

// runsPerServer is how many runs measure each server.
const runsPerServer = 4

func (s *server) runs() []*summary {
	var out []*summary
	for _, r := range []*summary{s.idle, s.chat, s.paced, s.login} {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

// value is one measured figure; ok is false where it was not measured.
// below marks an upper bound: server CPU under one tick of the clock.
type value struct {
	v     float64
	ok    bool
	below bool
}

// tick is the resolution of the CPU time in /proc/PID/stat (USER_HZ).
const tick = 10.0 // ms

// metric is one row: how to get the figure from a server and print it.
type metric struct {
	name   string
	get    func(*server) value
	format func(float64) string
	// A target row compares CASP3R with ref: want CASP3R ≤ factor×ref
	// (atMost) or ≥ factor×ref. Other rows (ref == "") show CASP3R's
	// ratio to both others.
	ref    string // "prosody" or "ejabberd"
	factor float64
	atMost bool
	target string // the target as written, e.g. "≤ 0.6× Prosody"
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	dir := fs.String("dir", "", "folder of the load tool's JSON summaries (required)")
	names := map[string]*string{
		"casp3r":   fs.String("casp3r", "CASP3R", "column title of CASP3R"),
		"prosody":  fs.String("prosody", "Prosody", "column title of Prosody"),
		"ejabberd": fs.String("ejabberd", "ejabberd", "column title of ejabberd"),
	}
	rate := fs.Float64("rate", 1000, "offered messages/s of the paced run, for the row title")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return errors.New("usage: compare -dir DIR [-casp3r NAME] [-prosody NAME] [-ejabberd NAME] [-rate R]")
	}
	short := map[string]string{"casp3r": "CASP3R", "prosody": "Prosody", "ejabberd": "ejabberd"}
	servers := map[string]*server{}
	for _, key := range []string{"prosody", "ejabberd", "casp3r"} {
		s := &server{name: *names[key], short: short[key]}
		for _, r := range []struct {
			run string
			dst **summary
		}{{"idle", &s.idle}, {"chat", &s.chat}, {"paced", &s.paced}, {"login", &s.login}} {
			sum, err := readSummary(filepath.Join(*dir, key+"-"+r.run+".json"))
			if err != nil {
				return err
			}
			*r.dst = sum
		}
		servers[key] = s
	}
	writeTable(w, servers, metrics(*rate))
	return nil
}

// readSummary reads one JSON summary; a missing file is a nil summary.
func readSummary(path string) (*summary, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil // the load tool died before printing
	}
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

func metrics(rate float64) []metric {
	rateName := formatCount(rate)
	return []metric{
		{
			name: "idle RSS", format: formatMB, ref: "prosody", factor: 0.6, atMost: true, target: "≤ 0.6× Prosody",
			get: func(s *server) value {
				if s.idle == nil || s.idle.RSSIdleKB == 0 {
					return value{}
				}
				return value{float64(s.idle.RSSIdleKB), true, false}
			},
		},
		{
			name: "RSS per connected client", format: formatKB, ref: "prosody", factor: 1.0 / 3, atMost: true, target: "≤ ⅓ Prosody",
			get: func(s *server) value {
				if s.idle == nil || s.idle.RSSPerClientKB == 0 {
					return value{}
				}
				return value{s.idle.RSSPerClientKB, true, false}
			},
		},
		{
			name: "logins/s (the login run; without it, the median of the other runs' login phases)", format: formatCount, ref: "ejabberd", factor: 1.5, target: "≥ 1.5× ejabberd",
			get: func(s *server) value {
				if s.login != nil && s.login.Logins > 0 {
					return value{s.login.LoginsPerS, true, false}
				}
				var v []float64
				for _, r := range s.runs() {
					if r.Logins > 0 {
						v = append(v, r.LoginsPerS)
					}
				}
				return median(v)
			},
		},
		{
			name: "messages/s, one in flight per sender", format: formatCount, ref: "ejabberd", factor: 2.5, target: "≥ 2.5× ejabberd",
			get: func(s *server) value {
				if s.chat == nil || s.chat.Received == 0 {
					return value{}
				}
				return value{s.chat.MsgsPerS, true, false}
			},
		},
		{
			name: "latency p99 at " + rateName + " msg/s offered", format: formatMs, ref: "ejabberd", factor: 1.0 / 3, atMost: true, target: "≤ ⅓ ejabberd",
			get: func(s *server) value {
				if s.paced == nil || s.paced.Latency.N == 0 {
					return value{}
				}
				return value{s.paced.Latency.P99, true, false}
			},
		},
		{
			name: "latency p50 at " + rateName + " msg/s offered", format: formatMs,
			get: func(s *server) value {
				if s.paced == nil || s.paced.Latency.N == 0 {
					return value{}
				}
				return value{s.paced.Latency.P50, true, false}
			},
		},
		{
			name: "server CPU per login (median)", format: formatMs,
			get: func(s *server) value {
				var v []float64
				logins := 0
				for _, r := range s.runs() {
					if r.LoginCPUms > 0 {
						v = append(v, r.LoginCPUms)
					}
					logins = max(logins, r.Logins)
				}
				if len(v) == 0 && logins > 0 { // too few logins to use a tick
					return value{tick / float64(logins), true, true}
				}
				return median(v)
			},
		},
		{
			name: "server CPU per message, one in flight", format: formatUs,
			get: func(s *server) value {
				switch {
				case s.chat == nil || s.chat.Received == 0:
					return value{}
				case s.chat.MsgCPUus == 0: // too few messages to use a tick
					return value{tick * 1e3 / float64(s.chat.Received), true, true}
				}
				return value{s.chat.MsgCPUus, true, false}
			},
		},
	}
}

func writeTable(w io.Writer, servers map[string]*server, rows []metric) {
	p, e, c := servers["prosody"], servers["ejabberd"], servers["casp3r"]
	fmt.Fprintf(w, "| | %s | %s | %s | target for CASP3R | CASP3R compared |\n", p.name, e.name, c.name)
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|")
	for _, m := range rows {
		vp, ve, vc := m.get(p), m.get(e), m.get(c)
		cell := func(v value) string {
			switch {
			case !v.ok:
				return "–"
			case v.below:
				return "< " + m.format(v.v)
			}
			return m.format(v.v)
		}
		target, compared := "none (for information)", "–"
		if m.ref != "" {
			ref := map[string]value{"prosody": vp, "ejabberd": ve}[m.ref]
			refName := map[string]string{"prosody": p.short, "ejabberd": e.short}[m.ref]
			target = m.target
			if ref.ok {
				target += " (" + m.format(m.factor*ref.v) + ")"
			}
			if ref.ok && vc.ok && ref.v > 0 {
				met := vc.v >= m.factor*ref.v
				if m.atMost {
					met = vc.v <= m.factor*ref.v
				}
				compared = fmt.Sprintf("%s× %s: %s", formatRatio(vc.v/ref.v), refName, metWord(met))
			}
		} else if vc.ok {
			var parts []string
			bounds := false
			for _, o := range []struct {
				v    value
				name string
			}{{vp, p.short}, {ve, e.short}} {
				if !o.v.ok || o.v.v <= 0 {
					continue
				}
				r := formatRatio(vc.v/o.v.v) + "× " + o.name
				switch {
				case vc.below && o.v.below:
					bounds = true
					continue
				case vc.below:
					r = "< " + r
				case o.v.below:
					r = "> " + r
				}
				parts = append(parts, r)
			}
			switch {
			case len(parts) > 0:
				compared = strings.Join(parts, ", ")
			case bounds:
				compared = "all below one 10 ms tick"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", m.name, cell(vp), cell(ve), cell(vc), target, compared)
	}

	// Failures: every login, message and connection of every run should
	// succeed; figures from runs that lost some are suspect.
	fail := func(s *server) (string, bool) {
		rs := s.runs()
		if len(rs) == 0 {
			return "–", false
		}
		var logins int
		var lost, dropped int64
		for _, r := range rs {
			logins += r.LoginFailed
			lost += r.Lost + r.Bounced
			dropped += r.Dropped
		}
		missing := ""
		if len(rs) < runsPerServer {
			missing = fmt.Sprintf(" (%d of %d runs)", len(rs), runsPerServer)
		}
		return fmt.Sprintf("%d / %d / %d%s", logins, lost, dropped, missing), logins == 0 && lost == 0 && dropped == 0 && len(rs) == runsPerServer
	}
	fp, _ := fail(p)
	fe, _ := fail(e)
	fc, ok := fail(c)
	verdict := "–"
	if fc != "–" {
		verdict = metWord(ok)
	}
	fmt.Fprintf(w, "| failed logins / lost or bounced messages / dropped connections | %s | %s | %s | 0 / 0 / 0 | %s |\n", fp, fe, fc, verdict)
}

func metWord(met bool) string {
	if met {
		return "met"
	}
	return "**not met**"
}

func median(v []float64) value {
	if len(v) == 0 {
		return value{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return value{v[n/2], true, false}
	}
	return value{(v[n/2-1] + v[n/2]) / 2, true, false}
}

func formatMB(kb float64) string { return strconv.FormatFloat(kb/1024, 'f', 1, 64) + " MB" }
func formatKB(kb float64) string { return strconv.FormatFloat(kb, 'f', 1, 64) + " KB" }
func formatMs(ms float64) string { return strconv.FormatFloat(ms, 'f', 2, 64) + " ms" }
func formatUs(us float64) string { return strconv.FormatFloat(us, 'f', 1, 64) + " µs" }

// formatRatio prints a ratio with two significant decimals below 10.
func formatRatio(r float64) string {
	if r >= 10 {
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

// formatCount rounds to a whole number with thousands separators: 12,345.
func formatCount(f float64) string {
	s := strconv.FormatInt(int64(math.Round(f)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
