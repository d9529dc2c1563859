package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tableRows returns the cells of each Markdown table row in out, the
// header first, without the |---| separator line.
func tableRows(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	return rows
}

// emptyCells names the cells of a table (but the header's first) that
// have no value.
func emptyCells(rows [][]string) []string {
	var bad []string
	for i, r := range rows {
		for j, c := range r {
			if (i > 0 || j > 0) && (c == "" || c == "–") {
				bad = append(bad, r[0]+" / column "+string(rune('1'+j)))
			}
		}
	}
	return bad
}

// writeRuns writes the JSON summaries of one server's runs into dir, in the
// order idle, chat, paced, login; "" is a run that printed nothing.
func writeRuns(t *testing.T, dir, server string, bodies ...string) {
	t.Helper()
	for i, body := range bodies {
		run := []string{"idle", "chat", "paced", "login"}[i]
		if err := os.WriteFile(filepath.Join(dir, server+"-"+run+".json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runTable(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	if err := run([]string{"-dir", dir, "-casp3r", "CASP3R x", "-prosody", "Prosody 1", "-ejabberd", "ejabberd 2"}, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const (
	idleJSON  = `{"logins": 1000, "logins_per_second": %LPS%, "server_cpu_ms_per_login": 2, "rss_idle_kb": %IDLE%, "rss_per_client_kb": %PER%}`
	chatJSON  = `{"logins": 1000, "logins_per_second": %LPS%, "server_cpu_ms_per_login": 2, "messages_sent": 20000, "messages_received": 20000, "messages_per_second": %MPS%, "server_cpu_us_per_message": 50, "latency": {"n": 20000, "p50_ms": 9, "p99_ms": 40}}`
	pacedJSON = `{"logins": 1000, "logins_per_second": %LPS%, "server_cpu_ms_per_login": 2, "messages_sent": 20000, "messages_received": 20000, "messages_per_second": 1000, "latency": {"n": 20000, "p50_ms": 1, "p99_ms": %P99%}}`
	loginJSON = `{"logins": 1000, "logins_per_second": %LPS%, "server_cpu_ms_per_login": 2}`
)

func fill(s string, kv ...string) string {
	return strings.NewReplacer(kv...).Replace(s)
}

func TestTable(t *testing.T) {
	dir := t.TempDir()
	// lps: logins/s in the login phases of the memory and chat runs;
	// storm: in the login run, which the row takes.
	srv := func(name, idleKB, perKB, lps, storm, mps, p99 string) {
		writeRuns(t, dir, name,
			fill(idleJSON, "%LPS%", lps, "%IDLE%", idleKB, "%PER%", perKB),
			fill(chatJSON, "%LPS%", lps, "%MPS%", mps),
			fill(pacedJSON, "%LPS%", lps, "%P99%", p99),
			fill(loginJSON, "%LPS%", storm))
	}
	srv("prosody", "17100", "53", "260", "270", "3100", "26.9")
	srv("ejabberd", "87000", "66", "350", "400", "7000", "17.6")
	// CASP3R: idle 0.5× Prosody (met), 0.6× per client (not met), 2× the
	// logins (met; 1.14× in the other runs), 2× the messages (not met),
	// p99 0.2× (met).
	srv("casp3r", "8550", "31.8", "400", "800", "14000", "3.52")
	out := runTable(t, dir)
	rows := tableRows(out)
	if got, want := len(rows), 10; got != want {
		t.Fatalf("got %d rows, want %d:\n%s", got, want, out)
	}
	if bad := emptyCells(rows); len(bad) > 0 {
		t.Errorf("cells without a value: %v\n%s", bad, out)
	}
	if got, want := rows[0][1:4], []string{"Prosody 1", "ejabberd 2", "CASP3R x"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("header = %q, want %q", got, want)
	}
	tests := []struct {
		row                int
		prosody, casp3r    string
		target, comparison string
	}{
		{1, "16.7 MB", "8.3 MB", "≤ 0.6× Prosody (10.0 MB)", "0.50× Prosody: met"},
		{2, "53.0 KB", "31.8 KB", "≤ ⅓ Prosody (17.7 KB)", "0.60× Prosody: **not met**"},
		{3, "270", "800", "≥ 1.5× ejabberd (600)", "2.00× ejabberd: met"},
		{4, "3,100", "14,000", "≥ 2.5× ejabberd (17,500)", "2.00× ejabberd: **not met**"},
		{5, "26.90 ms", "3.52 ms", "≤ ⅓ ejabberd (5.87 ms)", "0.20× ejabberd: met"},
		{6, "1.00 ms", "1.00 ms", "none (for information)", "1.00× Prosody, 1.00× ejabberd"},
		{9, "0 / 0 / 0", "0 / 0 / 0", "0 / 0 / 0", "met"},
	}
	for _, tt := range tests {
		r := rows[tt.row]
		if r[1] != tt.prosody || r[3] != tt.casp3r || r[4] != tt.target || r[5] != tt.comparison {
			t.Errorf("row %q = %q; want Prosody %q, CASP3R %q, target %q, compared %q",
				r[0], r, tt.prosody, tt.casp3r, tt.target, tt.comparison)
		}
	}
}

func TestTableMissing(t *testing.T) {
	dir := t.TempDir()
	// Only CASP3R ran, its paced run printed nothing and there is no login
	// run; one message was lost in the chat run.
	writeRuns(t, dir, "casp3r",
		fill(idleJSON, "%LPS%", "500", "%IDLE%", "17000", "%PER%", "40"),
		strings.Replace(fill(chatJSON, "%LPS%", "400", "%MPS%", "9000"), `"messages_per_second"`, `"messages_lost": 1, "messages_per_second"`, 1),
		"")
	out := runTable(t, dir)
	rows := tableRows(out)
	if got, want := len(rows), 10; got != want {
		t.Fatalf("got %d rows, want %d:\n%s", got, want, out)
	}
	for _, r := range rows[1:] {
		if r[1] != "–" || r[2] != "–" {
			t.Errorf("row %q: Prosody %q, ejabberd %q, want –", r[0], r[1], r[2])
		}
	}
	if got, want := rows[3][3], "450"; got != want { // without a login run: median of 500 and 400
		t.Errorf("logins/s = %q, want %q", got, want)
	}
	if got, want := rows[5][3], "–"; got != want {
		t.Errorf("p99 without a paced run = %q, want %q", got, want)
	}
	if got, want := rows[1][5], "–"; got != want {
		t.Errorf("ratio without Prosody = %q, want %q", got, want)
	}
	if got, want := rows[9][3], "0 / 1 / 0 (2 of 4 runs)"; got != want {
		t.Errorf("failures = %q, want %q", got, want)
	}
	if got, want := rows[9][5], "**not met**"; got != want {
		t.Errorf("failures verdict = %q, want %q", got, want)
	}
}

func TestTableBelowTick(t *testing.T) {
	dir := t.TempDir()
	// A quick run: 20 logins and 100 messages used no tick of CPU time
	// on CASP3R and ejabberd (the load tool then omits the figure).
	small := func(server, cpuMs, cpuUs string) {
		writeRuns(t, dir, server,
			`{"logins": 20, "logins_per_second": 100`+cpuMs+`, "rss_idle_kb": 9000, "rss_per_client_kb": 50}`,
			`{"logins": 20, "logins_per_second": 100, "messages_sent": 100, "messages_received": 100, "messages_per_second": 900`+cpuUs+`}`,
			`{"logins": 20, "logins_per_second": 100, "messages_sent": 100, "messages_received": 100, "latency": {"n": 100, "p50_ms": 1, "p99_ms": 2}}`)
	}
	small("prosody", `, "server_cpu_ms_per_login": 1`, `, "server_cpu_us_per_message": 200`)
	small("ejabberd", "", "")
	small("casp3r", "", "")
	rows := tableRows(runTable(t, dir))
	tests := []struct {
		row                       int
		prosody, ejabberd, casp3r string
		compared                  string
	}{
		{7, "1.00 ms", "< 0.50 ms", "< 0.50 ms", "< 0.50× Prosody"},
		{8, "200.0 µs", "< 100.0 µs", "< 100.0 µs", "< 0.50× Prosody"},
	}
	for _, tt := range tests {
		r := rows[tt.row]
		if r[1] != tt.prosody || r[2] != tt.ejabberd || r[3] != tt.casp3r || r[5] != tt.compared {
			t.Errorf("row %q = %q; want %q, %q, %q, compared %q", r[0], r, tt.prosody, tt.ejabberd, tt.casp3r, tt.compared)
		}
	}
	if bad := emptyCells(rows); len(bad) > 0 {
		t.Errorf("cells without a value: %v", bad)
	}
}

func TestRunErrors(t *testing.T) {
	if err := run(nil, &strings.Builder{}); err == nil {
		t.Error("run without -dir: no error")
	}
	dir := t.TempDir()
	writeRuns(t, dir, "prosody", "{", "", "")
	if err := run([]string{"-dir", dir}, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "prosody-idle.json") {
		t.Errorf("run with bad JSON: %v, want an error naming the file", err)
	}
}

func TestFormatCount(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {999.4, "999"}, {999.6, "1,000"}, {12345, "12,345"}, {1234567, "1,234,567"}, {-4200, "-4,200"},
	}
	for _, tt := range tests {
		if got := formatCount(tt.in); got != tt.want {
			t.Errorf("formatCount(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want value
	}{
		{nil, value{}},
		{[]float64{3}, value{v: 3, ok: true}},
		{[]float64{3, 1, 2}, value{v: 2, ok: true}},
		{[]float64{4, 1}, value{v: 2.5, ok: true}},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
