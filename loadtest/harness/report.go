package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Machine describes where the numbers were measured; on a shared box they mean little without it.
type Machine struct {
	CPUs     int     `json:"cpus"`
	CPUModel string  `json:"cpu_model"`
	MemoryGB float64 `json:"memory_gb"`
	LoadAvg  string  `json:"load_average_before"`
	LoadEnd  string  `json:"load_average_after"`
	Go       string  `json:"go"`
}

// ReadMachine reads /proc.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadAvg: LoadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			m.MemoryGB = kb / 1024 / 1024
		}
	}
	return m
}

// LoadAvg is the 1, 5 and 15 minute load average.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Ratio is a headline number next to its baseline.
type Ratio struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Baseline string  `json:"baseline"`
	Base     float64 `json:"baseline_value"`
	Ratio    float64 `json:"ratio"`
}

// Results is the whole report of a run.
type Results struct {
	Started        time.Time      `json:"started"`
	Mode           string         `json:"mode"` // run or find-max
	Machine        Machine        `json:"machine"`
	Settings       map[string]any `json:"settings"`
	Phases         []*PhaseResult `json:"phases"`
	MaxSustainable float64        `json:"max_sustainable_tx_per_s"` // find-max: highest rate meeting the SLO without backlog
	MaxKeepingUp   float64        `json:"max_keeping_up_tx_per_s"`  // find-max: highest rate without backlog, SLO aside
	SLOMS          float64        `json:"slo_p99_ms"`
	Quality        Quality        `json:"detection_by_decision"`
	AlertQuality   Quality        `json:"detection_by_alert"`
	Baselines      Baselines      `json:"baselines"`
	Headline       []Ratio        `json:"headline"`
	Violations     []Violation    `json:"violations"`
	Lag            []LagSample    `json:"lag"`
}

// Headlines pairs the run's numbers with the baselines.
func (r *Results) Headlines() {
	best := r.Best()
	if best == nil {
		return
	}
	var saturated float64
	for _, p := range r.Phases {
		if !p.Warmup {
			saturated = max(saturated, p.E2ERate)
		}
	}
	tp := best.E2ERate
	if r.MaxKeepingUp > tp {
		tp = r.MaxKeepingUp
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	b := r.Baselines
	r.Headline = []Ratio{
		{"end-to-end throughput", tp, "tx/s", "raw EOS relay", b.EOSRelayRate, ratio(tp, b.EOSRelayRate)},
		{"end-to-end throughput", tp, "tx/s", "raw produce→consume", b.ProduceConsumeRate, ratio(tp, b.ProduceConsumeRate)},
		{"highest end-to-end rate in any phase (backlog allowed)", saturated, "tx/s", "raw EOS relay", b.EOSRelayRate, ratio(saturated, b.EOSRelayRate)},
		{"decision rows persisted", tp, "rows/s", "Postgres COPY", b.PostgresCopyRows, ratio(tp, b.PostgresCopyRows)},
		{"end-to-end throughput", tp, "tx/s", "pipelined Redis commands", b.RedisPipelinedOps, ratio(tp, b.RedisPipelinedOps)},
		{fmt.Sprintf("p99 end-to-end @ %.0f tx/s", best.OfferedRate), best.E2E.P99MS, "ms", fmt.Sprintf("p99 raw produce→consume @ %.0f rec/s", b.ProduceConsumeRateAt), b.ProduceConsumeLat.P99MS, ratio(best.E2E.P99MS, b.ProduceConsumeLat.P99MS)},
		{fmt.Sprintf("p99 ack @ %.0f tx/s", best.OfferedRate), best.Ack.P99MS, "ms", fmt.Sprintf("p99 raw produce→consume @ %.0f rec/s", b.ProduceConsumeRateAt), b.ProduceConsumeLat.P99MS, ratio(best.Ack.P99MS, b.ProduceConsumeLat.P99MS)},
	}
}

// Best is the highest phase that kept up, else the last measured one.
func (r *Results) Best() *PhaseResult {
	var best *PhaseResult
	for _, p := range r.Phases {
		if p.Warmup {
			continue
		}
		if p.KeepsUp && (best == nil || p.OfferedRate > best.OfferedRate) {
			best = p
		}
	}
	if best == nil && len(r.Phases) > 0 && !r.Phases[len(r.Phases)-1].Warmup {
		best = r.Phases[len(r.Phases)-1]
	}
	return best
}

// Write puts results.json, summary.md and the plots into dir.
func (r *Results) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(r.Markdown()), 0o644); err != nil {
		return err
	}
	return r.plots(dir)
}

// Markdown is the human summary (also the body of docs/benchmarks.md).
func (r *Results) Markdown() string {
	var sb strings.Builder
	m := r.Machine
	fmt.Fprintf(&sb, "Run %s (%s), %d CPUs (%s), %.1f GB RAM, %s; load average %s before, %s after.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Mode, m.CPUs, m.CPUModel, m.MemoryGB, m.Go, m.LoadAvg, m.LoadEnd)
	fmt.Fprintf(&sb, "Broker, Redis, Postgres, the four services and the load generator all share this machine; "+
		"each service runs with GOMAXPROCS=%d (a quarter of the CPUs, at least 1: docs/tuning.md) unless the settings below say otherwise.\n",
		ServiceGOMAXPROCS(m.CPUs))
	if env, ok := r.Settings["service_env"].([]string); ok && len(env) > 0 {
		fmt.Fprintf(&sb, "Extra service settings: `%s`.\n", strings.Join(env, "`, `"))
	} else {
		sb.WriteString("Services run with their defaults (scoring without VIGIL_SCORING_MODEL_PATH uses its amount baseline).\n")
	}
	if sim, ok := r.Settings["sim"].(string); ok {
		fmt.Fprintf(&sb, "Workload: Handbook simulator, %s.\n", sim)
	}
	if b, ok := r.Settings["batch"].(int); ok && b > 1 {
		fmt.Fprintf(&sb, "Requests: batches of up to %d transactions to `/v1/transactions:batch`, sent when full or after %v (a micro-batching payment system); ack latency runs from each transaction's own arrival time.\n", b, r.Settings["batch_wait"])
	} else {
		sb.WriteString("Requests: one `POST /v1/transactions` per transaction.\n")
	}
	sb.WriteString("\n")
	sb.WriteString("### Headline vs raw baselines (same run, same message size)\n\n| number | value | baseline | baseline value | ratio |\n|---|---:|---|---:|---:|\n")
	for _, h := range r.Headline {
		fmt.Fprintf(&sb, "| %s | %.1f %s | %s | %.1f | %.3f× |\n", h.Name, h.Value, h.Unit, h.Baseline, h.Base, h.Ratio)
	}
	if r.Mode == "find-max" {
		if r.MaxSustainable > 0 {
			fmt.Fprintf(&sb, "\nMaximum sustainable rate (p99 end-to-end ≤ %.0f ms, lag not growing): **%.0f tx/s**.\n", r.SLOMS, r.MaxSustainable)
		} else {
			fmt.Fprintf(&sb, "\nMaximum sustainable rate: **none of the rates tried met p99 end-to-end ≤ %.0f ms**.\n", r.SLOMS)
		}
		fmt.Fprintf(&sb, "Highest rate the pipeline kept up with (every transaction decided, lag not growing; SLO aside): **%.0f tx/s**.\n", r.MaxKeepingUp)
	}
	sb.WriteString("\n### Phases\n\n| offered tx/s | sent | acked | decided | acked tx/s | e2e tx/s | ack p50/p99/max ms | e2e p50/p99/max ms | receipt→decision p50/p99 ms | receipt→features p50/p99 ms | features→decision p50/p99 ms | decision→row p50/p99 ms | send→decision p99 ms | statuses | sustainable |\n|---:|---:|---:|---:|---:|---:|---|---|---|---|---|---|---:|---|---|\n")
	for _, p := range r.Phases {
		st := "yes"
		if p.Warmup {
			st = "warm-up (not counted)"
		} else if !p.Sustainable {
			st = "no: " + p.Why
		}
		fmt.Fprintf(&sb, "| %.0f | %d | %d | %d | %.0f | %.0f | %.1f / %.1f / %.1f | %.1f / %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f | %s | %s |\n",
			p.OfferedRate, p.Sent, p.Acked, p.Decided, p.AckedRate, p.E2ERate, p.Ack.P50MS, p.Ack.P99MS, p.Ack.MaxMS,
			p.E2E.P50MS, p.E2E.P99MS, p.E2E.MaxMS, p.ToDecision.P50MS, p.ToDecision.P99MS,
			p.ToFeatures.P50MS, p.ToFeatures.P99MS, p.FeaturesToDecision.P50MS, p.FeaturesToDecision.P99MS, p.ToRow.P50MS, p.ToRow.P99MS,
			p.E2EFromSend.P99MS, statuses(p.ByStatus), st)
	}
	q, aq := r.Quality, r.AlertQuality
	fmt.Fprintf(&sb, "\n### Detection quality (simulator ground truth, configured thresholds)\n\n| flagged by | decided | frauds (rate) | flagged | true positives | precision | recall |\n|---|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&sb, "| decision review/decline | %d | %d (%.2f%%) | %d | %d | %.3f | %.3f |\n", q.Decided, q.Frauds, 100*q.FraudRate, q.Flagged, q.TruePositives, q.Precision, q.Recall)
	fmt.Fprintf(&sb, "| alert row | %d | %d (%.2f%%) | %d | %d | %.3f | %.3f |\n", aq.Decided, aq.Frauds, 100*aq.FraudRate, aq.Flagged, aq.TruePositives, aq.Precision, aq.Recall)
	b := r.Baselines
	fmt.Fprintf(&sb, "\n### Baselines\n\nMessage %d bytes. Raw produce→consume %.0f rec/s (paced at %.0f rec/s: p50 %.1f ms, p99 %.1f ms); raw EOS relay %.0f rec/s; pipelined Redis %.0f commands/s; Postgres COPY %.0f rows/s.\n",
		b.MessageBytes, b.ProduceConsumeRate, b.ProduceConsumeRateAt, b.ProduceConsumeLat.P50MS, b.ProduceConsumeLat.P99MS, b.EOSRelayRate, b.RedisPipelinedOps, b.PostgresCopyRows)
	for _, e := range b.Errors {
		fmt.Fprintf(&sb, "\nBaseline error: %s\n", e)
	}
	for _, p := range r.Phases {
		for st, ex := range p.ErrorSamples {
			fmt.Fprintf(&sb, "\nPhase %s, status %s, e.g.: %s\n", p.Prefix, st, strings.Join(ex, " | "))
		}
	}
	sb.WriteString("\n### Correctness\n\n")
	if len(r.Violations) == 0 {
		sb.WriteString("Every acknowledged transaction has exactly one decision, no decision without a sent transaction, at most one alert per decision, no 5xx.\n")
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&sb, "- **VIOLATION** %s\n", v)
	}
	return sb.String()
}

func statuses(m map[string]int) string { return FormatSorted(m, "%s×%d") }

// FormatSorted formats every key and value of m with format (a %s and a verb for V), in key
// order, separated by spaces.
func FormatSorted[V any](m map[string]V, format string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf(format, k, m[k]))
	}
	return strings.Join(parts, " ")
}

func (r *Results) plots(dir string) error {
	// Latency percentiles over time, on the lag sampler's clock so phases line up.
	lat := plot.New()
	lat.Title.Text, lat.X.Label.Text, lat.Y.Label.Text = "Latency percentiles per second", "seconds", "ms"
	var ackP50, ackP99, e2eP50, e2eP99 plotter.XYs
	for _, p := range r.Phases {
		for _, pt := range p.AckSeries {
			x := p.StartSec + float64(pt.Second)
			ackP50, ackP99 = append(ackP50, plotter.XY{X: x, Y: pt.P50MS}), append(ackP99, plotter.XY{X: x, Y: pt.P99MS})
		}
		for _, pt := range p.E2ESeries {
			if pt.Count == 0 {
				continue
			}
			x := p.StartSec + float64(pt.Second)
			e2eP50, e2eP99 = append(e2eP50, plotter.XY{X: x, Y: pt.P50MS}), append(e2eP99, plotter.XY{X: x, Y: pt.P99MS})
		}
	}
	if err := addLines(lat, "ack p50", ackP50, "ack p99", ackP99, "e2e p50", e2eP50, "e2e p99", e2eP99); err != nil {
		return err
	}
	if err := lat.Save(8*vg.Inch, 4*vg.Inch, filepath.Join(dir, "latency.png")); err != nil {
		return err
	}

	tp := plot.New()
	tp.Title.Text, tp.X.Label.Text, tp.Y.Label.Text = "Throughput against offered rate", "offered tx/s", "tx/s"
	var acked, e2e, ideal plotter.XYs
	for _, p := range r.Phases {
		if p.Warmup {
			continue
		}
		acked = append(acked, plotter.XY{X: p.OfferedRate, Y: p.AckedRate})
		e2e = append(e2e, plotter.XY{X: p.OfferedRate, Y: p.E2ERate})
		ideal = append(ideal, plotter.XY{X: p.OfferedRate, Y: p.OfferedRate})
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i].X < acked[j].X })
	sort.Slice(e2e, func(i, j int) bool { return e2e[i].X < e2e[j].X })
	sort.Slice(ideal, func(i, j int) bool { return ideal[i].X < ideal[j].X })
	if err := plotutil.AddLinePoints(tp, "acked", acked, "end to end", e2e, "offered", ideal); err != nil {
		return err
	}
	if err := tp.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, "throughput.png")); err != nil {
		return err
	}

	lag := plot.New()
	lag.Title.Text, lag.X.Label.Text, lag.Y.Label.Text = "Consumer lag", "seconds", "records"
	groups := map[string]plotter.XYs{}
	for _, s := range r.Lag {
		for g, v := range s.Lag {
			groups[g] = append(groups[g], plotter.XY{X: s.AtSec, Y: float64(v)})
		}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	var args []any
	for _, g := range names {
		args = append(args, g, groups[g])
	}
	if len(args) > 0 {
		if err := addLines(lag, args...); err != nil {
			return err
		}
	}
	return lag.Save(8*vg.Inch, 4*vg.Inch, filepath.Join(dir, "lag.png"))
}

// addLines adds name/XYs pairs, skipping empty series (plotter rejects them).
func addLines(p *plot.Plot, pairs ...any) error {
	var kept []any
	for i := 0; i+1 < len(pairs); i += 2 {
		if xys, ok := pairs[i+1].(plotter.XYs); ok && len(xys) > 0 {
			kept = append(kept, pairs[i], xys)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	return plotutil.AddLines(p, kept...)
}
