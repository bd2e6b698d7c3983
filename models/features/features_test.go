package features

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// 2024-03-06 is a Wednesday, 2024-03-09 a Saturday.
var wed = time.Date(2024, 3, 6, 14, 30, 0, 0, time.UTC)

func ev(id, acct string, at time.Time, minor int64) Event {
	return Event{TransactionID: id, AccountID: acct, AmountMinor: minor, EventTime: at}
}

func val(v []float64, name string) float64 { return v[Index(name)] }

func TestVectorShapeAndTransactionFeatures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ev   Event
		want map[string]float64
	}{
		{"weekday afternoon", Event{AccountID: "a", AmountMinor: 12345, EventTime: wed, Channel: "ecommerce"},
			map[string]float64{"amount": 123.45, "is_night": 0, "is_weekend": 0, "channel_ecommerce": 1, "channel_atm": 0, "account_count_1h": 1}},
		{"hour 6 is still night", ev("", "a", time.Date(2024, 3, 6, 6, 59, 59, 0, time.UTC), 100), map[string]float64{"is_night": 1}},
		{"hour 7 is day", ev("", "a", time.Date(2024, 3, 6, 7, 0, 0, 0, time.UTC), 100), map[string]float64{"is_night": 0}},
		{"midnight saturday", ev("", "a", time.Date(2024, 3, 9, 0, 0, 0, 0, time.UTC), 0), map[string]float64{"is_night": 1, "is_weekend": 1}},
		{"non-UTC time is read in UTC", ev("", "a", time.Date(2024, 3, 8, 23, 30, 0, 0, time.FixedZone("EST", -5*3600)), 5),
			map[string]float64{"is_night": 1, "is_weekend": 1, "amount": 0.05}},
		{"refund keeps its sign", ev("", "a", wed, -250), map[string]float64{"amount": -2.5, "account_sum_1h": -2.5}},
		{"unknown channel sets none", Event{AccountID: "a", EventTime: wed, Channel: "phone"}, map[string]float64{"channel_card_present": 0, "channel_ecommerce": 0}},
		{"first event has no previous", ev("", "a", wed, 1), map[string]float64{"account_seconds_since_prev": (30 * day).Seconds(), "account_amount_ratio_30d": 1}},
		{"no card, device, terminal", ev("", "a", wed, 1), map[string]float64{"card_count_1h": 0, "device_distinct_accounts_1d": 0, "terminal_count_30d": 0}},
	}
	for _, tt := range tests {
		v := NewOffline().Next(tt.ev)
		if len(v) != len(Names) {
			t.Fatalf("%s: %d values, %d names", tt.name, len(v), len(Names))
		}
		for n, want := range tt.want {
			if Index(n) < 0 {
				t.Fatalf("no feature %s", n)
			}
			if got := val(v, n); got != want {
				t.Errorf("%s: %s = %v, want %v", tt.name, n, got, want)
			}
		}
	}
}

func TestIndex(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want int
	}{{"amount", 0}, {"account_count_1h", 1}, {"Amount", -1}, {"", -1}}
	for _, tt := range tests {
		if got := Index(tt.name); got != tt.want {
			t.Errorf("Index(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestNamesAreUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, n := range Names {
		if seen[n] {
			t.Errorf("duplicate feature name %q", n)
		}
		seen[n] = true
	}
}

func TestSchemaHash(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("fs-3," + strings.Join(Names, ",")))
	if got, want := SchemaHash(), hex.EncodeToString(sum[:])[:16]; got != want {
		t.Errorf("SchemaHash() = %q, want %q", got, want)
	}
	if Hash("fs-1", Names) == SchemaHash() || Hash(SchemaVersion, Names[:2]) == SchemaHash() {
		t.Error("hash collides with another schema")
	}
}

func TestTileIndex(t *testing.T) {
	t.Parallel()
	epoch := time.Unix(0, 0)
	tests := []struct {
		at   time.Time
		tile time.Duration
		want int64
	}{
		{epoch, time.Minute, 0},
		{epoch.Add(59999 * time.Millisecond), time.Minute, 0},
		{epoch.Add(time.Minute), time.Minute, 1},
		{epoch.Add(-time.Millisecond), time.Minute, -1}, // floor, not truncation, before 1970
		{epoch.Add(-time.Minute), time.Minute, -1},
		{epoch.Add(-time.Minute - time.Millisecond), time.Minute, -2},
		{epoch.Add(25 * time.Hour), day, 1},
	}
	for _, tt := range tests {
		if got := TileIndex(tt.at, tt.tile); got != tt.want {
			t.Errorf("TileIndex(%v, %v) = %d, want %d", tt.at.UTC(), tt.tile, got, tt.want)
		}
	}
}

// TestWindowEdges: a window is the n tiles ending with the event's tile.
func TestWindowEdges(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC) // on a 5-minute tile boundary
	tests := []struct {
		name    string
		gap     time.Duration
		feature string
		want    float64
	}{
		{"same tile", time.Minute, "account_count_1h", 2},
		{"59m: same 12 tiles", 59 * time.Minute, "account_count_1h", 2},
		{"60m: first tile left", 60 * time.Minute, "account_count_1h", 1},
		{"64m59: ragged edge by one tile", 64*time.Minute + 59*time.Second, "account_count_1h", 1},
		{"9m59s in 10m", 9*time.Minute + 59*time.Second, "account_count_10m", 2},
		{"10m out of 10m", 10 * time.Minute, "account_count_10m", 1},
		{"23h in 1d", 23 * time.Hour, "account_count_1d", 2},
		{"24h out of 1d", 24 * time.Hour, "account_count_1d", 1},
		{"29d in 30d", 29 * day, "account_count_30d", 2},
		{"30d out of 30d", 30 * day, "account_count_30d", 1},
		{"sum", time.Minute, "account_sum_1h", 3},
		{"mean", time.Minute, "account_mean_1h", 1.5},
		{"seconds since prev", 90 * time.Second, "account_seconds_since_prev", 90},
	}
	for _, tt := range tests {
		o := NewOffline()
		o.Next(ev("1", "a", t0, 100))
		v := o.Next(ev("2", "a", t0.Add(tt.gap), 200))
		if got := val(v, tt.feature); got != tt.want {
			t.Errorf("%s: %s = %v, want %v", tt.name, tt.feature, got, tt.want)
		}
	}
}

func TestLateness(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC)
	cfg := Config{LabelDelay: 7 * day, AllowedLateness: 30 * time.Minute}
	tests := []struct {
		name     string
		lateBy   time.Duration
		wantLate bool
	}{
		{"in order", -time.Minute, false},
		{"30m late: within lateness, folded into its tile", 30 * time.Minute, false},
		{"31m late: passed on, not applied", 31 * time.Minute, true},
	}
	for _, tt := range tests {
		o := NewOfflineConfig(cfg)
		o.Next(ev("1", "a", t0, 100))
		at := t0.Add(-tt.lateBy)
		first := o.Next(ev("2", "a", at, 100))
		if (o.Late == 1) != tt.wantLate {
			t.Errorf("%s: late = %d, want %v", tt.name, o.Late, tt.wantLate)
		}
		// A late event still gets features, itself counted.
		if got := val(first, "account_count_10m"); got < 1 {
			t.Errorf("%s: own count %v", tt.name, got)
		}
		// Another event in the same tile sees the earlier one only if it was applied.
		v := o.Next(ev("3", "a", at, 100))
		want := 3.0 // 1 (when in the same tile), 2 and this one
		if tt.lateBy > 0 {
			want = 2 // 1 is in a later tile; 2 and this one
		}
		if tt.wantLate {
			want = 1
		}
		if got := val(v, "account_count_10m"); got != want {
			t.Errorf("%s: account_count_10m = %v, want %v", tt.name, got, want)
		}
	}
}

func TestTTLsCoverWhatIsRead(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{DefaultConfig(), {LabelDelay: 3 * day, AllowedLateness: 0}} {
		// The 30-day window of day tiles reaches back up to 31 days before the event.
		if got := AccountTTL(cfg); got < 31*day+cfg.AllowedLateness {
			t.Errorf("AccountTTL(%+v) = %v", cfg, got)
		}
		// Terminal reads reach 30 days behind a newest day ceil(delay)+1 days back.
		if got := LabelTTL(cfg); got < cfg.LabelDelay+32*day {
			t.Errorf("LabelTTL(%+v) = %v", cfg, got)
		}
		if got := DeviceTTL(cfg); got < day+cfg.AllowedLateness {
			t.Errorf("DeviceTTL(%+v) = %v", cfg, got)
		}
	}
}

func TestPruningKeepsWhatLaterEventsRead(t *testing.T) {
	t.Parallel()
	o := NewOffline()
	t0 := time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC)
	for i := range 200 {
		o.Next(ev(fmt.Sprint("x", i), "a", t0.Add(time.Duration(i)*7*time.Minute), 100))
	}
	if n := len(o.accounts["a"].Windows[0]); n > 10+int(DefaultConfig().AllowedLateness/time.Minute)+1 {
		t.Errorf("10m tiles not pruned: %d tiles", n)
	}
	v := o.Next(ev("y", "a", t0.Add(200*7*time.Minute), 100))
	if val(v, "account_count_1h") != 1+7 { // 7-minute spacing: 7 earlier events in the 12 five-minute tiles
		t.Errorf("count after pruning = %v", val(v, "account_count_1h"))
	}
}

func TestCrossEntityFeatures(t *testing.T) {
	t.Parallel()
	o := NewOffline()
	t0 := time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC)
	e := func(acct, merch, country string, at time.Duration) Event {
		return Event{AccountID: acct, CardToken: "card-" + acct, MerchantID: merch, TerminalID: "term-" + merch, DeviceID: "dev", Country: country, EventTime: t0.Add(at), AmountMinor: 1000}
	}
	o.Next(e("a", "m1", "FR", 0))
	o.Next(e("b", "m1", "FR", time.Minute))
	o.Next(e("a", "m2", "DE", 2*time.Minute))
	v := o.Next(e("a", "m2", "FR", 3*time.Minute))
	want := map[string]float64{
		"account_distinct_merchants_1d": 2, "account_distinct_terminals_1d": 2, "account_distinct_countries_1d": 2,
		"card_count_1h": 3, "card_count_1d": 3, "device_distinct_accounts_1d": 2, "country_mismatch": 0,
		"account_seconds_since_prev": 60,
	}
	for n, w := range want {
		if got := val(v, n); got != w {
			t.Errorf("%s = %v, want %v", n, got, w)
		}
	}
	v = o.Next(e("a", "m2", "DE", 4*time.Minute))
	if val(v, "country_mismatch") != 1 {
		t.Error("DE differs from the account's first country FR")
	}
}

// TestTerminalDelayedFraudRatio: terminal windows of whole 3-hour tiles that ended at least
// the delay before the event, with labels known within the delay.
func TestTerminalDelayedFraudRatio(t *testing.T) {
	t.Parallel()
	d0 := time.Date(2018, 4, 2, 10, 0, 0, 0, time.UTC) // tile [09:00, 12:00)
	cfg := DefaultConfig()
	tests := []struct {
		name       string
		probeAfter time.Duration
		labelAt    time.Duration // after the transaction
		wantCount  float64
		wantRatio  float64
	}{
		{"tile ends less than the delay before: nothing", 7*day + 2*time.Hour - time.Second, 6 * day, 0, 0},
		{"tile ends the delay before: counted", 7*day + 2*time.Hour, 6 * day, 2, 0.5},
		{"label known at the delay counts", 7*day + 2*time.Hour, 7 * day, 2, 0.5},
		{"label later than the delay ignored", 8 * day, 7*day + time.Second, 2, 0},
		{"last moment in the 1-day window", 8*day + 2*time.Hour - time.Second, 6 * day, 2, 0.5},
		{"out of the 1-day window", 8*day + 2*time.Hour, 6 * day, 0, 0},
	}
	for _, tt := range tests {
		o := NewOfflineConfig(cfg)
		o.Next(Event{TransactionID: "f", AccountID: "a", TerminalID: "T", EventTime: d0})
		o.Next(Event{TransactionID: "g", AccountID: "b", TerminalID: "T", EventTime: d0.Add(time.Hour)})
		o.AddLabel(Label{TransactionID: "f", TerminalID: "T", Fraud: true, TransactionTime: d0, KnownAt: d0.Add(tt.labelAt)})
		o.AddLabel(Label{TransactionID: "f", TerminalID: "T", Fraud: true, TransactionTime: d0, KnownAt: d0.Add(tt.labelAt)}) // duplicate
		v := o.Next(Event{TransactionID: "p", AccountID: "c", TerminalID: "T", EventTime: d0.Add(tt.probeAfter)})
		if got := val(v, "terminal_count_1d"); got != tt.wantCount {
			t.Errorf("%s: terminal_count_1d = %v, want %v", tt.name, got, tt.wantCount)
		}
		if got := val(v, "terminal_fraud_ratio_1d"); got != tt.wantRatio {
			t.Errorf("%s: terminal_fraud_ratio_1d = %v, want %v", tt.name, got, tt.wantRatio)
		}
		if got := val(v, "terminal_count_30d"); tt.probeAfter >= 7*day+2*time.Hour && got != 2 {
			t.Errorf("%s: terminal_count_30d = %v, want 2", tt.name, got)
		}
	}
}

// TestTerminalTilesRead: the newest tile read ended at or before t - delay, and every label
// that can count for it is known by then.
func TestTerminalTilesRead(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{DefaultConfig(), {LabelDelay: 90 * time.Minute}, {LabelDelay: 0}} {
		for _, at := range []time.Time{time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC), time.Date(2018, 4, 2, 13, 59, 59, 0, time.UTC)} {
			lo, hi := TerminalTilesRead(cfg, at)
			end := time.UnixMilli((hi + 1) * TerminalTile.Milliseconds()).UTC()
			if end.After(at.Add(-cfg.LabelDelay)) || !end.Add(TerminalTile).After(at.Add(-cfg.LabelDelay)) {
				t.Errorf("delay %v, event %v: newest tile ends %v, want the last end at or before %v", cfg.LabelDelay, at, end, at.Add(-cfg.LabelDelay))
			}
			// The last transaction of tile hi has its label counted only if known by end + delay <= at.
			l := Label{TransactionID: "x", TerminalID: "T", Fraud: true, TransactionTime: end.Add(-time.Millisecond), KnownAt: end.Add(-time.Millisecond).Add(cfg.LabelDelay)}
			if tile, ok := LabelFraudTile(cfg, l); !ok || tile != hi || l.KnownAt.After(at) {
				t.Errorf("delay %v, event %v: label of tile %d (counts %v) known at %v", cfg.LabelDelay, at, tile, ok, l.KnownAt)
			}
			if hi-lo+1 != 30*8 {
				t.Errorf("reads %d tiles, want 30 days of 3 hours", hi-lo+1)
			}
		}
	}
}

// probeAfter runs one account's history from t0 (the amounts in minor units, one event an
// hour) and returns the features of a probe of amount probe, an hour after the last plus gap.
func probeAfter(t0 time.Time, before []int64, gap time.Duration, probe int64) []float64 {
	o := NewOffline()
	for i, m := range before {
		o.Next(ev(fmt.Sprint(i), "a", t0.Add(time.Duration(i)*time.Hour), m))
	}
	return o.Next(ev("p", "a", t0.Add(time.Duration(len(before))*time.Hour+gap), probe))
}

// TestAmountRatio: the amount over the account's mean amount of its previous 30 daily tiles.
func TestAmountRatio(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		before []int64 // minor units, one event an hour before the probe each
		gap    time.Duration
		probe  int64
		want   float64
	}{
		{"no history", nil, 0, 4000, 1},
		{"twice the mean", []int64{1000, 3000}, 0, 4000, 2},
		{"a fifth of it", []int64{5000}, 0, 1000, 0.2},
		{"mean below 1.00", []int64{50, 120}, 0, 4000, 1},
		{"refunds", []int64{-3000, 1000}, 0, 4000, 1},
		{"30 daily tiles later: forgotten", []int64{1000}, 30 * day, 4000, 1},
		{"29 daily tiles later: kept", []int64{1000}, 29 * day, 4000, 4},
	}
	for _, tt := range tests {
		v := probeAfter(t0, tt.before, tt.gap, tt.probe)
		if got := val(v, "account_amount_ratio_30d"); got != tt.want {
			t.Errorf("%s: account_amount_ratio_30d = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestDuplicateTransactionIsNotCountedTwice: a transaction sent again (a client retry after a
// 503 whose record was written anyway) is recognised by its id, within the dedup window and
// bound, and changes nothing.
func TestDuplicateTransactionIsNotCountedTwice(t *testing.T) {
	t.Parallel()
	o := NewOffline()
	t0 := time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC)
	first := o.Next(ev("t1", "a", t0, 100))
	if first == nil || o.Next(ev("t1", "a", t0, 100)) != nil {
		t.Fatal("the second t1 was not recognised as a duplicate")
	}
	if v := o.Next(ev("t2", "a", t0.Add(time.Minute), 100)); val(v, "account_count_1h") != 2 {
		t.Errorf("account_count_1h = %v after a duplicate, want 2", val(v, "account_count_1h"))
	}
	if o.Next(ev("t1", "b", t0, 100)) == nil {
		t.Error("the same id on another account is another transaction")
	}
	// Beyond the window (by the account's newest event) and beyond the bound, ids are forgotten.
	o.Next(ev("t3", "a", t0.Add(DedupWindow+time.Hour), 100))
	if o.Next(ev("t1", "a", t0.Add(DedupWindow+2*time.Hour), 100)) == nil {
		t.Error("t1 is older than the dedup window and should count again")
	}
	for i := range MaxDedupIDs + 10 {
		o.Next(ev(fmt.Sprint("many", i), "c", t0.Add(time.Duration(i)*time.Second), 100))
	}
	if n := len(o.accounts["c"].TxIDs); n != MaxDedupIDs {
		t.Errorf("%d ids remembered, want the bound %d", n, MaxDedupIDs)
	}
	if o.Next(ev("many0", "c", t0, 100)) == nil {
		t.Error("the oldest id beyond the bound should be forgotten")
	}
	if o.Duplicates != 1 {
		t.Errorf("Duplicates = %d, want 1", o.Duplicates)
	}
}

// TestDuplicateRememberedByReceiptTime: in the stream, ids are remembered by when Vigil
// received them. A retry that arrives minutes after the original is recognised even when the
// account's newer transactions lie days ahead in event time (the chaos harness's simulator
// replays weeks in minutes; found by `make chaos`: 10 transactions counted twice).
func TestDuplicateRememberedByReceiptTime(t *testing.T) {
	t.Parallel()
	o := NewOffline()
	t0 := time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC)
	r0 := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	at := func(id string, event time.Duration, received time.Duration) Event {
		e := ev(id, "a", t0.Add(event), 100)
		e.ReceivedAt = r0.Add(received)
		return e
	}
	if o.Next(at("t1", 0, 0)) == nil {
		t.Fatal("t1 not emitted")
	}
	// Three simulated days of the account's transactions, received within two minutes.
	for i := range 30 {
		o.Next(at(fmt.Sprint("later", i), time.Duration(i+1)*150*time.Minute, time.Duration(i+1)*4*time.Second))
	}
	if o.Next(at("t1", 0, 3*time.Minute)) != nil {
		t.Error("a retry three minutes later was counted again")
	}
	// A day of receipt time later, the id is forgotten.
	o.Next(at("much-later", 80*time.Hour, DedupWindow+time.Hour))
	if o.Next(at("t1", 0, DedupWindow+2*time.Hour)) == nil {
		t.Error("t1 received again beyond the window should count again")
	}
}

// TestAmountAnomalies: the highest amount ratio of the account's previous events within 14
// daily tiles, and how many of them were at least 3 times the mean before them.
func TestAmountAnomalies(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2018, 4, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		before    []int64 // minor units, one event an hour before the probe each
		gap       time.Duration
		wantMax   float64
		wantCount float64
	}{
		{"no history", nil, 0, 0, 0},
		{"first event has ratio 1", []int64{1000}, 0, 1, 0},
		{"5 times the mean", []int64{1000, 1000, 5000}, 0, 5, 1},
		{"2.5 times: not anomalous", []int64{1000, 2500}, 0, 2.5, 0},
		{"exactly 3 times counts", []int64{1000, 3000}, 0, 3, 1},
		{"two anomalies", []int64{1000, 4000, 1000, 10000}, 0, 10000.0 / 2000, 2},
		{"13 daily tiles later: kept", []int64{1000, 5000}, 13 * day, 5, 1},
		{"14 daily tiles later: forgotten", []int64{1000, 5000}, 14 * day, 0, 0},
	}
	for _, tt := range tests {
		v := probeAfter(t0, tt.before, tt.gap, 1000)
		if got := val(v, "account_max_amount_ratio_14d"); got != tt.wantMax {
			t.Errorf("%s: account_max_amount_ratio_14d = %v, want %v", tt.name, got, tt.wantMax)
		}
		if got := val(v, "account_anomalies_14d"); got != tt.wantCount {
			t.Errorf("%s: account_anomalies_14d = %v, want %v", tt.name, got, tt.wantCount)
		}
	}
}

func TestNamesOf(t *testing.T) {
	t.Parallel()
	carried := []string{"a", "b"}
	tests := []struct {
		name          string
		version, hash string
		carried       []string
		want          []string
	}{
		{"current schema, names left out", SchemaVersion, SchemaHash(), nil, Names},
		{"names carried win", "fs-1", "x", carried, carried},
		{"names carried, current schema", SchemaVersion, SchemaHash(), carried, carried},
		{"other hash, no names", SchemaVersion, "0000000000000000", nil, nil},
		{"other version, no names", "fs-1", SchemaHash(), nil, nil},
		{"nothing", "", "", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := NamesOf(tc.version, tc.hash, tc.carried); !slices.Equal(got, tc.want) {
				t.Errorf("NamesOf(%q, %q, %v) = %v, want %v", tc.version, tc.hash, tc.carried, got, tc.want)
			}
		})
	}
}
