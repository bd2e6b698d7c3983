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
	terminals map[string]map[int64]*[2]int64 // terminal → day → {transactions, frauds}
	devices   map[string]recent
	labelled  map[string]bool
}

// NewMemShared returns empty shared state.
func NewMemShared() *MemShared {
	return &MemShared{terminals: map[string]map[int64]*[2]int64{}, devices: map[string]recent{}, labelled: map[string]bool{}}
}

// TerminalDays implements Shared.
func (m *MemShared) TerminalDays(terminal string, lo, hi int64) (tx, fraud int64) {
	for d, v := range m.terminals[terminal] {
		if d >= lo && d <= hi {
			tx, fraud = tx+v[0], fraud+v[1]
		}
	}
	return tx, fraud
}

// DeviceAccounts implements Shared.
func (m *MemShared) DeviceAccounts(device, account string, after int64) int64 {
	return m.devices[device].count(account, after)
}

func (m *MemShared) terminalDay(terminal string, d int64) (v *[2]int64, created bool) {
	days := m.terminals[terminal]
	if days == nil {
		days = map[int64]*[2]int64{}
		m.terminals[terminal] = days
	}
	if v = days[d]; v == nil {
		v = &[2]int64{}
		days[d] = v
	}
	return v, false
}

// AddTerminalTx implements Shared.
func (m *MemShared) AddTerminalTx(terminal string, d, pruneBelow int64) {
	v, _ := m.terminalDay(terminal, d)
	v[0]++
	if v[0] == 1 {
		for x := range m.terminals[terminal] {
			if x < pruneBelow {
				delete(m.terminals[terminal], x)
			}
		}
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
	if d, ok := LabelFraudDay(cfg, l); ok {
		v, _ := m.terminalDay(l.TerminalID, d)
		v[1]++
	}
}
