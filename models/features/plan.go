package features

import (
	"strconv"
	"time"
)

// A Plan is what one event or label does to the window store: reads taken before any update,
// then updates. Both executors (MemStore here, the Lua script of the feature-window service)
// interpret it the same way:
//
//  1. Mark (stream only): if Offset <= the partition's applied watermark, return the result
//     stored for that offset (Replayed, with its first status) without touching anything; if it
//     expired, do the reads only (StatusReplayedStale).
//  2. Reads, in order.
//  3. Guard: if hash Keys[Guard.Key] field Guard.Field holds a number > Guard.Min the event is
//     late (StatusLate) and no update is made. Once: if Keys[Once.Key] exists the label was
//     already applied (StatusDuplicate); otherwise it is created with Once.TTL.
//  4. Updates, in order, unless late or duplicate.
//  5. Mark: advance the watermark to Offset and store (status, reads) for Mark.ResultTTL.
//
// Steps 1–5 run atomically, so a record's contribution is applied exactly once and a replay of
// an applied offset returns what the first run returned.
type Plan struct {
	Keys   []string // logical keys; the Redis adapter prefixes them
	Reads  []Op
	Writes []Op
	Guard  *Guard
	Once   *Once
	Mark   *Mark

	tx  *txReads
	cfg Config
}

// Op is one read or update on the hash Keys[Key].
//
// Reads: OpSum returns, for each of Suffixes, the sum of the integer fields "<i>:<suffix>" for
// i in [Lo, Hi] (one read per suffix, one HMGET); OpRecent counts the fields whose value is >
// Num, ignoring field Field; OpGet returns Field's value or "".
// Updates: OpIncr adds Value to Field and marks the key "created" when the result equals Value
// (a new field, for the positive counts that precede every prune); OpMax
// sets Field to Value when it is absent or smaller (created when absent); OpSetNX sets Field
// when absent; OpPruneTiles deletes fields "<n>:..." with n < Num, and OpPruneRecent fields
// whose value < Num, both only when an earlier update of this plan created a field of the key
// (so pruning costs one scan per new tile, not per event); OpTTL sets the key's TTL to Num ms.
type Op struct {
	Kind  OpKind
	Key   int
	Field string
	Value string
	// Lo, Hi and Suffixes describe OpSum's tiles; the interpreter builds the field names, which
	// keeps the plan sent to Redis small.
	Lo, Hi   int64
	Suffixes []string
	Num      int64
}

// OpKind names an operation; the strings are the Lua script's opcodes.
type OpKind string

// The operations of a Plan.
const (
	OpSum         OpKind = "sum"
	OpRecent      OpKind = "recent"
	OpGet         OpKind = "get"
	OpIncr        OpKind = "incr"
	OpMax         OpKind = "max"
	OpSetNX       OpKind = "setnx"
	OpPruneTiles  OpKind = "prunet"
	OpPruneRecent OpKind = "pruner"
	OpTTL         OpKind = "ttl"
)

// Guard marks an event late when the account's newest applied event time exceeds Min.
type Guard struct {
	Key   int
	Field string
	Min   int64
}

// Once applies a plan's updates only the first time (labels).
type Once struct {
	Key int
	TTL time.Duration
}

// Mark is the stream's replay guard: Keys[Key] holds the partition's applied offset and
// Keys[ResultKey] the stored result of this offset.
type Mark struct {
	Key       int
	ResultKey int
	Offset    int64
	ResultTTL time.Duration
}

// Status says what executing a plan did.
type Status string

// Plan outcomes.
const (
	StatusApplied       Status = "a"
	StatusLate          Status = "l"
	StatusDuplicate     Status = "d"
	StatusReplayedStale Status = "s"
)

// Result is what executing a plan returns.
type Result struct {
	Status Status
	// Replayed: the offset was applied before; Status and Reads are the first run's.
	Replayed bool
	Reads    []string
}

// window is a tiled window: n tiles of tile length, ending with the event's tile.
type window struct {
	name string
	tile time.Duration
	n    int
}

var accountWindows = []window{
	{"10m", time.Minute, 10},
	{"1h", 5 * time.Minute, 12},
	{"1d", time.Hour, 24},
	{"7d", 6 * time.Hour, 28},
	{"30d", 24 * time.Hour, 30},
}

var (
	cardWindows     = []window{{"1h", 5 * time.Minute, 12}, {"1d", time.Hour, 24}}
	terminalWindows = []int{1, 7, 30} // days
)

const (
	day      = 24 * time.Hour
	noPrev   = 30 * day
	margin   = time.Hour
	maxTermW = 30
)

// txReads records where each feature's reads are in Plan.Reads.
type txReads struct {
	acctCount, acctSum   [5]int
	zc, zm, zq           int
	merchants, terminals int
	countries, last      int
	country              int
	card                 [2]int
	device               int
	termCount, termFraud [3]int
}

// TileIndex is the tile of t for tiles of length tile: floor(t / tile) since the Unix epoch.
func TileIndex(t time.Time, tile time.Duration) int64 {
	ms, tm := t.UnixMilli(), tile.Milliseconds()
	q := ms / tm
	if ms%tm != 0 && ms < 0 {
		q--
	}
	return q
}

// TileFields lists the fields "<i>:<suffix>" of the n tiles ending with tile last.
func TileFields(last int64, n int, suffix string) []string {
	out := make([]string, 0, n)
	for i := last - int64(n) + 1; i <= last; i++ {
		out = append(out, tileField(i, suffix))
	}
	return out
}

func tileField(i int64, suffix string) string { return strconv.FormatInt(i, 10) + ":" + suffix }

// TileTTL is how long a tile key must outlive its last update: the window it feeds, the
// lateness within which it may still be updated and read, one tile of raggedness and a margin
// for the gap between event time and the wall clock Redis expires by.
func TileTTL(w time.Duration, tile time.Duration, lateness time.Duration) time.Duration {
	return w + lateness + tile + margin
}

type builder struct {
	p      Plan
	keys   map[string]int
	nreads int
}

func (b *builder) key(k string) int {
	if i, ok := b.keys[k]; ok {
		return i
	}
	b.keys[k] = len(b.p.Keys)
	b.p.Keys = append(b.p.Keys, k)
	return len(b.p.Keys) - 1
}

// read adds op and returns the index of its first read value.
func (b *builder) read(op Op) int {
	b.p.Reads = append(b.p.Reads, op)
	b.nreads += max(1, len(op.Suffixes))
	return b.nreads - max(1, len(op.Suffixes))
}

func (b *builder) write(ops ...Op) { b.p.Writes = append(b.p.Writes, ops...) }

// tiles adds the reads of fields suffixes over w's tiles of key and the updates of this event.
func (b *builder) tiles(k string, w window, t time.Time, lateness time.Duration, add map[string]int64, reads ...string) []int {
	ki := b.key(k)
	cur := TileIndex(t, w.tile)
	first := b.read(Op{Kind: OpSum, Key: ki, Lo: cur - int64(w.n) + 1, Hi: cur, Suffixes: reads})
	idx := make([]int, len(reads))
	for i := range reads {
		idx[i] = first + i
	}
	for _, s := range reads { // fixed order: map iteration would make plans differ
		if v, ok := add[s]; ok {
			b.write(Op{Kind: OpIncr, Key: ki, Field: tileField(cur, s), Value: strconv.FormatInt(v, 10)})
		}
	}
	// The oldest tile any non-late later event can read: its time is >= t - lateness.
	below := TileIndex(t.Add(-lateness), w.tile) - int64(w.n) + 1
	b.write(Op{Kind: OpPruneTiles, Key: ki, Num: below},
		Op{Kind: OpTTL, Key: ki, Num: TileTTL(w.tile*time.Duration(w.n), w.tile, lateness).Milliseconds()})
	return idx
}

// recent adds a "distinct members seen in the last span" read and update on key.
func (b *builder) recent(k, member string, t time.Time, span, slack time.Duration) int {
	ki := b.key(k)
	ms := t.UnixMilli()
	i := b.read(Op{Kind: OpRecent, Key: ki, Field: member, Num: ms - span.Milliseconds()})
	if member != "" {
		b.write(Op{Kind: OpMax, Key: ki, Field: member, Value: strconv.FormatInt(ms, 10)},
			Op{Kind: OpPruneRecent, Key: ki, Num: ms - (span + slack).Milliseconds()},
			Op{Kind: OpTTL, Key: ki, Num: (span + slack + margin).Milliseconds()})
	}
	return i
}

func labelDelayDays(cfg Config) int64 {
	return int64((cfg.LabelDelay + day - 1) / day)
}

// TxPlan is the plan of one transaction. The caller adds Mark for the stream.
func TxPlan(cfg Config, ev Event) Plan {
	b := &builder{keys: map[string]int{}}
	r := &txReads{}
	t := ev.EventTime
	ms := t.UnixMilli()
	L := cfg.AllowedLateness
	major := roundMajor(ev.AmountMinor)
	a := "a:" + ev.AccountID + ":"

	meta := b.key(a + "meta")
	b.p.Guard = &Guard{Key: meta, Field: "last", Min: ms + L.Milliseconds()}
	r.last = b.read(Op{Kind: OpGet, Key: meta, Field: "last"})
	r.country = b.read(Op{Kind: OpGet, Key: meta, Field: "country"})
	b.write(Op{Kind: OpMax, Key: meta, Field: "last", Value: strconv.FormatInt(ms, 10)})
	if ev.Country != "" {
		b.write(Op{Kind: OpSetNX, Key: meta, Field: "country", Value: ev.Country})
	}
	b.write(Op{Kind: OpTTL, Key: meta, Num: (noPrev + L + margin).Milliseconds()})

	for i, w := range accountWindows {
		add := map[string]int64{"c": 1, "s": ev.AmountMinor}
		reads := []string{"c", "s"}
		if w.name == "30d" {
			add["m"], add["q"] = major, major*major
			reads = append(reads, "m", "q")
		}
		idx := b.tiles(a+w.name, w, t, L, add, reads...)
		r.acctCount[i], r.acctSum[i] = idx[0], idx[1]
		if w.name == "30d" {
			r.zc, r.zm, r.zq = idx[0], idx[2], idx[3]
		}
	}
	r.merchants = b.recent(a+"mer", ev.MerchantID, t, day, L)
	r.terminals = b.recent(a+"ter", ev.TerminalID, t, day, L)
	r.countries = b.recent(a+"cty", ev.Country, t, day, L)

	if ev.CardToken != "" {
		for i, w := range cardWindows {
			r.card[i] = b.tiles("c:"+ev.CardToken+":"+w.name, w, t, L, map[string]int64{"c": 1}, "c")[0]
		}
	}
	if ev.DeviceID != "" {
		// A device spans accounts, hence partitions: a day of slack for their skew.
		r.device = b.recent("d:"+ev.DeviceID+":acc", ev.AccountID, t, day, L+day)
	}
	if ev.TerminalID != "" {
		ki := b.key("t:" + ev.TerminalID + ":d")
		D := TileIndex(t, day)
		newest := D - labelDelayDays(cfg) - 1
		for i, w := range terminalWindows {
			r.termCount[i] = b.read(Op{Kind: OpSum, Key: ki, Lo: newest - int64(w) + 1, Hi: newest, Suffixes: []string{"c", "f"}})
			r.termFraud[i] = r.termCount[i] + 1
		}
		b.write(Op{Kind: OpIncr, Key: ki, Field: tileField(D, "c"), Value: "1"},
			// Generous: terminals span partitions and labels arrive late.
			Op{Kind: OpPruneTiles, Key: ki, Num: newest - 2*maxTermW},
			Op{Kind: OpTTL, Key: ki, Num: terminalTTL(cfg).Milliseconds()})
	}
	b.p.tx = r
	b.p.cfg = cfg
	return b.p
}

func terminalTTL(cfg Config) time.Duration {
	return cfg.LabelDelay + 2*maxTermW*day + 2*day
}

// LabelPlan is the plan of one label: a fraud label known within LabelDelay of its transaction
// adds one fraud to the terminal's day tile of the transaction; only a transaction's first
// label counts.
func LabelPlan(cfg Config, l Label) Plan {
	b := &builder{keys: map[string]int{}}
	b.p.Once = &Once{Key: b.key("l:" + l.TransactionID), TTL: terminalTTL(cfg)}
	if l.Fraud && l.TerminalID != "" && !l.KnownAt.After(l.TransactionTime.Add(cfg.LabelDelay)) {
		ki := b.key("t:" + l.TerminalID + ":d")
		b.write(Op{Kind: OpIncr, Key: ki, Field: tileField(TileIndex(l.TransactionTime, day), "f"), Value: "1"},
			Op{Kind: OpTTL, Key: ki, Num: terminalTTL(cfg).Milliseconds()})
	}
	b.p.cfg = cfg
	return b.p
}

func roundMajor(minor int64) int64 {
	if minor >= 0 {
		return (minor + 50) / 100
	}
	return -((-minor + 50) / 100)
}
