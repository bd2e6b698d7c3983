package validate

import (
	"bufio"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// knownMetrics reads deploy/observability/metrics.txt, the contract with the services.
func knownMetrics(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "deploy", "observability", "metrics.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		out[fields[0]] = fields[1]
	}
	return out
}

var metricRef = regexp.MustCompile(`\bvigil_[a-z0-9_]+`)

// checkMetricNames reports vigil_* series in expr that metrics.txt does not define.
func checkMetricNames(t *testing.T, where, expr string, known map[string]string, used map[string]bool) {
	t.Helper()
	for _, m := range metricRef.FindAllString(expr, -1) {
		name := m
		if known[name] == "" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(m, suffix); ok && known[base] == "histogram" {
					name = base
				}
			}
		}
		if known[name] == "" {
			t.Errorf("%s uses %s, which deploy/observability/metrics.txt does not define", where, m)
			continue
		}
		used[name] = true
	}
}

// promRules mirrors the Prometheus rule file format; unmarshalled strictly, so a misspelt key
// (`anotations`) fails.
type promRules struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `json:"alert,omitempty"`
			Record      string            `json:"record,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	known := knownMetrics(t)
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "observability", "prometheus", "rules", "*.yml"))
	if len(files) == 0 {
		t.Fatal("no rule files")
	}
	used := map[string]bool{}
	alerts := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rules promRules
		if err := yaml.UnmarshalStrict(raw, &rules); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rules.Groups {
			if g.Name == "" || len(g.Rules) == 0 {
				t.Errorf("%s: group %q has no name or no rules", f, g.Name)
			}
			for _, r := range g.Rules {
				where := filepath.Base(f) + " " + r.Alert + r.Record
				if (r.Alert == "") == (r.Record == "") {
					t.Errorf("%s: a rule is either alert or record", where)
				}
				if strings.TrimSpace(r.Expr) == "" || strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
					t.Errorf("%s: empty or unbalanced expr", where)
				}
				if r.Alert != "" {
					alerts[r.Alert] = true
					if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
						t.Errorf("%s: alerts need a severity label and a summary annotation", where)
					}
				}
				checkMetricNames(t, where, r.Expr, known, used)
			}
		}
	}
	// The five alerts: lag growing, error rate, p99 over SLO, DLQ non-empty, aborts.
	for _, m := range []string{"vigil_kafka_consumer_lag", "vigil_http_requests_total", "vigil_http_request_duration_seconds",
		"vigil_dlq_records_total", "vigil_kafka_transactions_total"} {
		if !used[m] {
			t.Errorf("no alert rule uses %s", m)
		}
	}
}

func TestPrometheusConfigScrapesEveryService(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "observability", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Global        map[string]any `json:"global"`
		RuleFiles     []string       `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path,omitempty"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	targets := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %s, services serve /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, s := range sc.StaticConfigs {
			for _, tg := range s.Targets {
				targets[sc.JobName+"="+tg] = true
			}
		}
	}
	p := loadCompose(t)
	for name, port := range servicePorts {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("compose has no service %s to scrape", name)
		}
		// The job is named after the service, so rules can say {job="ingest"}.
		if want := name + "=" + net.JoinHostPort(name, itoa(port)); !targets[want] {
			t.Errorf("prometheus.yml: no job %s scraping %s", name, strings.TrimPrefix(want, name+"="))
		}
	}
	if len(cfg.RuleFiles) == 0 {
		t.Error("prometheus.yml: no rule_files")
	}
	mounted := false
	for _, v := range p.Services["prometheus"].Volumes {
		for _, rf := range cfg.RuleFiles {
			if strings.HasPrefix(rf, v.Target+"/") {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("rule_files %v are not under a volume mounted into the prometheus container", cfg.RuleFiles)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	known := knownMetrics(t)
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string `json:"name"`
			UID       string `json:"uid"`
			Type      string `json:"type"`
			Access    string `json:"access"`
			URL       string `json:"url"`
			IsDefault bool   `json:"isDefault,omitempty"`
			Editable  bool   `json:"editable"`
		} `json:"datasources"`
	}
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "observability", "grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, &ds); err != nil {
		t.Fatalf("datasources: %v", err)
	}
	uids := map[string]bool{}
	for _, d := range ds.Datasources {
		uids[d.UID] = true
		if _, err := url.Parse(d.URL); err != nil || d.URL == "" {
			t.Errorf("datasource %s: bad url %q", d.Name, d.URL)
		}
	}

	var prov struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name            string            `json:"name"`
			OrgID           int               `json:"orgId"`
			Folder          string            `json:"folder"`
			Type            string            `json:"type"`
			DisableDeletion bool              `json:"disableDeletion"`
			AllowUIUpdates  bool              `json:"allowUiUpdates"`
			Options         map[string]string `json:"options"`
		} `json:"providers"`
	}
	raw, err = os.ReadFile(filepath.Join(root, "deploy", "observability", "grafana", "provisioning", "dashboards", "vigil.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, &prov); err != nil || len(prov.Providers) == 0 {
		t.Fatalf("dashboard provider: %v", err)
	}
	mounted := false
	for _, v := range loadCompose(t).Services["grafana"].Volumes {
		mounted = mounted || v.Target == prov.Providers[0].Options["path"]
	}
	if !mounted {
		t.Errorf("dashboard provider path %s is not mounted in the grafana container", prov.Providers[0].Options["path"])
	}

	files, _ := filepath.Glob(filepath.Join(root, "deploy", "observability", "grafana", "dashboards", "*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards")
	}
	used := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			UID    string `json:"uid"`
			Title  string `json:"title"`
			Panels []struct {
				Title      string `json:"title"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
			t.Errorf("%s: needs uid, title and panels", f)
		}
		for _, p := range dash.Panels {
			if !uids[p.Datasource.UID] {
				t.Errorf("%s panel %q: datasource uid %q is not provisioned", filepath.Base(f), p.Title, p.Datasource.UID)
			}
			for _, tg := range p.Targets {
				checkMetricNames(t, filepath.Base(f)+" panel "+p.Title, tg.Expr, known, used)
			}
		}
	}
	for m := range known {
		if !used[m] {
			t.Errorf("metric %s is in metrics.txt but on no dashboard", m)
		}
	}
}

func TestOtelCollectorPipelines(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "observability", "otel-collector.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Receivers  map[string]any `json:"receivers"`
		Processors map[string]any `json:"processors"`
		Exporters  map[string]any `json:"exporters"`
		Extensions map[string]any `json:"extensions"`
		Service    struct {
			Extensions []string `json:"extensions"`
			Pipelines  map[string]struct {
				Receivers  []string `json:"receivers"`
				Processors []string `json:"processors"`
				Exporters  []string `json:"exporters"`
			} `json:"pipelines"`
		} `json:"service"`
	}
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatalf("otel-collector.yaml: %v", err)
	}
	traces, ok := cfg.Service.Pipelines["traces"]
	if !ok {
		t.Fatal("no traces pipeline")
	}
	for kind, pair := range map[string]struct {
		names   []string
		defined map[string]any
	}{"receiver": {traces.Receivers, cfg.Receivers}, "processor": {traces.Processors, cfg.Processors},
		"exporter": {traces.Exporters, cfg.Exporters}, "extension": {cfg.Service.Extensions, cfg.Extensions}} {
		for _, n := range pair.names {
			if _, ok := pair.defined[n]; !ok {
				t.Errorf("traces pipeline uses undefined %s %s", kind, n)
			}
		}
	}
	jaeger := false
	for _, e := range traces.Exporters {
		ep, _ := get(asMap(cfg.Exporters[e]), "endpoint")
		jaeger = jaeger || strings.HasPrefix(ep.(string), "jaeger:")
	}
	if !jaeger {
		t.Error("traces are not exported to jaeger")
	}
	// The services' OTLP endpoint in compose must be a port the collector's receiver listens on.
	p := loadCompose(t)
	for name := range servicePorts {
		ep := p.Services[name].Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
		if ep == nil {
			t.Errorf("compose %s: OTEL_EXPORTER_OTLP_ENDPOINT unset: no traces", name)
			continue
		}
		u, err := url.Parse(*ep)
		if err != nil || u.Hostname() != "otel-collector" {
			t.Errorf("compose %s: OTEL_EXPORTER_OTLP_ENDPOINT %q is not the otel-collector service", name, *ep)
			continue
		}
		http, _ := get(asMap(cfg.Receivers["otlp"]), "protocols", "http", "endpoint")
		if s, _ := http.(string); !strings.HasSuffix(s, ":"+u.Port()) {
			t.Errorf("compose %s: OTLP port %s, but the collector's otlp http receiver listens on %v", name, u.Port(), http)
		}
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
