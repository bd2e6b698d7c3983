package decide

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
)

// referenceInputHash is InputHash as it was with encoding/json and fmt (commit d7b615b).
func referenceInputHash(in Input) (string, error) {
	etb, err := proto.MarshalOptions{Deterministic: true}.Marshal(in.ET)
	if err != nil {
		return "", fmt.Errorf("marshal input: %w", err)
	}
	h := sha256.New()
	h.Write([]byte("vigil-decision-input-v1\x00"))
	h.Write(strconv.AppendInt(nil, int64(len(etb)), 10))
	h.Write([]byte{0})
	h.Write(etb)
	w := "-"
	if in.WindowOK {
		b, _ := json.Marshal(in.Window)
		w = string(b)
	}
	hits, _ := json.Marshal(in.Hits)
	fmt.Fprintf(h, "\x00window=%s\x00hits=%s\x00model_ok=%t", w, hits, in.Model.OK)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TestInputHashMatchesReference: input hashes recorded before InputHash stopped using
// encoding/json still verify, whatever the window, the hits and the transaction.
func TestInputHashMatchesReference(t *testing.T) {
	t.Parallel()
	full := enriched(150_000, 3)
	full.Transaction.Card.Bin, full.Transaction.Ip, full.Transaction.Channel = "497010", "192.0.2.1", fraudv1.Channel_CHANNEL_MOTO
	full.Transaction.ReceivedTime = timestamppb.New(time.Date(2026, 12, 6, 0, 0, 0, 1, time.UTC))
	current := enriched(1, 0)
	current.Features = &fraudv1.FeatureVector{SchemaVersion: features.SchemaVersion, SchemaHash: features.SchemaHash(),
		Values: make([]float64, len(features.Names))}
	ets := []*fraudv1.EnrichedTransaction{nil, {}, enriched(1_000, 1), full, current}
	windows := []rules.Window{{}, {Reviews1h: 1, Declines1h: -2, Reviews24h: math.MaxInt64, Declines24h: math.MinInt64, MaxScore24h: 0.1 + tenthHash}}
	for _, s := range []float64{math.Copysign(0, -1), 1e-7, 1e21, 0.99999, 1, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1)} {
		windows = append(windows, rules.Window{Reviews24h: 2, MaxScore24h: s})
	}
	hits := [][]lists.Hit{nil, {}, {{List: lists.Block, Kind: lists.KindCard, Reason: "stolen", ValueHash: "ab"}},
		{{List: lists.Allow, Kind: lists.KindAccount}, {List: `q"<>&\`, Kind: "k\u2028\n", Reason: "é\x00"}, {List: "\xff", Kind: ""}}}
	n := 0
	for _, et := range ets {
		for _, w := range windows {
			for _, hs := range hits {
				for _, ok := range []bool{false, true} {
					in := Input{ET: et, Window: w, WindowOK: ok, Hits: hs, Model: ModelResult{OK: !ok}}
					want, wantErr := referenceInputHash(in)
					got, err := InputHash(in)
					if err != nil || wantErr != nil || got != want {
						t.Fatalf("input %v: hash %s %v, reference %s %v", in, got, err, want, wantErr)
					}
					n++
				}
			}
		}
	}
	t.Logf("%d inputs", n)
}

var tenthHash = 0.2 // a variable: 0.1 + 0.2 in constants would be exactly 0.3
