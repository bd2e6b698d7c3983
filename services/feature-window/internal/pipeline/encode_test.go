package pipeline

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// TestAppendEnriched: the hand-written encoding reads back as the message proto.Marshal
// encodes, and is byte for byte what proto.Marshal makes of it.
func TestAppendEnriched(t *testing.T) {
	t.Parallel()
	tx := &fraudv1.Transaction{Id: "t:1", AccountId: "a", Card: &fraudv1.Card{Token: "tok"}, AmountMinor: 1234,
		Currency: "EUR", Channel: fraudv1.Channel_CHANNEL_MOTO, EventTime: timestamppb.New(time.Unix(1_700_000_000, 5))}
	full := make([]float64, len(features.Names))
	for i := range full {
		full[i] = float64(i)*1.5 - 3
	}
	full[1] = math.Inf(1)
	tests := []struct {
		name     string
		tx       *fraudv1.Transaction
		values   []float64
		computed time.Time
	}{
		{"full vector", tx, full, time.Unix(1_764_000_000, 123_456_789)},
		{"whole second", tx, full, time.Unix(1_764_000_000, 0)},
		{"epoch", tx, full, time.Unix(0, 0)},
		{"before the epoch", tx, full, time.Unix(-5, 7)},
		{"no values", tx, nil, time.Unix(1, 1)},
		{"empty transaction", &fraudv1.Transaction{}, []float64{0}, time.Unix(1, 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			txBytes, err := proto.Marshal(tc.tx)
			if err != nil {
				t.Fatal(err)
			}
			want := &fraudv1.EnrichedTransaction{Transaction: tc.tx, ComputedTime: timestamppb.New(tc.computed),
				Features: &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(), Values: tc.values}}
			got := appendEnriched(nil, txBytes, tc.values, tc.computed)
			if n := enrichedSize(txBytes, len(tc.values)); len(got) > n {
				t.Errorf("encoding is %d bytes, enrichedSize %d", len(got), n)
			}
			var back fraudv1.EnrichedTransaction
			if err := proto.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&back, want) {
				t.Errorf("decoded %v, want %v", &back, want)
			}
			std, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, std) {
				t.Errorf("encoding differs from proto.Marshal:\n got %x\nwant %x", got, std)
			}
		})
	}
}

func TestEnrichedRecord(t *testing.T) {
	t.Parallel()
	in := &kgo.Record{Key: []byte("acct-1"), Value: []byte{0x0a, 0x01, 'x'}}
	tests := []struct {
		name     string
		account  string
		late     bool
		wantKey  string
		wantLate bool
	}{
		{"keyed by account", "acct-1", false, "acct-1", false},
		{"other key", "acct-2", false, "acct-2", false},
		{"late", "acct-1", true, "acct-1", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := enrichedRecord("features.v1", in, tc.account, []float64{1}, time.Unix(1, 0), tc.late)
			if r.Topic != "features.v1" || string(r.Key) != tc.wantKey {
				t.Errorf("record topic %q key %q", r.Topic, r.Key)
			}
			if got := kafka.Header(r, kafka.HeaderType); got != "fraud.v1.EnrichedTransaction" {
				t.Errorf("type header %q", got)
			}
			if got := kafka.Header(r, kafka.HeaderSchema); got != kafka.SchemaVersion {
				t.Errorf("schema header %q", got)
			}
			if got := kafka.Header(r, HeaderLate) == "1"; got != tc.wantLate {
				t.Errorf("late header %v, want %v", got, tc.wantLate)
			}
			var et fraudv1.EnrichedTransaction
			if err := kafka.Decode(r, &et); err != nil {
				t.Fatal(err)
			}
			if et.GetTransaction().GetId() != "x" {
				t.Errorf("transaction %v", et.GetTransaction())
			}
		})
	}
}
