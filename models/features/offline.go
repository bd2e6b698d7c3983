package features

// Offline computes feature vectors over a history, exactly as the stream computes them: the
// same plans (plan.go) run against MemStore instead of Redis. Feed each account's events in the
// order the stream sees them (tx.v1 offset order; event-time order for a dataset). It is not
// safe for concurrent use.
type Offline struct {
	cfg   Config
	store *MemStore
	// Late counts events that were too late to update the windows.
	Late int
}

// NewOffline returns an empty history with DefaultConfig.
func NewOffline() *Offline { return NewOfflineConfig(DefaultConfig()) }

// NewOfflineConfig returns an empty history with cfg; use the stream's configuration.
func NewOfflineConfig(cfg Config) *Offline {
	return &Offline{cfg: cfg, store: NewMemStore()}
}

// AddLabel records a label. Call it no later than the first event that may use it (at
// KnownAt) to match the stream, which applies labels as they arrive.
func (o *Offline) AddLabel(l Label) { o.store.Exec(LabelPlan(o.cfg, l)) }

// Next adds ev to the history and returns its feature vector, computed from ev and everything
// before it.
func (o *Offline) Next(ev Event) []float64 {
	p := TxPlan(o.cfg, ev)
	res := o.store.Exec(p)
	if res.Status == StatusLate {
		o.Late++
	}
	return Vector(p, ev, res.Reads)
}
