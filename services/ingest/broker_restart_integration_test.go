package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/testinfra"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// brokerTestVarEnv names the directory of the private infrastructure the broker restart test
// starts and kills. It is deliberately not VIGIL_VAR_DIR: that one may point at the shared
// infrastructure, which a test must never stop.
const brokerTestVarEnv = "VIGIL_INGEST_BROKER_TEST_VAR_DIR"

// outcome is what one transaction got from ingest.
type outcome int

const (
	acked outcome = iota + 1
	refused
)

// trafficLog records every transaction sent and what came back.
type trafficLog struct {
	mu       sync.Mutex
	outcomes map[string]outcome
	errs     []string
	slowest  time.Duration
	acks     atomic.Int64
	refusals atomic.Int64
}

func (l *trafficLog) record(id string, o outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes[id] = o
	if o == acked {
		l.acks.Add(1)
	} else {
		l.refusals.Add(1)
	}
}

func (l *trafficLog) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, fmt.Sprintf(format, args...))
	}
}

func (l *trafficLog) took(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.slowest = max(l.slowest, d)
}

// TestIntegrationBrokerKillRestart kills the broker with SIGKILL while transactions flow, then
// restarts it. While it is down every request must end within the publish timeout as a 503
// with Retry-After (never a 500, never a hang); after it is back every transaction that got a
// 202 must be in tx.v1 exactly once (read committed), and none twice.
func TestIntegrationBrokerKillRestart(t *testing.T) {
	t.Parallel()
	// The shared Redis and Postgres are needed too: without them fail (or skip with -short)
	// before starting anything.
	testinfra.KafkaBrokers(t)
	testinfra.RedisAddr(t)
	testinfra.PostgresURL(t)
	start := time.Now()
	infra := testinfra.StartPrivate(t, "ingest-broker-test", brokerTestVarEnv)
	t.Logf("private infrastructure up in %s (kafka %s, %s)", time.Since(start).Round(time.Millisecond), infra.Brokers(), infra.Dir)

	const publishTimeout = time.Second
	s := newStack(t, map[string]string{
		"VIGIL_KAFKA_BROKERS":          infra.Brokers(),
		"VIGIL_INGEST_PUBLISH_TIMEOUT": publishTimeout.String(),
		"VIGIL_INGEST_RETRY_AFTER":     "2s",
	})
	srv := httptest.NewServer(s.handler)
	t.Cleanup(srv.Close)
	// Far above any legitimate answer, so a hang is reported rather than waited out.
	client := &http.Client{Timeout: 30 * time.Second}

	log := &trafficLog{outcomes: map[string]outcome{}}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var seq atomic.Int64
	// Single transactions from several clients, and one client sending batches.
	for w := range 6 {
		wg.Go(func() {
			for ctx.Err() == nil {
				id := fmt.Sprintf("bk-%d-%d", w, seq.Add(1))
				sendOne(client, srv.URL, id, log)
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			ids := make([]string, 20)
			for i := range ids {
				ids[i] = fmt.Sprintf("bk-batch-%d", seq.Add(1))
			}
			sendBatch(client, srv.URL, ids, log)
			time.Sleep(20 * time.Millisecond)
		}
	})

	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				stop()
				wg.Wait()
				t.Fatalf("%s: not within %s (acks %d, refusals %d, errors %v)", what, limit, log.acks.Load(), log.refusals.Load(), log.errs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	waitFor("acks before the kill", 60*time.Second, func() bool { return log.acks.Load() >= 300 })
	// A loaded box can make a publish outlast its timeout while the broker is up: a 503 then
	// is correct, so it is reported, not failed.
	refusedUp := log.refusals.Load()
	t.Logf("%d refusals while the broker was up", refusedUp)
	killed := time.Now()
	infra.Kill9Kafka(t)
	acksAtKill := log.acks.Load()
	t.Logf("broker killed after %d acks", acksAtKill)
	// Requests must now be refused, within the publish timeout.
	waitFor("503s after the kill", 60*time.Second, func() bool { return log.refusals.Load() >= refusedUp+50 })
	time.Sleep(2 * publishTimeout)
	acksDuringOutage := log.acks.Load() - acksAtKill

	restart := time.Now()
	infra.Run(t, "up")
	t.Logf("broker down %s, restart took %s", restart.Sub(killed).Round(time.Millisecond), time.Since(restart).Round(time.Millisecond))
	acksAtRestart := log.acks.Load()
	waitFor("acks after the restart", 30*time.Second, func() bool { return log.acks.Load() >= acksAtRestart+300 })
	stop()
	wg.Wait()

	for _, e := range log.errs {
		t.Error(e)
	}
	// Records that were in flight at the kill are acked once the broker answers again; every
	// later one must be refused until then. A handful may still be acked at the kill itself.
	if acksDuringOutage > 200 {
		t.Errorf("%d acks while the broker was down", acksDuringOutage)
	}
	if limit := publishTimeout + 3*time.Second; log.slowest > limit {
		t.Errorf("slowest request took %s, want at most %s (publish timeout %s)", log.slowest, limit, publishTimeout)
	}

	counts := readTopicIDs(t, infra.Brokers(), s.topic)
	var ackedIDs, refusedPresent, missing, dups int
	for id, o := range log.outcomes {
		n := counts[id]
		if n > 1 {
			dups++
			t.Errorf("transaction %s is in %s %d times", id, s.topic, n)
		}
		switch {
		case o == acked:
			ackedIDs++
			if n == 0 {
				missing++
				if missing <= 10 {
					t.Errorf("acked transaction %s is missing from %s", id, s.topic)
				}
			}
		case n > 0:
			refusedPresent++ // a 503 promises nothing either way
		}
	}
	for id := range counts {
		if _, ok := log.outcomes[id]; !ok {
			t.Errorf("%s holds %s, which was never sent", s.topic, id)
		}
	}
	t.Logf("%d transactions: %d acked (%d missing, %d duplicated), %d refused with 503 (%d of them in the topic anyway); slowest answer %s; test took %s",
		len(log.outcomes), ackedIDs, missing, dups, len(log.outcomes)-ackedIDs, refusedPresent, log.slowest.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

func restartBody(id string) string {
	return fmt.Sprintf(`{"transaction_id":%q,"account_id":"acct-%s","card_number":%q,"merchant_id":"m-1",
		"terminal_id":"t-1","mcc":"5999","amount_minor":4200,"currency":"USD","country":"US","channel":"ecommerce",
		"event_time":%q}`, id, id[len(id)-1:], itPAN, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
}

func post(client *http.Client, url, body string, log *trafficLog) (*http.Response, []byte, bool) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		log.fail("build request: %v", err)
		return nil, nil, false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+itEnvKey)
	t0 := time.Now()
	resp, err := client.Do(req)
	log.took(time.Since(t0))
	if err != nil {
		log.fail("request did not complete (hang?): %v", err)
		return nil, nil, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		log.fail("read response: %v", err)
		return nil, nil, false
	}
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "2" {
		log.fail("503 without Retry-After: 2 (got %q): %s", resp.Header.Get("Retry-After"), b)
	}
	return resp, b, true
}

func sendOne(client *http.Client, url, id string, log *trafficLog) {
	resp, body, ok := post(client, url+"/v1/transactions", restartBody(id), log)
	if !ok {
		return
	}
	switch resp.StatusCode {
	case http.StatusAccepted:
		log.record("boot:"+id, acked)
	case http.StatusServiceUnavailable:
		log.record("boot:"+id, refused)
	default:
		log.fail("transaction %s: status %d: %s", id, resp.StatusCode, body)
	}
}

func sendBatch(client *http.Client, url string, ids []string, log *trafficLog) {
	var b bytes.Buffer
	b.WriteString(`{"transactions":[`)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(restartBody(id))
	}
	b.WriteString(`]}`)
	resp, body, ok := post(client, url+"/v1/transactions:batch", b.String(), log)
	if !ok {
		return
	}
	switch resp.StatusCode {
	case http.StatusServiceUnavailable:
		for _, id := range ids {
			log.record("boot:"+id, refused)
		}
	case http.StatusOK:
		var out batchResult
		if err := json.Unmarshal(body, &out); err != nil || len(out.Results) != len(ids) {
			log.fail("batch response %s (%v)", body, err)
			return
		}
		for _, r := range out.Results {
			switch r.Status {
			case http.StatusAccepted:
				log.record("boot:"+ids[r.Index], acked)
			case http.StatusServiceUnavailable:
				log.record("boot:"+ids[r.Index], refused)
			default:
				log.fail("batch item %d: status %d", r.Index, r.Status)
			}
		}
	default:
		log.fail("batch: status %d: %s", resp.StatusCode, body)
	}
}

type batchResult struct {
	Results []struct {
		Index  int `json:"index"`
		Status int `json:"status"`
	} `json:"results"`
}

// readTopicIDs counts the transaction ids in topic, reading committed records up to the end
// offsets of now.
func readTopicIDs(t *testing.T, brokers, topic string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of partition %d: %v", o.Partition, o.Err)
		}
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	counts := map[string]int{}
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: partitions %v not read to their end", topic, want)
		}
		fetches.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch partition %d: %v", p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			var tx fraudv1.Transaction
			if err := kafka.Decode(r, &tx); err != nil {
				t.Fatalf("decode record at %d/%d: %v", r.Partition, r.Offset, err)
			}
			counts[tx.GetId()]++
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return counts
}
