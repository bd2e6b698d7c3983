// Package metrics reads the other services' Prometheus /metrics for the overview page:
// consumer lag by group and p99 latencies from histogram buckets.
//
// Only the URLs of VIGIL_ALERTING_METRICS_SOURCES are ever fetched (no request decides a URL),
// with a short timeout, no redirects and a capped body; results are cached for a few seconds so
// a room full of open overview pages does not multiply the scrapes.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric names this package reads (the deploy/observability contract).
const (
	LagMetric       = "vigil_kafka_consumer_lag"
	HTTPLatency     = "vigil_http_request_duration_seconds"
	DecisionLatency = "vigil_decision_latency_seconds"
)

// Source is one service's metrics endpoint.
type Source struct {
	Name string `json:"name"`
	URL  string `json:"-"`
}

var namePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,40}$`)

// ParseSources reads "name=http://host:port/metrics,name2=..."; empty means none.
func ParseSources(s string) ([]Source, error) {
	var out []Source
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, raw, ok := strings.Cut(part, "=")
		if !ok || !namePattern.MatchString(name) {
			return nil, fmt.Errorf("%q: want name=http://host:port/metrics with a name of letters, digits, _ . -", part)
		}
		if seen[name] {
			return nil, fmt.Errorf("source %q appears twice", name)
		}
		seen[name] = true
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("source %q: %q must be an http(s) URL with a host and no credentials", name, raw)
		}
		out = append(out, Source{Name: name, URL: u.String()})
	}
	return out, nil
}

// Stats is what one scrape of one source showed.
type Stats struct {
	Name string `json:"name"`
	Err  string `json:"error,omitempty"`
	// Lag is the consumer lag summed over partitions, by group.
	Lag map[string]float64 `json:"consumer_lag,omitempty"`
	// P99 latencies in seconds over all routes (HTTP) or all decisions, since the process
	// started (the buckets are cumulative); absent when the histogram is absent or empty.
	HTTPP99     *float64 `json:"http_p99_seconds,omitempty"`
	HTTPCount   uint64   `json:"http_requests,omitempty"`
	DecisionP99 *float64 `json:"decision_p99_seconds,omitempty"`
	Decisions   uint64   `json:"decisions,omitempty"`
}

// Snapshot is every source at one time.
type Snapshot struct {
	Configured bool      `json:"configured"`
	At         time.Time `json:"at"`
	Sources    []Stats   `json:"sources"`
}

// Scraper fetches and caches.
type Scraper struct {
	sources []Source
	client  *http.Client
	ttl     time.Duration
	now     func() time.Time

	mu     sync.Mutex
	cached Snapshot
}

// maxBody caps one /metrics answer; a service's is tens of KiB.
const maxBody = 4 << 20

// NewScraper returns a scraper of sources with a per-fetch timeout and a cache ttl.
func NewScraper(sources []Source, timeout, ttl time.Duration) *Scraper {
	return &Scraper{
		sources: sources,
		client: &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirects are not followed")
		}},
		ttl: ttl,
		now: time.Now,
	}
}

// Snapshot returns the cached scrape, refreshing it when older than the ttl. Concurrent
// callers wait for one refresh instead of each scraping.
func (s *Scraper) Snapshot(ctx context.Context) Snapshot {
	if s == nil || len(s.sources) == 0 {
		return Snapshot{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cached.At.IsZero() && s.now().Sub(s.cached.At) < s.ttl {
		return s.cached
	}
	out := Snapshot{Configured: true, Sources: make([]Stats, len(s.sources))}
	var wg sync.WaitGroup
	for i, src := range s.sources {
		wg.Go(func() {
			st, err := s.fetch(ctx, src)
			st.Name = src.Name
			if err != nil {
				st.Err = err.Error()
			}
			out.Sources[i] = st
		})
	}
	wg.Wait()
	out.At = s.now()
	s.cached = out
	return out
}

func (s *Scraper) fetch(ctx context.Context, src Source) (Stats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return Stats{}, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		// The URL is operator config, but keep the message short and free of query strings.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Stats{}, fmt.Errorf("unreachable: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Stats{}, fmt.Errorf("answered HTTP %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "text/plain") {
		return Stats{}, fmt.Errorf("answered %s, not the Prometheus text format", ct)
	}
	return Parse(io.LimitReader(resp.Body, maxBody))
}

// Parse reads the Prometheus text format.
func Parse(r io.Reader) (Stats, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Stats{}, fmt.Errorf("not the Prometheus text format: %v", err)
	}
	var st Stats
	if f := fams[LagMetric]; f != nil {
		st.Lag = map[string]float64{}
		for _, m := range f.GetMetric() {
			v := m.GetGauge().GetValue()
			if m.GetUntyped() != nil {
				v = m.GetUntyped().GetValue()
			}
			st.Lag[label(m, "group")] += v
		}
	}
	st.HTTPP99, st.HTTPCount = p99(fams[HTTPLatency])
	st.DecisionP99, st.Decisions = p99(fams[DecisionLatency])
	return st, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Bucket is a cumulative histogram bucket: Count observations ≤ UpperBound.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// p99 merges every series of a histogram family (all routes, methods, codes) and takes the
// 0.99 quantile.
func p99(f *dto.MetricFamily) (*float64, uint64) {
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM {
		return nil, 0
	}
	byLE := map[float64]float64{}
	var total uint64
	for _, m := range f.GetMetric() {
		h := m.GetHistogram()
		total += h.GetSampleCount()
		for _, b := range h.GetBucket() {
			// +Inf is the sample count, added below whether or not the text listed it.
			if !math.IsInf(b.GetUpperBound(), 1) {
				byLE[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		byLE[math.Inf(1)] += float64(h.GetSampleCount())
	}
	bs := make([]Bucket, 0, len(byLE))
	for le, c := range byLE {
		bs = append(bs, Bucket{le, c})
	}
	q, ok := Quantile(0.99, bs)
	if !ok {
		return nil, total
	}
	return &q, total
}

// Quantile estimates the q-quantile from cumulative buckets as PromQL's histogram_quantile
// does: linear interpolation inside the bucket holding the rank, the lower bound of the first
// bucket taken as 0, and the highest finite bound when the rank lands in +Inf.
func Quantile(q float64, buckets []Bucket) (float64, bool) {
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].UpperBound < buckets[j].UpperBound })
	if len(buckets) == 0 || !math.IsInf(buckets[len(buckets)-1].UpperBound, 1) {
		return 0, false
	}
	total := buckets[len(buckets)-1].Count
	if total == 0 {
		return 0, false
	}
	rank := q * total
	i := sort.Search(len(buckets), func(i int) bool { return buckets[i].Count >= rank })
	if i == len(buckets)-1 {
		if len(buckets) < 2 {
			return 0, false
		}
		return buckets[len(buckets)-2].UpperBound, true
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = buckets[i-1].UpperBound, buckets[i-1].Count
	}
	in := buckets[i].Count - below
	if in <= 0 {
		return buckets[i].UpperBound, true
	}
	return lo + (buckets[i].UpperBound-lo)*(rank-below)/in, true
}

// FormatSeconds prints a latency for people.
func FormatSeconds(s float64) string {
	switch {
	case s < 0.001:
		return strconv.FormatFloat(s*1e6, 'f', 0, 64) + " µs"
	case s < 1:
		return strconv.FormatFloat(s*1e3, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(s, 'f', 2, 64) + " s"
}
