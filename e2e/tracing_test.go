package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
)

// otlpReceiver is an in-process OTLP/HTTP trace endpoint: what a collector would receive.
type otlpReceiver struct {
	mu     sync.Mutex
	bodies [][]byte // decompressed request bodies, for the card-number check on every byte
	spans  []receivedSpan
}

type receivedSpan struct {
	service string
	*tracev1.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "only POST /v1/traces", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	o.bodies = append(o.bodies, b)
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans = append(o.spans, receivedSpan{service: service, Span: s})
			}
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (o *otlpReceiver) snapshot() ([]receivedSpan, [][]byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]receivedSpan(nil), o.spans...), append([][]byte(nil), o.bodies...)
}

func attr(s *tracev1.Span, key string) (string, bool) {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			v := kv.GetValue()
			if _, ok := v.GetValue().(*commonv1.AnyValue_IntValue); ok {
				return fmt.Sprint(v.GetIntValue()), true
			}
			return v.GetStringValue(), true
		}
	}
	return "", false
}

// traceChain is what one posted transaction's trace must hold.
type traceChain struct {
	server, producer, consumer *receivedSpan
	scoring, sink, alerting    *receivedSpan
}

// chainOf finds, in trace tid, ingest's server span continuing the caller's span, ingest's
// producer span and feature-window's consumer span whose parent is that producer span.
func chainOf(spans []receivedSpan, tid []byte, callerSpan []byte) traceChain {
	var c traceChain
	byID := map[string]*receivedSpan{}
	for i := range spans {
		if bytes.Equal(spans[i].GetTraceId(), tid) {
			byID[string(spans[i].GetSpanId())] = &spans[i]
		}
	}
	for _, s := range byID {
		switch {
		case s.service == "ingest" && s.GetKind() == tracev1.Span_SPAN_KIND_SERVER && bytes.Equal(s.GetParentSpanId(), callerSpan):
			c.server = s
		case s.service == "ingest" && s.GetKind() == tracev1.Span_SPAN_KIND_PRODUCER:
			c.producer = s
		case s.service == "feature-window" && s.GetName() == "feature-window process":
			if p := byID[string(s.GetParentSpanId())]; p != nil && p.service == "ingest" {
				c.consumer = s
			}
		}
	}
	if c.consumer != nil {
		for _, s := range byID {
			if s.service == "scoring" && s.GetName() == "scoring process" && bytes.Equal(s.GetParentSpanId(), c.consumer.GetSpanId()) {
				c.scoring = s
			}
		}
	}
	if c.scoring != nil {
		for _, s := range byID {
			if !bytes.Equal(s.GetParentSpanId(), c.scoring.GetSpanId()) || !strings.HasSuffix(s.GetName(), " apply") {
				continue
			}
			switch s.service {
			case "scoring":
				c.sink = s
			case "alerting":
				c.alerting = s
			}
		}
	}
	return c
}

// TestTraceSpansIngestAndFeatureWindow runs ingest and feature-window as processes exporting
// to an in-process OTLP receiver and follows posted transactions' traces across Kafka.
// Scoring and alerting join the chain once they start their consumer spans.
func TestTraceSpansIngestAndFeatureWindow(t *testing.T) {
	brokers := testinfra.KafkaBrokers(t)
	redisAddr := testinfra.RedisAddr(t)
	_, dbURL := testinfra.NewDatabase(t)

	run := testinfra.UniqueName("e2e-trace-")
	topics := kafka.Topics{Tx: run + ".tx.v1", Features: run + ".features.v1", Decisions: run + ".decisions.v1", Labels: run + ".labels.v1"}
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(context.Background(), admin, 3, topics.All()...); err != nil {
		t.Fatal(err)
	}

	bin := t.TempDir()
	t0 := time.Now()
	build(t, bin, "ingest", "feature-window", "scoring", "alerting")
	t.Logf("built ingest and feature-window in %s", time.Since(t0).Round(time.Millisecond))
	// Everything after the build is bounded: start-up, posts and the wait for spans.
	deadline := time.Now().Add(60 * time.Second)

	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()

	common := []string{
		"VIGIL_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"VIGIL_TOPIC_TX=" + topics.Tx, "VIGIL_TOPIC_FEATURES=" + topics.Features,
		"VIGIL_TOPIC_DECISIONS=" + topics.Decisions, "VIGIL_TOPIC_LABELS=" + topics.Labels,
		"VIGIL_POSTGRES_URL=" + dbURL,
		"VIGIL_REDIS_ADDR=" + redisAddr, "VIGIL_REDIS_KEY_PREFIX=" + run + ":",
		"VIGIL_LOG_LEVEL=debug",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL,
		"OTEL_BSP_SCHEDULE_DELAY=200",
		"OTEL_TRACES_SAMPLER=parentbased_always_on",
	}
	with := func(extra ...string) []string { return append(append([]string(nil), common...), extra...) }
	fwAddr, ingestAddr := freeAddr(t), freeAddr(t)
	fw := start(t, bin, "feature-window", fwAddr, with(
		"VIGIL_FEATURE_WINDOW_ADDR="+fwAddr,
		"VIGIL_FEATURE_WINDOW_GROUP="+run+"-fw", "VIGIL_FEATURE_WINDOW_TRANSACTIONAL_ID="+run+"-fw-0"))
	ingest := start(t, bin, "ingest", ingestAddr, with(
		"VIGIL_INGEST_ADDR="+ingestAddr, "VIGIL_INGEST_API_KEYS=e2e:"+apiKey,
		"VIGIL_INGEST_CARD_HMAC_KEY="+hmacKey))
	scAddr, alAddr := freeAddr(t), freeAddr(t)
	sc := start(t, bin, "scoring", scAddr, with(
		"VIGIL_SCORING_ADDR="+scAddr,
		"VIGIL_SCORING_GROUP="+run+"-sc", "VIGIL_SCORING_TRANSACTIONAL_ID="+run+"-sc-0",
		"VIGIL_SCORING_SINK_GROUP="+run+"-sink"))
	al := start(t, bin, "alerting", alAddr, with(
		"VIGIL_ALERTING_ADDR="+alAddr, "VIGIL_ALERTING_GROUP="+run+"-al",
		"VIGIL_ALERTING_API_TOKEN="+apiToken))
	waitReady(t, fw)
	waitReady(t, ingest)
	waitReady(t, sc)
	waitReady(t, al)

	const n = 3
	callerSpan, _ := hex.DecodeString("00f067aa0ba902b7")
	traceIDs := make([][]byte, n)
	pans := make([]string, n)
	client := &http.Client{Timeout: 10 * time.Second}
	base := time.Now().Add(-time.Minute).UTC()
	for i := range n {
		traceIDs[i] = make([]byte, 16)
		_, _ = rand.Read(traceIDs[i])
		pans[i] = luhn(fmt.Sprintf("5100%011d", 4242+i))
		body, _ := json.Marshal(txn{
			TransactionID: fmt.Sprintf("tr-%d", i), AccountID: fmt.Sprintf("acct-tr-%d", i), CardNumber: pans[i],
			MerchantID: "m-1", TerminalID: "term-1", MCC: "5411", AmountMinor: 1234, Currency: "EUR",
			Country: "FR", Channel: "ecommerce", EventTime: base.Add(time.Duration(i) * time.Second).Format(time.RFC3339),
		})
		req, _ := http.NewRequest(http.MethodPost, "http://"+ingestAddr+"/v1/transactions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Traceparent", "00-"+hex.EncodeToString(traceIDs[i])+"-"+hex.EncodeToString(callerSpan)+"-01")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post %d: %d %s", i, resp.StatusCode, b)
		}
	}

	chains := make([]traceChain, n)
	for {
		spans, _ := recv.snapshot()
		complete := 0
		for i := range n {
			chains[i] = chainOf(spans, traceIDs[i], callerSpan)
			if chains[i].server != nil && chains[i].producer != nil && chains[i].consumer != nil &&
				chains[i].scoring != nil && chains[i].sink != nil && chains[i].alerting != nil {
				complete++
			}
		}
		if complete == n {
			break
		}
		if time.Now().After(deadline) {
			for i, c := range chains {
				t.Logf("trace %x: server %v producer %v consumer %v", traceIDs[i], c.server != nil, c.producer != nil, c.consumer != nil)
			}
			t.Fatalf("%d of %d traces complete within 60s; %d spans received", complete, n, len(spans))
		}
		time.Sleep(100 * time.Millisecond)
	}
	perService := map[string]int{}
	for _, s := range recvSpans(recv) {
		perService[s.service+" "+s.GetName()]++
	}
	t.Logf("%d traces complete %s after the build; spans received: %v", n, time.Since(deadline.Add(-60*time.Second)).Round(time.Millisecond), perService)

	for i, c := range chains {
		// The producer span descends from the server span through ingest's own spans.
		if !descends(recvSpans(recv), c.producer, c.server) {
			t.Errorf("trace %x: the producer span does not descend from the server span", traceIDs[i])
		}
		if !bytes.Equal(c.consumer.GetParentSpanId(), c.producer.GetSpanId()) {
			t.Errorf("trace %x: feature-window span parent %x, want ingest's producer span %x", traceIDs[i], c.consumer.GetParentSpanId(), c.producer.GetSpanId())
		}
		if c.consumer.GetKind() != tracev1.Span_SPAN_KIND_CONSUMER {
			t.Errorf("feature-window span kind %v", c.consumer.GetKind())
		}
		for key, want := range map[string]string{
			"messaging.destination.name": topics.Tx,
			"vigil.transaction_id":       fmt.Sprintf("e2e:tr-%d", i),
		} {
			if got, _ := attr(c.consumer.Span, key); got != want {
				t.Errorf("feature-window span %s = %q, want %q", key, got, want)
			}
		}
		for _, key := range []string{"messaging.destination.partition.id", "messaging.kafka.message.offset"} {
			if _, ok := attr(c.consumer.Span, key); !ok {
				t.Errorf("feature-window span lacks %s", key)
			}
		}
	}

	// No card number anywhere in what was exported: names, attributes, events, resources.
	_, bodies := recv.snapshot()
	for _, b := range bodies {
		for _, pan := range pans {
			if bytes.Contains(b, []byte(pan)) {
				t.Fatalf("an exported span batch contains the card number %s…", pan[:6])
			}
		}
	}

	// The processes expose the call-latency and freshness series on /metrics.
	for addr, want := range map[string][]string{
		fwAddr:     {`vigil_feature_freshness_seconds_count 3`, `vigil_redis_call_duration_seconds_count{op="pipeline"}`},
		ingestAddr: {`vigil_postgres_call_duration_seconds_count{op="select"}`, `vigil_redis_call_duration_seconds_count{op="ping"}`},
	} {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range want {
			if !bytes.Contains(b, []byte(w)) {
				t.Errorf("%s/metrics lacks %s", addr, w)
			}
		}
	}

	// Ingest's request logs carry the trace id of the request they belong to.
	stop(t, ingest)
	stop(t, al)
	stop(t, sc)
	stop(t, fw)
	logs, err := os.ReadFile(ingest.log)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"trace_id":"` + hex.EncodeToString(traceIDs[0]) + `"`; !bytes.Contains(logs, []byte(want)) {
		t.Errorf("ingest logs lack %s", want)
	}
	for _, pan := range pans {
		if bytes.Contains(logs, []byte(pan)) {
			t.Fatal("ingest logs contain a card number")
		}
	}
}

func recvSpans(o *otlpReceiver) []receivedSpan { s, _ := o.snapshot(); return s }

// descends reports whether span has ancestor among its parents in spans.
func descends(spans []receivedSpan, span, ancestor *receivedSpan) bool {
	byID := map[string]*receivedSpan{}
	for i := range spans {
		if bytes.Equal(spans[i].GetTraceId(), span.GetTraceId()) {
			byID[string(spans[i].GetSpanId())] = &spans[i]
		}
	}
	for s, hops := span, 0; s != nil && hops < 16; s, hops = byID[string(s.GetParentSpanId())], hops+1 {
		if bytes.Equal(s.GetSpanId(), ancestor.GetSpanId()) {
			return true
		}
	}
	return false
}

// build compiles the named services into dir.
func build(t *testing.T, dir string, names ...string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./services/"+name)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
}
