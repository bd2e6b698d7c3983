package features

// Offline computes feature vectors over a history exactly as the stream computes them: the same
// Compute and Apply over in-memory state. Feed each account's events in the order the stream
// sees them (tx.v1 offset order; event-time order for a dataset). It is not safe for concurrent
// use.
type Offline struct {
	cfg      Config
	accounts map[string]*Account
	shared   *MemShared
	// Late counts events that were too late to update the windows; Duplicates the events
	// whose transaction id the account had already seen.
	Late, Duplicates int
}

// NewOffline returns an empty history with DefaultConfig.
func NewOffline() *Offline { return NewOfflineConfig(DefaultConfig()) }

// NewOfflineConfig returns an empty history with cfg; use the stream's configuration.
func NewOfflineConfig(cfg Config) *Offline {
	return &Offline{cfg: cfg, accounts: map[string]*Account{}, shared: NewMemShared()}
}

// AddLabel records a label. Call it no later than the first event that may use it (at
// KnownAt) to match the stream, which applies labels as they arrive.
func (o *Offline) AddLabel(l Label) { o.shared.AddLabel(o.cfg, l) }

// Next adds ev to the history and returns its feature vector, computed from ev and everything
// before it; nil for a duplicate (a transaction id the account has already seen), which the
// stream does not emit.
func (o *Offline) Next(ev Event) []float64 {
	a := o.accounts[ev.AccountID]
	if a == nil {
		a = &Account{}
		o.accounts[ev.AccountID] = a
	}
	if Duplicate(a, ev) {
		o.Duplicates++
		return nil
	}
	v := Compute(o.cfg, a, o.shared, ev)
	if Apply(o.cfg, a, o.shared, ev) {
		o.Late++
	}
	return v
}

// MemShared is Shared in memory, with labels applied once per transaction. Nothing expires.
type MemShared struct {
	terminals map[string]*tiles // terminal → its tiles, C transactions and S frauds
	devices   map[string]recent
	labelled  map[string]bool
}

// NewMemShared returns empty shared state.
func NewMemShared() *MemShared {
	return &MemShared{terminals: map[string]*tiles{}, devices: map[string]recent{}, labelled: map[string]bool{}}
}

// TerminalTiles implements Shared.
func (m *MemShared) TerminalTiles(terminal string, lo, hi int64) (tx, fraud int64) {
	ts := m.terminals[terminal]
	if ts == nil {
		return 0, 0
	}
	t := ts.sum(lo, hi)
	return t.C, t.S
}

// DeviceAccounts implements Shared.
func (m *MemShared) DeviceAccounts(device, account string, after int64) int64 {
	return m.devices[device].count(account, after)
}

func (m *MemShared) terminal(id string) *tiles {
	ts := m.terminals[id]
	if ts == nil {
		ts = &tiles{}
		m.terminals[id] = ts
	}
	return ts
}

// AddTerminalTx implements Shared.
func (m *MemShared) AddTerminalTx(terminal string, t, pruneBelow int64) {
	ts := m.terminal(terminal)
	if ts.add(tile{I: t, C: 1}) {
		ts.prune(pruneBelow)
	}
}

// SeeDevice implements Shared.
func (m *MemShared) SeeDevice(device, account string, ms, pruneBelow int64) {
	r := m.devices[device]
	if r == nil {
		r = recent{}
		m.devices[device] = r
	}
	r.see(account, ms, pruneBelow)
}

// AddLabel applies l once per transaction (the first label wins).
func (m *MemShared) AddLabel(cfg Config, l Label) {
	if m.labelled[l.TransactionID] {
		return
	}
	m.labelled[l.TransactionID] = true
	if t, ok := LabelFraudTile(cfg, l); ok {
		m.terminal(l.TerminalID).add(tile{I: t, S: 1})
	}
}
