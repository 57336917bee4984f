package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zonalread/zonalread/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// The short mode on a tiny object produces both reports with every row of
// every profile, and keeps the notes of an existing report. No assertions
// on times.
func TestShortRun(t *testing.T) {
	dir := t.TempDir()
	md, js := filepath.Join(dir, "BENCHMARKS.md"), filepath.Join(dir, "out", "results.json")
	old := "# old\n" + notesBegin + "\nhand-written analysis\n" + notesEnd + "\n"
	if err := os.WriteFile(md, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-short", "-size", "4MiB", "-out", md, "-json", js}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}

	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	if !rep.Short || rep.Size != 4<<20 || rep.Runs != 1 || len(rep.Profiles) != len(profiles) {
		t.Fatalf("report header: short %v, size %d, runs %d, %d profiles", rep.Short, rep.Size, rep.Runs, len(rep.Profiles))
	}
	rows := map[string]rowResult{}
	for _, r := range rep.Rows {
		rows[r.Profile+"/"+r.Pattern+"/"+r.Strategy] = r
	}
	mdText, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(mdText)
	data := make([]byte, 4<<20)
	want := 0
	for _, pr := range profiles {
		if !strings.Contains(text, "## Results: `"+pr.Name+"`") {
			t.Errorf("markdown has no results section for %s", pr.Name)
		}
		for _, p := range buildPatterns(data, true) {
			if !pr.runs(p.id) {
				continue
			}
			for _, sid := range p.strategies {
				want++
				key := pr.Name + "/" + p.id + "/" + sid
				r, ok := rows[key]
				switch {
				case !ok:
					t.Errorf("JSON has no row %s", key)
					continue
				case !r.Verified || len(r.Runs) != 1 || r.Used != p.used || r.Runs[0].ServerBytes <= 0:
					t.Errorf("row %s: verified %v, %d runs, used %d (want %d), server bytes %v", key, r.Verified, len(r.Runs), r.Used, p.used, r.Runs)
				}
				s := strategyByID(sid)
				if line := "| " + p.id + " | " + s.label + " | " + s.backend + " |"; strings.Count(text, line) != profilesRunning(p.id) {
					t.Errorf("markdown has %d rows %q, want one per profile that runs %s", strings.Count(text, line), line, p.id)
				}
			}
		}
	}
	if len(rep.Rows) != want {
		t.Errorf("%d rows, want %d", len(rep.Rows), want)
	}
	// The tail profile's random-4KiB rows, with hedged reads and without,
	// are summed up with their p99.
	for _, b := range []string{"HTTP", "gRPC MRD"} {
		for _, label := range []string{"zonalread, prefetch on", "zonalread, prefetch on, hedged reads"} {
			if s := "**Tail (`tail`, random-4KiB, " + b + ", " + label + "):** p50 "; !strings.Contains(text, s) {
				t.Errorf("markdown lacks %q", s)
			}
		}
	}
	// The hedged rows give the FS's hedge delay, the floor of their p99.
	for _, sid := range []string{"zonalread-http-hedge", "zonalread-mrd-hedge"} {
		if r := rows["tail/random-4KiB/"+sid]; r.HedgeDelay <= 0 {
			t.Errorf("row tail/random-4KiB/%s: hedge delay %v, want the FS's", sid, r.HedgeDelay)
		}
	}
	if n := strings.Count(text, "; hedge delay "); n != 2 {
		t.Errorf("markdown states a hedge delay %d times, want twice (the hedged tail rows)", n)
	}
	// Every sequential row has an efficiency, and the sweep table has a
	// line per object size and profile.
	for _, r := range rep.Rows {
		if strings.HasPrefix(r.Pattern, "sequential") && strings.HasPrefix(r.Strategy, "zonalread-") && !(r.Efficiency > 0 && r.EfficiencyMin <= r.Efficiency && r.Efficiency <= r.EfficiencyMax) {
			t.Errorf("row %s/%s/%s: efficiency %v (%v–%v)", r.Profile, r.Pattern, r.Strategy, r.Efficiency, r.EfficiencyMin, r.EfficiencyMax)
		}
	}
	for _, size := range []string{"256 KiB", "1 MiB", "4 MiB"} {
		for _, pr := range []string{"standard", "zonal"} {
			if line := "| " + size + " | `" + pr + "` | "; !strings.Contains(text, line) {
				t.Errorf("size sweep lacks %q", line)
			}
		}
	}
	for _, s := range []string{"**Machine:**", "## Link profiles", "## Sequential efficiency by object size", "**Target:**", "hand-written analysis", "results.json", "read p50 / p95 / p99"} {
		if !strings.Contains(text, s) {
			t.Errorf("markdown lacks %q", s)
		}
	}
}

// A strategy that returns wrong bytes fails loudly, naming the read.
func TestVerifyMismatch(t *testing.T) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	p := buildPatterns(data, true)[0]
	got := make([][]byte, len(p.ops))
	for i, o := range p.ops {
		got[i] = bytes.Clone(data[o.off : o.off+o.n])
	}
	if err := verify(p, got); err != nil {
		t.Fatalf("verify of the right bytes: %v", err)
	}
	got[2][5] ^= 1
	err := verify(p, got)
	if err == nil || !strings.Contains(err.Error(), "BYTES MISMATCH") || !strings.Contains(err.Error(), "read 3 ") {
		t.Fatalf("verify of a flipped byte: %v", err)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-profile", "nope"}, {"-size", "12x"}, {"-runs", "0"}, {"-seq-runs", "0"}, {"-only", "("}, {"extra"}} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) succeeded", args)
		}
	}
	c, err := parseFlags([]string{"-short", "-profile", "zonal"}, &bytes.Buffer{})
	if err != nil || c.size != 32<<20 || c.runs != 1 || len(c.profiles) != 1 || c.profiles[0].Name != "zonal" {
		t.Fatalf("parseFlags(-short -profile zonal) = %+v, %v", c, err)
	}
}

// profilesRunning counts the profiles that run pattern id.
func profilesRunning(id string) int {
	n := 0
	for _, pr := range profiles {
		if pr.runs(id) {
			n++
		}
	}
	return n
}
