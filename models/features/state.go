package features

import (
	"math"
	"slices"
	"strings"
	"time"
)

// The window math, written once. An event's features are computed (Compute) from the state
// before it, then the event is folded into the state (Apply) unless it is late. State comes in
// two parts:
//
//   - Account: everything scoped to one account (its tiled windows, distinct merchants,
//     terminals and countries, newest event time, first country, and its cards' windows). The
//     stream keys tx.v1 by account, so one partition owns an account: the feature-window service
//     keeps it in memory and checkpoints it to Redis as one value (Account.MarshalBinary).
//   - Shared: terminals and devices, which span accounts and so partitions. The stream reads
//     them from Redis and writes its deltas there; Offline keeps them in MemShared.

// A tile is one time bucket of a window: its index, count and sum of minor units and, in the
// 30-day window, the count of anomalous amounts (A) and the highest amount ratio (X, in
// thousandths) of its events (see amountRatio).
type tile struct{ I, C, S, A, X int64 }

// tiles is one window's non-empty tiles in ascending order of index.
type tiles []tile

// sum adds up the tiles [lo, hi]. It walks from the newest tile back: windows end at the
// event's tile, which is the newest but for late events, and a window holds at most a few
// dozen tiles, so the walk beats a binary search.
func (ts tiles) sum(lo, hi int64) (t tile) {
	for i := len(ts) - 1; i >= 0; i-- {
		x := &ts[i]
		if x.I > hi {
			continue
		}
		if x.I < lo {
			break
		}
		t.C, t.S, t.A, t.X = t.C+x.C, t.S+x.S, t.A+x.A, max(t.X, x.X)
	}
	return t
}

func byIndex(x tile, i int64) int {
	switch {
	case x.I < i:
		return -1
	case x.I > i:
		return 1
	}
	return 0
}

// add adds d to tile d.I and reports whether a field went from zero (a new tile, or a zero
// field): the moment older tiles are pruned.
func (ts *tiles) add(d tile) (created bool) {
	var i int
	switch n := len(*ts); {
	case n == 0 || (*ts)[n-1].I < d.I: // the usual case: a new newest tile
		*ts = append(*ts, tile{I: d.I})
		i = n
	case (*ts)[n-1].I == d.I:
		i = n - 1
	default:
		var found bool
		i, found = slices.BinarySearchFunc(*ts, d.I, byIndex)
		if !found {
			*ts = slices.Insert(*ts, i, tile{I: d.I})
		}
	}
	x := &(*ts)[i]
	created = x.C == 0 || x.S == 0
	x.C, x.S, x.A, x.X = x.C+d.C, x.S+d.S, x.A+d.A, max(x.X, d.X)
	return created
}

// prune drops the tiles below index below.
func (ts *tiles) prune(below int64) {
	n := 0
	for n < len(*ts) && (*ts)[n].I < below {
		n++
	}
	if n > 0 {
		*ts = slices.Delete(*ts, 0, n)
	}
}

// recent maps a member (merchant, terminal, country, account) to when it was last seen (ms).
type recent map[string]int64

// count is the number of members other than exclude last seen after ms.
func (r recent) count(exclude string, after int64) int64 {
	var n int64
	for _, v := range r {
		if v > after { // exclude is taken off after: no string compares in the loop
			n++
		}
	}
	if v, ok := r[exclude]; ok && v > after {
		n--
	}
	return n
}

// see records member at ms (keeping the newest) and, when member is new, forgets the members
// last seen before pruneBelow.
func (r recent) see(member string, ms, pruneBelow int64) {
	old, ok := r[member]
	if !ok || ms > old {
		r[member] = ms
	}
	if !ok {
		for m, v := range r {
			if v < pruneBelow {
				delete(r, m)
			}
		}
	}
}

// members is recent for the few members an account sees in a day (merchants, terminals,
// countries): a slice, whose scans beat a map's lookups and iterations at these sizes, kept in
// order of key, the order they are encoded in.
type members []member

type member struct {
	key string
	ms  int64
}

// count is the number of members other than exclude last seen after ms. The scan compares
// times only; exclude is found by binary search (the members are in order of key), which
// matters for an account that sees dozens of terminals a day: string compares were a tenth of
// feature-window's CPU in fwbench.
func (r members) count(exclude string, after int64) int64 {
	var n int64
	for i := range r {
		if r[i].ms > after {
			n++
		}
	}
	if i, ok := r.find(exclude); ok && r[i].ms > after {
		n--
	}
	return n
}

// find is the index of key, or where it would be inserted.
func (r members) find(key string) (int, bool) {
	return slices.BinarySearchFunc(r, key, func(m member, k string) int { return strings.Compare(m.key, k) })
}

// see records key at ms (keeping the newest) and, when key is new, forgets the members last
// seen before pruneBelow.
func (r *members) see(key string, ms, pruneBelow int64) {
	if i, ok := r.find(key); ok {
		m := &(*r)[i]
		m.ms = max(m.ms, ms)
		return
	}
	kept := (*r)[:0]
	for _, m := range *r {
		if m.ms >= pruneBelow {
			kept = append(kept, m)
		}
	}
	clear((*r)[len(kept):]) // no stale strings held past the length
	i, _ := kept.find(key)
	*r = slices.Insert(kept, i, member{key, ms})
}

// Account is the window state of one account. The zero value is an account never seen.
type Account struct {
	Last      int64 // newest applied event time, Unix ms; valid when HasLast
	HasLast   bool
	Country   string // first country seen
	Windows   [5]tiles
	Merchants members
	Terminals members
	Countries members
	Cards     map[string]*[2]tiles // card token → windows of cardWindows
	// TxIDs holds the transaction ids applied (or found late) within DedupWindow of the newest
	// one, at most MaxDedupIDs: a transaction a client sent again (after a 503 whose record was
	// written anyway) is recognised and not counted twice. Times are when Vigil received each
	// (Event.ReceivedAt), or event times when that is unknown (offline).
	TxIDs recent
	// txOldest caches the oldest time in TxIDs (0: unknown), so remembering an id scans the
	// map only when something may be forgotten.
	txOldest int64
}

// DedupWindow and MaxDedupIDs bound Account.TxIDs.
const (
	DedupWindow = 24 * time.Hour
	MaxDedupIDs = 256
)

// window is a tiled window: n tiles of tile length, ending with the event's tile.
type window struct {
	name string
	tile time.Duration
	n    int
}

var accountWindows = [5]window{
	{"10m", time.Minute, 10},
	{"1h", 5 * time.Minute, 12},
	{"1d", time.Hour, 24},
	{"7d", 6 * time.Hour, 28},
	{"30d", 24 * time.Hour, 30},
}

const ratioWindow = 4 // accountWindows index of the window account_amount_ratio_30d uses

// anomalyTiles is how many of ratioWindow's tiles (days) the anomaly features read, and
// anomalyRatio the amount ratio from which an amount counts as anomalous.
const (
	anomalyTiles = 14
	anomalyRatio = 3
)

// amountRatio is the amount over the mean amount of prev (the account's previous 30 daily
// tiles); 1 with no previous event, or a mean below 1.00 (refunds, tiny amounts).
func amountRatio(prev tile, amountMinor int64) float64 {
	if prev.C > 0 && prev.S >= prev.C*100 {
		return float64(amountMinor) * float64(prev.C) / float64(prev.S)
	}
	return 1
}

// TerminalTile is the length of a terminal tile: terminal features read the whole tiles that
// ended at least LabelDelay before the event (Handbook: the LabelDelay before the event, to
// the hour; whole days lost a compromised terminal's first known day half the time).
const TerminalTile = 3 * time.Hour

var (
	cardWindows = [2]window{{"1h", 5 * time.Minute, 12}, {"1d", time.Hour, 24}}
	// terminalWindows are the terminal windows in TerminalTiles: 1, 7 and 30 days.
	terminalWindows = [3]int64{8, 7 * 8, 30 * 8}
)

const (
	day    = 24 * time.Hour
	noPrev = 30 * day
	// Terminal tiles are kept this many days behind the newest tile the features read.
	terminalKeepDays  = 60
	terminalKeepTiles = terminalKeepDays * int64(day/TerminalTile)
)

// TileIndex is the tile of t for tiles of length tile: floor(t / tile) since the Unix epoch.
func TileIndex(t time.Time, tile time.Duration) int64 {
	ms, tm := t.UnixMilli(), tile.Milliseconds()
	q := ms / tm
	if ms%tm != 0 && ms < 0 {
		q--
	}
	return q
}

// Shared is the state that spans accounts: terminal tiles and the accounts seen on each
// device. Reads see every update applied before them.
type Shared interface {
	// TerminalTiles returns the transactions and frauds of terminal over tiles [lo, hi] (tile
	// indexes, TileIndex with TerminalTile).
	TerminalTiles(terminal string, lo, hi int64) (tx, fraud int64)
	// DeviceAccounts counts the accounts other than account seen on device after ms (Unix ms).
	DeviceAccounts(device, account string, after int64) int64
	// AddTerminalTx adds one transaction to terminal's tile and, when that creates the tile,
	// forgets the tiles below pruneBelow.
	AddTerminalTx(terminal string, tile, pruneBelow int64)
	// SeeDevice records account on device at ms (keeping the newest) and, when the account is
	// new on the device, forgets the accounts last seen before pruneBelow.
	SeeDevice(device, account string, ms, pruneBelow int64)
}

// reads is what an event's features read from the state before it.
type reads struct {
	acct                 [5]tile
	anomalies            tile // A and X over the last anomalyTiles of ratioWindow
	merchants, terminals int64
	countries            int64
	last                 int64
	hasLast              bool
	country              string
	card                 [2]int64
	device               int64
	termCount, termFraud [3]int64
}

// TerminalNewestTile is the newest terminal tile the features of an event at t read: the last
// whole TerminalTile that ended at or before t - LabelDelay, so that every label that can count
// (known within the delay of its transaction) is known by the first event that reads its tile.
func TerminalNewestTile(cfg Config, t time.Time) int64 {
	return TileIndex(t.Add(-cfg.LabelDelay), TerminalTile) - 1
}

// TerminalTilesRead is the range of terminal tiles [lo, hi] the features of an event at t read.
func TerminalTilesRead(cfg Config, t time.Time) (lo, hi int64) {
	hi = TerminalNewestTile(cfg, t)
	return hi - terminalWindows[len(terminalWindows)-1] + 1, hi
}

func read(cfg Config, a *Account, sh Shared, ev Event) reads {
	var r reads
	t := ev.EventTime
	ms := t.UnixMilli()
	r.last, r.hasLast, r.country = a.Last, a.HasLast, a.Country
	for i, w := range accountWindows {
		cur := TileIndex(t, w.tile)
		r.acct[i] = a.Windows[i].sum(cur-int64(w.n)+1, cur)
		if i == ratioWindow {
			r.anomalies = a.Windows[i].sum(cur-anomalyTiles+1, cur)
		}
	}
	dayAgo := ms - day.Milliseconds()
	r.merchants = a.Merchants.count(ev.MerchantID, dayAgo)
	r.terminals = a.Terminals.count(ev.TerminalID, dayAgo)
	r.countries = a.Countries.count(ev.Country, dayAgo)
	if ev.CardToken != "" {
		if cw := a.Cards[ev.CardToken]; cw != nil {
			for i, w := range cardWindows {
				cur := TileIndex(t, w.tile)
				r.card[i] = cw[i].sum(cur-int64(w.n)+1, cur).C
			}
		}
	}
	if ev.DeviceID != "" {
		r.device = sh.DeviceAccounts(ev.DeviceID, ev.AccountID, dayAgo)
	}
	if ev.TerminalID != "" {
		newest := TerminalNewestTile(cfg, t)
		for i, w := range terminalWindows {
			r.termCount[i], r.termFraud[i] = sh.TerminalTiles(ev.TerminalID, newest-w+1, newest)
		}
	}
	return r
}

// Compute returns the feature vector of ev from the state before it: a (nil for an account
// never seen) and sh. It changes nothing.
func Compute(cfg Config, a *Account, sh Shared, ev Event) []float64 {
	if a == nil {
		a = &Account{}
	}
	return vector(read(cfg, a, sh, ev), ev)
}

// Late reports whether ev is later than the allowed lateness for a: older than the account's
// newest applied event by more than cfg.AllowedLateness. A late event is emitted with its
// features but does not update any window.
func Late(cfg Config, a *Account, ev Event) bool {
	return a.HasLast && a.Last > ev.EventTime.UnixMilli()+cfg.AllowedLateness.Milliseconds()
}

// Duplicate reports whether ev's transaction id is one a has already seen (see
// Account.TxIDs): such an event must be neither applied nor emitted again.
func Duplicate(a *Account, ev Event) bool {
	_, ok := a.TxIDs[ev.TransactionID]
	return ok && ev.TransactionID != ""
}

// rememberTx records ev's transaction id, forgetting ids older than DedupWindow before the
// newest and, beyond MaxDedupIDs, the oldest. The window runs in receipt time when the event
// has one: in event time, a retry that arrives after the account's newer transactions (a
// client retrying after an outage, a simulator replaying days in minutes) could fall out of
// the window and be counted twice.
func rememberTx(a *Account, ev Event) {
	if ev.TransactionID == "" {
		return
	}
	if a.TxIDs == nil {
		a.TxIDs = recent{}
	}
	var ms, newest int64
	if ev.ReceivedAt.IsZero() {
		ms = ev.EventTime.UnixMilli()
		newest = ms
		if a.HasLast {
			newest = max(newest, a.Last)
		}
	} else {
		ms = ev.ReceivedAt.UnixMilli()
		newest = ms
	}
	a.TxIDs[ev.TransactionID] = ms
	below := newest - DedupWindow.Milliseconds()
	if a.txOldest != 0 && a.txOldest >= below && len(a.TxIDs) <= MaxDedupIDs {
		a.txOldest = min(a.txOldest, ms)
		return // nothing to forget
	}
	oldest := int64(0)
	for id, at := range a.TxIDs {
		if at < below {
			delete(a.TxIDs, id)
		} else if oldest == 0 || at < oldest {
			oldest = at
		}
	}
	for len(a.TxIDs) > MaxDedupIDs {
		oldID, oldAt := "", int64(0)
		for id, at := range a.TxIDs {
			if oldID == "" || at < oldAt || (at == oldAt && id < oldID) {
				oldID, oldAt = id, at
			}
		}
		delete(a.TxIDs, oldID)
		oldest = 0 // recomputed on the next scan
	}
	a.txOldest = oldest
}

// Apply folds ev into a and sh unless it is late, and reports whether it was. Its transaction
// id is remembered either way (Duplicate).
func Apply(cfg Config, a *Account, sh Shared, ev Event) (late bool) {
	rememberTx(a, ev)
	if Late(cfg, a, ev) {
		return true
	}
	t := ev.EventTime
	ms := t.UnixMilli()
	L := cfg.AllowedLateness
	if !a.HasLast || ms > a.Last {
		a.Last, a.HasLast = ms, true
	}
	if ev.Country != "" && a.Country == "" {
		a.Country = ev.Country
	}
	for i, w := range accountWindows {
		cur := TileIndex(t, w.tile)
		d := tile{I: cur, C: 1, S: ev.AmountMinor}
		if i == ratioWindow {
			// The event's amount ratio as its features saw it (the state before it).
			ratio := amountRatio(a.Windows[i].sum(cur-int64(w.n)+1, cur), ev.AmountMinor)
			d.X = int64(math.Round(ratio * 1000))
			if ratio >= anomalyRatio {
				d.A = 1
			}
		}
		if a.Windows[i].add(d) {
			// The oldest tile any non-late later event can read: its time is >= t - lateness.
			a.Windows[i].prune(TileIndex(t.Add(-L), w.tile) - int64(w.n) + 1)
		}
	}
	seeRecent := func(r *members, key string) {
		if key != "" {
			r.see(key, ms, ms-(day+L).Milliseconds())
		}
	}
	seeRecent(&a.Merchants, ev.MerchantID)
	seeRecent(&a.Terminals, ev.TerminalID)
	seeRecent(&a.Countries, ev.Country)
	if ev.CardToken != "" {
		if a.Cards == nil {
			a.Cards = map[string]*[2]tiles{}
		}
		cw := a.Cards[ev.CardToken]
		if cw == nil {
			cw = &[2]tiles{}
			a.Cards[ev.CardToken] = cw
		}
		for i, w := range cardWindows {
			if cw[i].add(tile{I: TileIndex(t, w.tile), C: 1}) {
				cw[i].prune(TileIndex(t.Add(-L), w.tile) - int64(w.n) + 1)
			}
		}
	}
	if ev.DeviceID != "" {
		// A device spans accounts, hence partitions: a day of slack for their skew.
		sh.SeeDevice(ev.DeviceID, ev.AccountID, ms, ms-(day+L+day).Milliseconds())
	}
	if ev.TerminalID != "" {
		// Generous: terminals span partitions and labels arrive late.
		sh.AddTerminalTx(ev.TerminalID, TileIndex(t, TerminalTile), TerminalNewestTile(cfg, t)-terminalKeepTiles)
	}
	return false
}

// LabelFraudTile says what label l does to the terminal windows: when counts, one fraud in the
// terminal tile of its transaction at l.TerminalID. Only a transaction's first label may count
// (the store remembers labelled transactions for LabelTTL); a fraud label counts when known
// within LabelDelay of its transaction.
func LabelFraudTile(cfg Config, l Label) (tile int64, counts bool) {
	if !l.Fraud || l.TerminalID == "" || l.KnownAt.After(l.TransactionTime.Add(cfg.LabelDelay)) {
		return 0, false
	}
	return TileIndex(l.TransactionTime, TerminalTile), true
}

// LabelTTL is how long a store must remember that a transaction was labelled, and keep a
// terminal's tiles after their last update: labels arrive up to LabelDelay late and the
// features read 30 days behind t - LabelDelay.
func LabelTTL(cfg Config) time.Duration {
	return cfg.LabelDelay + terminalKeepDays*day + 2*day
}

// AccountTTL is how long an account's state must outlive its last update: the 30-day window of
// day tiles reaches back up to 31 days, plus the lateness.
func AccountTTL(cfg Config) time.Duration {
	return noPrev + day + cfg.AllowedLateness + time.Hour
}

// DeviceTTL is how long a device's accounts must outlive its last update.
func DeviceTTL(cfg Config) time.Duration {
	return 2*day + cfg.AllowedLateness + time.Hour
}
