// Package simulator reimplements the transaction generator of the Fraud Detection Handbook
// (Le Borgne et al., chapter "Simulated data"): customer and terminal profiles on a 100×100
// grid, daily Poisson transaction counts, amounts and times drawn per customer, and the three
// fraud scenarios. The algorithm follows the Handbook step by step; the random streams are Go's
// PCG seeded from Config.Seed, so a seed reproduces a data set exactly but not the Handbook's
// numpy draws.
package simulator

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Config sizes a simulation. Zero values take the Handbook's defaults (Default).
type Config struct {
	Customers int
	Terminals int
	Days      int
	Start     time.Time // midnight UTC of day 0
	Seed      uint64
	Radius    float64 // a customer uses the terminals strictly closer than this
}

// Default is the Handbook's data set: about 1.75M transactions, ~0.8% fraud.
func Default() Config {
	return Config{Customers: 5000, Terminals: 10000, Days: 183, Start: time.Date(2018, 4, 1, 0, 0, 0, 0, time.UTC), Radius: 5}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Customers < 3:
		return fmt.Errorf("customers must be >= 3 (scenario 3 compromises 3 a day), got %d", c.Customers)
	case c.Terminals < 2:
		return fmt.Errorf("terminals must be >= 2 (scenario 2 compromises 2 a day), got %d", c.Terminals)
	case c.Days < 1:
		return fmt.Errorf("days must be >= 1, got %d", c.Days)
	case c.Radius <= 0 || math.IsNaN(c.Radius):
		return fmt.Errorf("radius must be > 0, got %v", c.Radius)
	case c.Start.IsZero():
		return errors.New("start is missing")
	}
	return nil
}

// Customer is one customer profile.
type Customer struct {
	ID             int
	X, Y           float64
	MeanAmount     float64
	StdAmount      float64
	MeanTxPerDay   float64
	AvailableTerms []int
}

// Terminal is one terminal profile.
type Terminal struct {
	ID   int
	X, Y float64
}

// Transaction is one row of the Handbook's raw CSV.
type Transaction struct {
	ID            int
	Time          time.Time
	CustomerID    int
	TerminalID    int
	Amount        float64 // euros, two decimals
	TimeSeconds   int64   // since Start
	TimeDays      int
	Fraud         bool
	FraudScenario int // 0 legitimate, 1 amount > 220, 2 compromised terminal, 3 compromised customer
}

// Dataset is a full simulation.
type Dataset struct {
	Config       Config
	Customers    []Customer
	Terminals    []Terminal
	Transactions []Transaction // sorted by time, ID = index
}

// stream returns an independent random stream for one purpose and index, so that customers,
// terminals and fraud days do not share state and a change in one does not reshuffle others.
func stream(seed uint64, purpose, index uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15*(purpose+1), index))
}

const (
	purposeCustomers = iota + 1
	purposeTerminals
	purposeTransactions
	purposeScenario2
	purposeScenario3
)

// Generate runs the whole simulation. progress, if not nil, is called with the number of
// customers whose transactions have been drawn.
func Generate(cfg Config, progress func(done, total int)) (*Dataset, error) {
	if cfg.Radius == 0 {
		cfg.Radius = 5
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	cfg.Start = cfg.Start.UTC()
	d := &Dataset{Config: cfg}

	rc := stream(cfg.Seed, purposeCustomers, 0)
	d.Customers = make([]Customer, cfg.Customers)
	for i := range d.Customers {
		mean := uniform(rc, 5, 100)
		d.Customers[i] = Customer{ID: i, X: uniform(rc, 0, 100), Y: uniform(rc, 0, 100),
			MeanAmount: mean, StdAmount: mean / 2, MeanTxPerDay: uniform(rc, 0, 4)}
	}
	rt := stream(cfg.Seed, purposeTerminals, 0)
	d.Terminals = make([]Terminal, cfg.Terminals)
	for i := range d.Terminals {
		d.Terminals[i] = Terminal{ID: i, X: uniform(rt, 0, 100), Y: uniform(rt, 0, 100)}
	}
	d.assignTerminals()

	var txs []Transaction
	for i := range d.Customers {
		txs = d.customerTransactions(txs, &d.Customers[i])
		if progress != nil && (i%250 == 0 || i == len(d.Customers)-1) {
			progress(i+1, len(d.Customers))
		}
	}
	// The Handbook sorts by datetime and numbers rows in that order; ties keep customer order.
	slices.SortStableFunc(txs, func(a, b Transaction) int { return int(a.TimeSeconds - b.TimeSeconds) })
	for i := range txs {
		txs[i].ID = i
		txs[i].Time = cfg.Start.Add(time.Duration(txs[i].TimeSeconds) * time.Second)
	}
	d.Transactions = txs
	d.addFrauds()
	return d, nil
}

// assignTerminals lists, for each customer, the terminals within the radius. A grid of
// radius-sized cells keeps this linear instead of customers × terminals.
func (d *Dataset) assignTerminals() {
	r := d.Config.Radius
	cells := map[[2]int][]int{}
	cell := func(x, y float64) [2]int { return [2]int{int(math.Floor(x / r)), int(math.Floor(y / r))} }
	for _, t := range d.Terminals {
		k := cell(t.X, t.Y)
		cells[k] = append(cells[k], t.ID)
	}
	for i := range d.Customers {
		c := &d.Customers[i]
		k := cell(c.X, c.Y)
		var avail []int
		for dx := -1; dx <= 1; dx++ {
			for dy := -1; dy <= 1; dy++ {
				for _, id := range cells[[2]int{k[0] + dx, k[1] + dy}] {
					t := d.Terminals[id]
					if math.Hypot(c.X-t.X, c.Y-t.Y) < r {
						avail = append(avail, id)
					}
				}
			}
		}
		slices.Sort(avail) // the Handbook's np.where order
		c.AvailableTerms = avail
	}
}

// customerTransactions follows generate_transactions_table: per day a Poisson count; each
// transaction's second of day is normal around noon (std 20000) and dropped when outside the
// day; the amount is normal(mean, std), redrawn uniform(0, 2·mean) when negative, rounded to
// cents; the terminal is uniform among the available ones (none available: no transaction).
func (d *Dataset) customerTransactions(out []Transaction, c *Customer) []Transaction {
	r := stream(d.Config.Seed, purposeTransactions, uint64(c.ID))
	for day := range d.Config.Days {
		n := poisson(r, c.MeanTxPerDay)
		for range n {
			t := int64(r.NormFloat64()*20000 + 86400/2) // int() truncates toward zero, like Python
			if t <= 0 || t >= 86400 {
				continue
			}
			amount := r.NormFloat64()*c.StdAmount + c.MeanAmount
			if amount < 0 {
				amount = uniform(r, 0, 2*c.MeanAmount)
			}
			amount = math.Round(amount*100) / 100
			if len(c.AvailableTerms) == 0 {
				continue
			}
			term := c.AvailableTerms[r.IntN(len(c.AvailableTerms))]
			out = append(out, Transaction{CustomerID: c.ID, TerminalID: term, Amount: amount,
				TimeSeconds: t + int64(day)*86400, TimeDays: day})
		}
	}
	return out
}

// addFrauds follows add_frauds, in its order (later scenarios overwrite earlier labels):
// (1) amount > 220; (2) for each day, 2 random terminals: all their transactions in
// [day, day+28) are fraud; (3) for each day, 3 random customers: a third (rounded down) of
// their transactions in [day, day+14) are multiplied by 5 and are fraud. Like the Handbook the
// days run over range(max TX_TIME_DAYS).
func (d *Dataset) addFrauds() {
	txs := d.Transactions
	maxDay := 0
	byTerminal := map[int][]int{}
	byCustomer := map[int][]int{}
	for i := range txs {
		maxDay = max(maxDay, txs[i].TimeDays)
		byTerminal[txs[i].TerminalID] = append(byTerminal[txs[i].TerminalID], i)
		byCustomer[txs[i].CustomerID] = append(byCustomer[txs[i].CustomerID], i)
		if txs[i].Amount > 220 {
			txs[i].Fraud, txs[i].FraudScenario = true, 1
		}
	}
	for day := range maxDay {
		r := stream(d.Config.Seed, purposeScenario2, uint64(day))
		for _, term := range sample(r, len(d.Terminals), 2) {
			for _, i := range byTerminal[term] {
				if txs[i].TimeDays >= day && txs[i].TimeDays < day+28 {
					txs[i].Fraud, txs[i].FraudScenario = true, 2
				}
			}
		}
	}
	for day := range maxDay {
		r := stream(d.Config.Seed, purposeScenario3, uint64(day))
		var compromised []int
		for _, cust := range sample(r, len(d.Customers), 3) {
			for _, i := range byCustomer[cust] {
				if txs[i].TimeDays >= day && txs[i].TimeDays < day+14 {
					compromised = append(compromised, i)
				}
			}
		}
		slices.Sort(compromised) // the Handbook samples from the index order
		for _, k := range sample(r, len(compromised), len(compromised)/3) {
			i := compromised[k]
			txs[i].Amount = math.Round(txs[i].Amount*5*100) / 100
			txs[i].Fraud, txs[i].FraudScenario = true, 3
		}
	}
}

func uniform(r *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

// poisson uses Knuth's multiplication method, exact and fast for the small means (< 4) here.
func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	l := math.Exp(-lambda)
	k, p := 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// sample draws k distinct indices from [0, n) (partial Fisher-Yates over a sparse map).
func sample(r *rand.Rand, n, k int) []int {
	k = min(k, n)
	swapped := map[int]int{}
	get := func(i int) int {
		if v, ok := swapped[i]; ok {
			return v
		}
		return i
	}
	out := make([]int, k)
	for i := range k {
		j := i + r.IntN(n-i)
		out[i] = get(j)
		swapped[j] = get(i)
	}
	return out
}

// Stats summarizes a data set the way the Handbook reports it.
type Stats struct {
	Transactions     int
	Frauds           int
	FraudRate        float64
	PerScenario      [4]int
	Days             int
	Customers        int
	Terminals        int
	MeanAmount       float64
	TxPerDay         float64
	CompromisedCards int // distinct customers with at least one fraud
}

// Summary computes Stats.
func (d *Dataset) Summary() Stats {
	s := Stats{Transactions: len(d.Transactions), Days: d.Config.Days, Customers: len(d.Customers), Terminals: len(d.Terminals)}
	cards := map[int]bool{}
	var sum float64
	for _, t := range d.Transactions {
		sum += t.Amount
		s.PerScenario[t.FraudScenario]++
		if t.Fraud {
			s.Frauds++
			cards[t.CustomerID] = true
		}
	}
	s.CompromisedCards = len(cards)
	if s.Transactions > 0 {
		s.FraudRate = float64(s.Frauds) / float64(s.Transactions)
		s.MeanAmount = sum / float64(s.Transactions)
		s.TxPerDay = float64(s.Transactions) / float64(s.Days)
	}
	return s
}

func (s Stats) String() string {
	return fmt.Sprintf("transactions=%d days=%d customers=%d terminals=%d tx/day=%.0f mean_amount=%.2f frauds=%d (%.3f%%) scenario1=%d scenario2=%d scenario3=%d compromised_cards=%d",
		s.Transactions, s.Days, s.Customers, s.Terminals, s.TxPerDay, s.MeanAmount, s.Frauds, 100*s.FraudRate,
		s.PerScenario[1], s.PerScenario[2], s.PerScenario[3], s.CompromisedCards)
}
