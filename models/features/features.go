// Package features is the single definition of the transaction feature vector. The streaming
// feature-window service and the offline dataset builder both go through it, so a model is
// always trained on exactly the values it will be served with.
//
// The window math is written once, as state machines (state.go): Compute reads an event's
// features from the state before it, Apply folds the event in. Offline runs them over
// in-memory maps; the feature-window service over state it holds in memory and checkpoints to
// Redis (Account.MarshalBinary). TestGolden pins every value of the current SchemaVersion.
// Nothing here knows Redis or Kafka.
//
// Changing Names, their order or how any value is computed changes what a trained model means:
// bump SchemaVersion so artifacts trained on the old schema are refused instead of silently
// mis-scored.
package features

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"
)

// SchemaVersion identifies the feature definition below. Model artifacts record it and scoring
// refuses a model whose schema differs from the stream's.
const SchemaVersion = "fs-3"

// Names lists the features in vector order. Treat it as read-only.
//
// Window features are tiled (see accountWindows): "over 1h" means the 12 five-minute tiles
// ending with the event's tile, so the old edge is ragged by up to one tile. Counts and sums
// include the event itself. Amounts are in major currency units.
var Names = []string{
	"amount",
	"account_count_1h",
	"account_sum_1h",
	"account_mean_1h",
	"account_count_10m",
	"account_sum_10m",
	"account_mean_10m",
	"account_count_1d",
	"account_sum_1d",
	"account_mean_1d",
	"account_count_7d",
	"account_sum_7d",
	"account_mean_7d",
	"account_count_30d",
	"account_sum_30d",
	"account_mean_30d",
	"account_distinct_merchants_1d", // merchants (and below terminals, countries) last seen within 24 h of the event
	"account_distinct_terminals_1d",
	"account_distinct_countries_1d",
	"account_seconds_since_prev",   // since the account's latest earlier-applied event; 30 d when none, 0 when out of order
	"account_amount_ratio_30d",     // amount ÷ the account's mean over its previous 30 daily tiles; 1 with none, or a mean below 1.00
	"account_max_amount_ratio_14d", // highest account_amount_ratio_30d of the account's previous events in 14 daily tiles; 0 with none
	"account_anomalies_14d",        // of those events, how many had account_amount_ratio_30d >= 3
	"card_count_1h",
	"card_count_1d",
	"device_distinct_accounts_1d",
	"terminal_count_1d", // terminal features cover the whole TerminalTiles that ended at least LabelDelay before the event
	"terminal_count_7d",
	"terminal_count_30d",
	"terminal_fraud_ratio_1d",
	"terminal_fraud_ratio_7d",
	"terminal_fraud_ratio_30d",
	"is_weekend", // UTC Saturday or Sunday
	"is_night",   // UTC hour <= 6
	"channel_card_present",
	"channel_ecommerce",
	"channel_moto",
	"channel_atm",
	"channel_contactless",
	"country_mismatch", // 1 when the country differs from the account's first seen country
}

// Channels are the channel names of Event.Channel, in the order of the channel_* features.
var Channels = []string{"card_present", "ecommerce", "moto", "atm", "contactless"}

// Config holds the parameters of the definitions. Stream and offline must use the same values.
type Config struct {
	// LabelDelay: terminal features use tiles that ended at least this long before the event,
	// and a fraud label counts only if known within LabelDelay of its transaction.
	LabelDelay time.Duration
	// AllowedLateness: an event more than this much older than its account's newest applied
	// event is late: it gets features but does not update any window.
	AllowedLateness time.Duration
}

// DefaultConfig is the configuration the service and NewOffline use unless told otherwise.
func DefaultConfig() Config {
	return Config{LabelDelay: 7 * 24 * time.Hour, AllowedLateness: time.Hour}
}

// Event is one transaction as the feature definitions see it.
type Event struct {
	TransactionID string
	AccountID     string
	CardToken     string
	MerchantID    string
	TerminalID    string
	DeviceID      string
	Country       string
	Channel       string // one of Channels; anything else sets no channel feature
	AmountMinor   int64
	EventTime     time.Time
	// ReceivedAt is when Vigil received the transaction (ingest's clock; zero offline). A
	// client's retry of the same transaction comes soon after in this time, however far its
	// event time lies behind the account's newest: duplicates are remembered by it.
	ReceivedAt time.Time
}

// Label is an analyst's (or the simulator's) verdict on one transaction. Only the first label
// of a transaction counts, and only a fraud label known within LabelDelay of the transaction.
type Label struct {
	TransactionID   string
	TerminalID      string
	Fraud           bool
	TransactionTime time.Time
	KnownAt         time.Time
}

// Index returns the position of name in the vector, or -1 if the schema has no such feature.
func Index(name string) int {
	for i, n := range Names {
		if n == name {
			return i
		}
	}
	return -1
}

// SchemaHash fingerprints the current schema; see Hash.
func SchemaHash() string { return schemaHash() }

var schemaHash = sync.OnceValue(func() string { return Hash(SchemaVersion, Names) })

// NamesOf names the values of a feature vector of schema version and hash. features.v1
// records do not repeat the names (they are fixed by the version and hash: a third of a
// record's bytes went to them); carried is what a record has in its names field, which older
// records filled. NamesOf returns carried when not empty, Names when version and hash are the
// current schema's, and nil when it cannot tell.
func NamesOf(version, hash string, carried []string) []string {
	switch {
	case len(carried) > 0:
		return carried
	case version == SchemaVersion && hash == SchemaHash():
		return Names
	}
	return nil
}

// Hash fingerprints a schema version together with its feature names: the first 16 hex
// characters of sha256("<version>,<name1>,<name2>,..."). It catches a reordered or renamed
// feature list that kept its version string.
func Hash(version string, names []string) string {
	parts := make([]string, 0, len(names)+1)
	parts = append(parts, version)
	parts = append(parts, names...)
	sum := sha256.Sum256([]byte(strings.Join(parts, ",")))
	return hex.EncodeToString(sum[:])[:16]
}

func boolToFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
