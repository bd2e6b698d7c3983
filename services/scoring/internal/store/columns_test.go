package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
)

// realisticRecords are decisions.v1 records as the pipeline writes them: decide.Decide over
// the current feature schema (names left to the schema hash), the shipped rules, three
// contributing features, the account window, now and then a list hit or a degraded model.
func realisticRecords(tb testing.TB, n int) []*kgo.Record {
	tb.Helper()
	b, err := os.ReadFile("../../rules.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	rs, err := rules.ParseYAML("rules.yaml", b)
	if err != nil {
		tb.Fatal(err)
	}
	p := decide.DefaultPolicy()
	set, err := rules.Compile(rs, p.Params(), features.Names)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	at := time.Date(2026, 12, 6, 22, 59, 0, 0, time.UTC)
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		amount := int64(rng.ExpFloat64()*8_000) + 50
		values := make([]float64, len(features.Names))
		for j := range values {
			switch {
			case j == 0:
				values[j] = float64(amount) / 100
			case j%3 == 0:
				values[j] = float64(rng.IntN(40)) // counts
			case j%3 == 1:
				values[j] = float64(rng.IntN(1_000_000)) / 100 // sums
			default:
				values[j] = rng.Float64() * 3 // means, ratios
			}
		}
		et := &fraudv1.EnrichedTransaction{
			Transaction: &fraudv1.Transaction{
				Id: fmt.Sprintf("psp-1:tx-%08d", i), Source: "psp-1", ClientTransactionId: fmt.Sprintf("tx-%08d", i),
				AccountId:   fmt.Sprintf("acct-%05d", rng.IntN(20_000)),
				Card:        &fraudv1.Card{Token: fmt.Sprintf("%064x", rng.Uint64()), TokenKeyId: "k1", Bin: "497010", Last4: "1234"},
				AmountMinor: amount, Currency: "EUR", MerchantId: fmt.Sprintf("m-%04d", rng.IntN(2_000)),
				TerminalId: fmt.Sprintf("t-%05d", rng.IntN(10_000)), Mcc: "5411", Country: "FR",
				Channel: fraudv1.Channel(1 + rng.IntN(5)), DeviceId: fmt.Sprintf("dev-%06d", rng.IntN(100_000)),
				Ip: "192.0.2.17", EventTime: timestamppb.New(at), ReceivedTime: timestamppb.New(at.Add(3 * time.Millisecond)),
			},
			Features: &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(), Values: values},
		}
		in := decide.Input{ET: et, WindowOK: true, Window: rules.Window{Reviews1h: rng.IntN(2), Reviews24h: rng.IntN(4), MaxScore24h: rng.Float64()},
			Model:  decide.ModelResult{Version: "lr-fs-3-20261206", Score: rng.Float64(), OK: i%50 != 7},
			Shadow: &decide.Shadow{Version: "gbt-fs-3-20261206", Score: rng.Float64()}}
		for _, j := range []int{0, 1 + rng.IntN(10), 20 + rng.IntN(10)} {
			in.Model.Contributions = append(in.Model.Contributions, decide.Contribution{Name: features.Names[j], Value: values[j], Logit: rng.Float64()})
		}
		if i%20 == 3 {
			in.Hits = []lists.Hit{{List: lists.Block, Kind: lists.KindCard, Reason: "stolen card", ValueHash: lists.ValueHash(lists.KindCard, "tok")}}
		}
		d, err := decide.Decide(in, set, p, at.Add(5*time.Millisecond))
		if err != nil {
			tb.Fatal(err)
		}
		r, err := kafka.NewRecord("decisions.v1", d.GetAccountId(), d)
		if err != nil {
			tb.Fatal(err)
		}
		r.Partition, r.Offset = int32(i%6), int64(i)
		recs = append(recs, r)
	}
	return recs
}

// BenchmarkColumns is the decision sink's CPU per decision before the insert: decoding the
// record and encoding every column, over a batch of realistic decisions.
func BenchmarkColumns(b *testing.B) {
	const size = 500
	recs := realisticRecords(b, size)
	d := NewDecisions(slog.New(slog.DiscardHandler))
	b.ReportAllocs()
	for b.Loop() {
		if _, n, err := d.columns(recs); err != nil || n != size {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/decision")
}

// BenchmarkEncodeArgs is what pgx spends turning the column arrays of BenchmarkColumns into
// the insert's parameters (binary arrays), without a database.
func BenchmarkEncodeArgs(b *testing.B) {
	const size = 500
	c, n, err := NewDecisions(slog.New(slog.DiscardHandler)).columns(realisticRecords(b, size))
	if err != nil || n != size {
		b.Fatal(n, err)
	}
	sd := insertDescription()
	m := pgtype.NewMap()
	var eqb pgx.ExtendedQueryBuilder
	b.ReportAllocs()
	for b.Loop() {
		if err := eqb.Build(m, sd, c.args()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/decision")
}

// insertDescription is what Postgres describes insertDecisions' parameters as.
func insertDescription() *pgconn.StatementDescription {
	text, f8, i8 := uint32(pgtype.TextArrayOID), uint32(pgtype.Float8ArrayOID), uint32(pgtype.Int8ArrayOID)
	return &pgconn.StatementDescription{ParamOIDs: []uint32{text, text, text, text, f8, text, text, text, text, f8, f8, i8,
		text, text, pgtype.TimestamptzArrayOID, pgtype.TimestamptzArrayOID, pgtype.Int4ArrayOID, i8, text, pgtype.ByteaArrayOID,
		pgtype.BoolArrayOID, text, f8, text, text, text}}
}

// TestParamsEncodeAsBefore: the insert's parameters are the same bytes in the same formats
// as when the columns went to pgx as plain slices.
func TestParamsEncodeAsBefore(t *testing.T) {
	t.Parallel()
	recs := realisticRecords(t, 50)
	for i, e := range edgeDecisions {
		if e.err == "" {
			recs = append(recs, edgeRecord(t, i, e))
		}
	}
	c, n, err := NewDecisions(slog.New(slog.DiscardHandler)).columns(recs)
	if err != nil || n != len(recs) {
		t.Fatal(n, err)
	}
	plain := []any{c.decisionID, c.transactionID, c.accountID, c.action, c.score, c.reasons, c.modelVersion, c.ruleSet,
		c.schema, c.reviewT, c.declineT, c.amount, c.currency, c.features, c.received, c.decided, c.partition, c.offset,
		c.inputHash, c.input, c.degraded, c.shadowVersion, c.shadowScore, c.window, c.hits, c.causes}
	sd, m := insertDescription(), pgtype.NewMap()
	var want, got pgx.ExtendedQueryBuilder
	if err := want.Build(m, sd, plain); err != nil {
		t.Fatal(err)
	}
	if err := got.Build(m, sd, c.args()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.ParamFormats, want.ParamFormats) {
		t.Errorf("formats %v, as plain slices %v", got.ParamFormats, want.ParamFormats)
	}
	for i := range want.ParamValues {
		if !bytes.Equal(got.ParamValues[i], want.ParamValues[i]) {
			t.Errorf("$%d: %d bytes, as a plain slice %d", i+1, len(got.ParamValues[i]), len(want.ParamValues[i]))
		}
	}
}
