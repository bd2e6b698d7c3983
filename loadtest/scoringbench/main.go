// Command scoringbench measures the scoring service on the real broker, Redis and Postgres,
// each number next to a raw baseline measured in the same run:
//
//   - decisions/s through the scoring binary (rules, model, Redis windows, EOS) against a raw
//     EOS relay (libs/kafka, identity transform) over the same pre-produced input;
//   - decision-sink rows/s (batched inserts, offsets in the same transaction) against
//     row-by-row inserts (one Postgres transaction per decision, offsets included).
//
// Rates are taken between the first and the last output, so process start and group join are
// excluded. Model inference per transaction is `go test -bench` in services/scoring.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/postgres"
	"github.com/vigil-fraud/vigil/loadtest/harness"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

func main() {
	n := flag.Int("n", 5000, "transactions")
	budget := flag.Duration("timeout", 60*time.Second, "bound on the measured part of the run (the build is outside it)")
	pkg := flag.String("scoring", "./services/scoring", "package of the scoring service")
	flag.Parse()
	if err := run(*n, *budget, *pkg); err != nil {
		fmt.Fprintln(os.Stderr, "scoringbench:", err)
		os.Exit(1)
	}
}

type env struct {
	brokers          []string
	pgURL, redisAddr string
}

func loadEnv() (env, error) {
	e := env{brokers: strings.Split(os.Getenv("VIGIL_KAFKA_BROKERS"), ","), pgURL: os.Getenv("VIGIL_POSTGRES_URL"), redisAddr: os.Getenv("VIGIL_REDIS_ADDR")}
	if e.brokers[0] == "" || e.pgURL == "" || e.redisAddr == "" {
		return e, errors.New("VIGIL_KAFKA_BROKERS, VIGIL_POSTGRES_URL and VIGIL_REDIS_ADDR are required: eval \"$(deploy/local/infra.sh env)\"")
	}
	return e, nil
}

func run(n int, budget time.Duration, pkg string) error {
	e, err := loadEnv()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "scoringbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "scoring")
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", pkg, err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	run := fmt.Sprintf("scbench%d", time.Now().UnixNano()%1e9)
	in, relayOut, scoringOut, empty := run+".features", run+".relay", run+".decisions", run+".empty"
	admin, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, 6, in, relayOut, scoringOut, empty, kafka.DLQ(in), kafka.DLQ(empty)); err != nil {
		return err
	}
	if err := produce(ctx, e.brokers, in, n); err != nil {
		return err
	}
	fmt.Printf("scoringbench: %d enriched transactions on %s (6 partitions), schema %s with %d features\n", n, in, features.SchemaVersion, len(features.Names))

	// 1. Raw EOS relay: the same loop with an identity transform.
	relay, err := kafka.NewEOS(kafka.EOSConfig{Brokers: e.brokers, Group: run + "-relay", TransactionalID: run + "-relay-0",
		InputTopics: []string{in}, MaxPollRecords: 500}, func(_ context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
		out := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			out[i] = &kgo.Record{Topic: relayOut, Key: r.Key, Value: r.Value, Headers: r.Headers}
		}
		return out, nil
	}, log)
	if err != nil {
		return err
	}
	rctx, rstop := context.WithCancel(ctx)
	rdone := make(chan error, 1)
	go func() { rdone <- relay.Run(rctx) }()
	relayRate, err := rate(ctx, e.brokers, relayOut, n)
	rstop()
	<-rdone
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}

	// 2. The scoring binary, sink off: decisions/s.
	dbURL, dropDB, err := harness.FreshDatabase(ctx, e.pgURL, run)
	if err != nil {
		return err
	}
	defer dropDB()
	common := []string{"VIGIL_KAFKA_BROKERS=" + strings.Join(e.brokers, ","), "VIGIL_POSTGRES_URL=" + dbURL,
		"VIGIL_REDIS_ADDR=" + e.redisAddr, "VIGIL_REDIS_KEY_PREFIX=" + run + ":", "VIGIL_SCORING_ADDR=127.0.0.1:0", "VIGIL_LOG_LEVEL=warn",
		"VIGIL_SCORING_TRANSACTIONAL_ID=" + run + "-sc-0", "VIGIL_SCORING_SINK_GROUP=" + run + "-sink"}
	scorer, err := start(bin, append(common, "VIGIL_TOPIC_FEATURES="+in, "VIGIL_TOPIC_DECISIONS="+scoringOut,
		"VIGIL_SCORING_GROUP="+run+"-sc", "VIGIL_SCORING_SINK_ENABLED=false"))
	if err != nil {
		return err
	}
	scoringRate, err := rate(ctx, e.brokers, scoringOut, n)
	stop(scorer)
	if err != nil {
		return fmt.Errorf("scoring: %w", err)
	}

	// 3. The decision sink alone (its scorer reads an empty topic) drains the n decisions.
	pool, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxConns: 4})
	if err != nil {
		return err
	}
	defer pool.Close()
	sinkProc, err := start(bin, append(common, "VIGIL_TOPIC_FEATURES="+empty, "VIGIL_TOPIC_DECISIONS="+scoringOut,
		"VIGIL_SCORING_GROUP="+run+"-sc2", "VIGIL_SCORING_TRANSACTIONAL_ID="+run+"-sc-1"))
	if err != nil {
		return err
	}
	sinkRate, err := rowRate(ctx, pool, `SELECT count(*) FROM decisions`, n)
	stop(sinkProc)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}

	// 4. Row-by-row: one Postgres transaction per decision.
	rowRateV, err := rowByRow(ctx, e.brokers, pool, scoringOut, n)
	if err != nil {
		return fmt.Errorf("row-by-row: %w", err)
	}

	fmt.Printf("%-44s %10.0f records/s\n", "raw EOS relay (identity transform)", relayRate)
	fmt.Printf("%-44s %10.0f decisions/s  (%.0f%% of the relay)\n", "scoring (rules, model, Redis windows, EOS)", scoringRate, 100*scoringRate/relayRate)
	fmt.Printf("%-44s %10.0f rows/s\n", "decision sink (batched, offsets in tx)", sinkRate)
	fmt.Printf("%-44s %10.0f rows/s      (sink is %.1fx)\n", "row-by-row inserts (one tx per decision)", rowRateV, sinkRate/rowRateV)
	return nil
}

func produce(ctx context.Context, brokers []string, topic string, n int) error {
	cl, err := kgo.NewClient(kafka.ProducerOptions(brokers)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	base := time.Now().Add(-2 * time.Hour).UTC()
	recs := make([]*kgo.Record, 0, n)
	for i := 0; i < n; i++ {
		amount := int64(1_000 + (i*7919)%90_000)
		if i%10 == 0 {
			amount = 150_000
		}
		values := make([]float64, len(features.Names))
		values[features.Index("amount")] = float64(amount) / 100
		values[features.Index("account_count_1h")] = float64(1 + i%5)
		acct := fmt.Sprintf("acct-%03d", i%500)
		r, err := kafka.NewRecord(topic, acct, &fraudv1.EnrichedTransaction{
			Transaction: &fraudv1.Transaction{Id: fmt.Sprintf("bench:%06d", i), AccountId: acct, AmountMinor: amount, Currency: "EUR",
				Card: &fraudv1.Card{Token: fmt.Sprintf("tok-%04d", i%1000), Bin: "400000", Last4: "0002"}, MerchantId: "m-1",
				TerminalId: fmt.Sprintf("t-%02d", i%50), Country: "FR", DeviceId: "d-1", Ip: "203.0.113.7",
				EventTime: timestamppb.New(base.Add(time.Duration(i) * time.Second)), ReceivedTime: timestamppb.New(base)},
			Features: &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(),
				Names: features.Names, Values: values},
		})
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// rate counts n committed records on topic and returns (n-1)/(last-first).
func rate(ctx context.Context, brokers []string, topic string, n int) (float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var first, last time.Time
	seen := 0
	for seen < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%d of %d records on %s: %w", seen, n, topic, ctx.Err())
		}
		now := time.Now()
		k := len(fs.Records())
		if k > 0 && first.IsZero() {
			first = now
		}
		seen += k
		last = now
	}
	return float64(n-1) / last.Sub(first).Seconds(), nil
}

func rowRate(ctx context.Context, pool *pgxpool.Pool, query string, n int) (float64, error) {
	var first time.Time
	for {
		var c int
		if err := pool.QueryRow(ctx, query).Scan(&c); err != nil {
			return 0, err
		}
		now := time.Now()
		if c > 0 && first.IsZero() {
			first = now
		}
		if c >= n {
			return float64(n) / now.Sub(first).Seconds(), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%d of %d rows: %w", c, n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

const rowInsert = `INSERT INTO decisions (decision_id, transaction_id, account_id, action, score, reasons, model_version, rule_set_version,
	feature_schema_version, review_threshold, decline_threshold, amount_minor, currency, features, received_at, decided_at,
	kafka_partition, kafka_offset, input) VALUES ($1, $2, $3, $4, $5, '[]', $6, $7, $8, $9, $10, $11, $12, '{}', $13, $14, $15, $16, $17)
	ON CONFLICT DO NOTHING`

// rowByRow writes the decisions into a copy of the table, one transaction (row + offset) each.
func rowByRow(ctx context.Context, brokers []string, pool *pgxpool.Pool, topic string, n int) (float64, error) {
	if _, err := pool.Exec(ctx, `TRUNCATE decisions`); err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		recs = append(recs, fs.Records()...)
	}
	start := time.Now()
	for _, r := range recs[:n] {
		d := &fraudv1.Decision{}
		if err := kafka.Decode(r, d); err != nil {
			return 0, err
		}
		input, err := proto.MarshalOptions{Deterministic: true}.Marshal(d.GetInput())
		if err != nil {
			return 0, err
		}
		err = postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, rowInsert, d.GetDecisionId(), d.GetTransactionId(), d.GetAccountId(),
				strings.ToLower(strings.TrimPrefix(d.GetAction().String(), "ACTION_")), d.GetScore(), d.GetModelVersion(),
				d.GetRuleSetVersion(), d.GetFeatureSchemaVersion(), d.GetReviewThreshold(), d.GetDeclineThreshold(),
				d.GetAmountMinor(), d.GetCurrency(), d.GetReceivedTime().AsTime(), d.GetDecidedTime().AsTime(), r.Partition, r.Offset, input); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO kafka_offsets (consumer, topic, partition, next_offset) VALUES ('rowbyrow', $1, $2, $3)
				ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset`, r.Topic, r.Partition, r.Offset+1)
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func start(bin string, env []string) (*exec.Cmd, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	return cmd, cmd.Start()
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
