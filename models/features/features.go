// Package features is the single definition of the transaction feature
// vector. The streaming feature-window service and the offline dataset
// builder both call Compute, so a model is always trained on exactly the
// values it will be served with.
//
// Changing Names, their order or how any value is computed changes what a
// trained model means: bump SchemaVersion so artifacts trained on the old
// schema are refused instead of silently mis-scored.
package features

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// SchemaVersion identifies the feature definition below. Model artifacts
// record it and scoring refuses a model whose schema differs from the stream's.
const SchemaVersion = "fs-1"

// Names lists the features in vector order. Treat it as read-only: it is a
// variable only so callers can range over it and pass it around as a slice.
var Names = []string{
	"amount",           // major currency units
	"account_count_1h", // account's transactions in (t-1h, t], this one included
	"is_night",         // 1 if the UTC hour of the event is <= 6
	"is_weekend",       // 1 if the UTC day of the event is Saturday or Sunday
}

// Input is what Compute needs from one transaction and its windows.
type Input struct {
	AmountMinor int64
	EventTime   time.Time
	// AccountCount1h counts the account's transactions with event time in
	// (EventTime-1h, EventTime], including this one, so it is at least 1 for
	// a real transaction.
	AccountCount1h int64
}

// Compute returns the feature values in Names order.
func Compute(in Input) []float64 {
	// UTC, not the server's zone, so the stream and a backfill running on
	// differently configured hosts agree on the hour and the weekday.
	t := in.EventTime.UTC()
	return []float64{
		float64(in.AmountMinor) / 100,
		float64(in.AccountCount1h),
		boolToFloat(t.Hour() <= 6),
		boolToFloat(t.Weekday() == time.Saturday || t.Weekday() == time.Sunday),
	}
}

// Index returns the position of name in the vector, or -1 if the schema has
// no such feature.
func Index(name string) int {
	for i, n := range Names {
		if n == name {
			return i
		}
	}
	return -1
}

// SchemaHash fingerprints the current schema; see Hash.
func SchemaHash() string {
	return Hash(SchemaVersion, Names)
}

// Hash fingerprints a schema version together with its feature names: the
// first 16 hex characters of sha256("<version>,<name1>,<name2>,..."). It
// catches a reordered or renamed feature list that kept its version string.
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
