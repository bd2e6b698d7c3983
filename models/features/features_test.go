package features

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"
	"time"
)

func TestCompute(t *testing.T) {
	// 2024-03-06 is a Wednesday, 2024-03-09 a Saturday.
	tests := []struct {
		name string
		in   Input
		want []float64
	}{
		{
			name: "weekday afternoon",
			in:   Input{AmountMinor: 12345, EventTime: time.Date(2024, 3, 6, 14, 30, 0, 0, time.UTC), AccountCount1h: 3},
			want: []float64{123.45, 3, 0, 0},
		},
		{
			name: "hour 6 is still night",
			in:   Input{AmountMinor: 100, EventTime: time.Date(2024, 3, 6, 6, 59, 59, 0, time.UTC), AccountCount1h: 1},
			want: []float64{1, 1, 1, 0},
		},
		{
			name: "hour 7 is day",
			in:   Input{AmountMinor: 100, EventTime: time.Date(2024, 3, 6, 7, 0, 0, 0, time.UTC), AccountCount1h: 1},
			want: []float64{1, 1, 0, 0},
		},
		{
			name: "midnight saturday",
			in:   Input{AmountMinor: 0, EventTime: time.Date(2024, 3, 9, 0, 0, 0, 0, time.UTC), AccountCount1h: 1},
			want: []float64{0, 1, 1, 1},
		},
		{
			name: "sunday evening",
			in:   Input{AmountMinor: 22001, EventTime: time.Date(2024, 3, 10, 23, 0, 0, 0, time.UTC), AccountCount1h: 7},
			want: []float64{220.01, 7, 0, 1},
		},
		{
			// 2024-03-08 23:30 in UTC-5 is 2024-03-09 04:30 UTC: Saturday night.
			name: "non-UTC time is read in UTC",
			in:   Input{AmountMinor: 5, EventTime: time.Date(2024, 3, 8, 23, 30, 0, 0, time.FixedZone("EST", -5*3600)), AccountCount1h: 2},
			want: []float64{0.05, 2, 1, 1},
		},
		{
			name: "refund keeps its sign",
			in:   Input{AmountMinor: -250, EventTime: time.Date(2024, 3, 6, 12, 0, 0, 0, time.UTC), AccountCount1h: 1},
			want: []float64{-2.5, 1, 0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compute(tt.in)
			if len(got) != len(Names) {
				t.Fatalf("Compute returned %d values, Names has %d", len(got), len(Names))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Compute(%+v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	tests := []struct {
		name string
		want int
	}{
		{"amount", 0},
		{"account_count_1h", 1},
		{"is_night", 2},
		{"is_weekend", 3},
		{"Amount", -1},
		{"", -1},
		{"card_count_1h", -1},
	}
	for _, tt := range tests {
		if got := Index(tt.name); got != tt.want {
			t.Errorf("Index(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range Names {
		if seen[n] {
			t.Errorf("duplicate feature name %q", n)
		}
		seen[n] = true
	}
}

func TestSchemaHash(t *testing.T) {
	sum := sha256.Sum256([]byte("fs-1,amount,account_count_1h,is_night,is_weekend"))
	want := hex.EncodeToString(sum[:])[:16]
	if got := SchemaHash(); got != want {
		t.Errorf("SchemaHash() = %q, want %q", got, want)
	}
	if len(want) != 16 {
		t.Fatalf("hash length %d, want 16", len(want))
	}

	tests := []struct {
		name    string
		version string
		names   []string
	}{
		{"other version", "fs-2", Names},
		{"reordered", SchemaVersion, []string{"account_count_1h", "amount", "is_night", "is_weekend"}},
		{"dropped feature", SchemaVersion, Names[:2]},
	}
	for _, tt := range tests {
		if Hash(tt.version, tt.names) == SchemaHash() {
			t.Errorf("%s: hash collides with the current schema", tt.name)
		}
	}
}
