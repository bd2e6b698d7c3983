// Package pipeline turns tx.v1 records into features.v1 records inside the exactly-once loop.
//
// State: each tx.v1 partition's accounts live in memory while this instance owns the
// partition, and are checkpointed to Redis after committed Kafka transactions (in the
// background, one write at a time), together with the partition's checkpoint (the next offset
// not in Redis) and its terminal and device deltas, by one compare-and-set script. Redis is therefore never ahead of Kafka: it may be
// behind (a crash between commit and flush, a failed flush), and then the state is caught up
// by folding tx.v1 from the checkpoint to the first offset the group hands us, without
// emitting anything. That is what makes the windows exactly-once and the features emitted
// after a crash, a rebalance or a zombie equal to an uninterrupted run's.
//
// Per poll: at most one Redis round trip to read (accounts not in memory, terminal tiles,
// devices) and one to checkpoint.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/window"
)

// HeaderLate is set to "1" on a features.v1 record whose transaction came later than the
// allowed lateness: its features were computed but it did not update the windows.
const HeaderLate = "vigil-late"

// Store is the Redis side (window.Store).
type Store interface {
	Fetch(ctx context.Context, r window.Request) (*window.Snapshot, error)
	Flush(ctx context.Context, deltas []window.Delta) ([]error, error)
}

// Reader reads tx.v1 partition records with offsets in [from, to), read-committed, in order.
type Reader func(ctx context.Context, topic string, partition int32, from, to int64, fn func(*kgo.Record) error) error

// Stats counts what the pipeline did; read with Load.
type Stats struct {
	Transactions atomic.Int64 // valid transactions emitted
	Late         atomic.Int64 // transactions beyond the allowed lateness
	CaughtUp     atomic.Int64 // committed records folded into the windows again after a crash, rebalance or lost Redis state
	Stale        atomic.Int64 // records already in Redis when processed (should stay 0): features from later state
	DeadLetters  atomic.Int64
	Duplicates   atomic.Int64 // transactions whose id the account had already seen: not applied, not emitted
	Flushes      atomic.Int64 // partition checkpoints written
	Conflicts    atomic.Int64 // checkpoints refused because another writer moved them
	FlushErrors  atomic.Int64 // checkpoints that failed otherwise (Redis down): caught up later
}

// SpanName names the span of processing one tx.v1 record.
const SpanName = "feature-window process"

const tracerName = "github.com/vigil-fraud/vigil/services/feature-window/internal/pipeline"

// partition is what this instance holds for one tx.v1 partition it processes.
type partition struct {
	topic string
	num   int32
	// next: every record below it is folded into accounts; flushed: the checkpoint in Redis.
	next, flushed int64
	accounts      map[string]*features.Account
	// complete: every account with state in this partition is in accounts, so one not there
	// is new and is not read from Redis. True for a partition built from no checkpoint (a new
	// deployment, a lost Redis: nothing of it is in Redis, and the catch-up from the earliest
	// offset folds every account it has) until an account is evicted.
	complete    bool
	dirty       map[string]bool
	terminals   map[string]map[int64]window.TerminalDelta
	devices     map[string]map[string]window.DeviceSeen
	devicePrune map[string]map[string]int64 // device → account → drop it if last seen below
}

func (part *partition) key() string { return partitionKey(part.topic, part.num) }

func partitionKey(topic string, num int32) string { return topic + "/" + strconv.Itoa(int(num)) }

func (part *partition) pending() bool {
	return len(part.dirty) > 0 || len(part.terminals) > 0 || len(part.devices) > 0 || part.next != part.flushed
}

// newPartition is a partition held from its Redis checkpoint: empty, to be caught up.
func newPartition(topic string, num int32, checkpoint int64) *partition {
	part := &partition{topic: topic, num: num, flushed: checkpoint, complete: checkpoint == window.NoCheckpoint}
	part.clear()
	part.next = max(checkpoint, 0)
	return part
}

func (part *partition) clear() {
	part.accounts = map[string]*features.Account{}
	part.dirty = map[string]bool{}
	part.terminals = map[string]map[int64]window.TerminalDelta{}
	part.devices = map[string]map[string]window.DeviceSeen{}
	part.devicePrune = map[string]map[string]int64{}
}

// Pipeline holds the transform's dependencies and the partitions' state.
type Pipeline struct {
	store     Store
	read      Reader
	cfg       features.Config
	outTopic  string
	now       func() time.Time
	log       *slog.Logger
	freshness prometheus.Observer
	steps     steps
	Stats     Stats

	maxAccounts int
	interval    time.Duration // between checkpoints
	lastFlush   time.Time
	parts       map[string]*partition // only touched by the loop's goroutine
	workers     int                   // partitions of a poll transformed at once
	// shared guards terminals and devices while a poll's partitions are transformed in
	// parallel; outside Transform's parallel part only the loop's goroutine touches them.
	shared    sync.Mutex
	terminals map[string]*terminalTiles
	devices   map[string]*deviceAccounts
	deviceTTL time.Duration
	// terminalTTL: a cached terminal's tiles are all read again once its copy is this old.
	terminalTTL time.Duration
	maxShared   int // maxCachedShared; tests lower it
	// sharedGen counts dropShared calls: a background device read started before one is void.
	sharedGen uint64
	// refreshing: a background read of stale devices is under way; it reports on refreshed.
	refreshing bool
	refreshed  chan deviceRefresh
	reset      atomic.Bool // set by Reset from any goroutine; honoured at the next Transform

	// ckpt is the checkpoint being written in the background (nil: none); only the loop's
	// goroutine touches it. ckptDone, under ckptMu, is closed when that write returned: Reset
	// waits for it, so a partition handed to another instance has no write of ours in flight.
	ckpt     *checkpoint
	ckptMu   sync.Mutex
	ckptDone chan struct{}
}

// checkpoint is one background write of partitions' checkpoints (window.Store.Flush). The
// deltas were taken from the partitions when it started: accounts encoded, terminal and device
// deltas moved out; what the partitions change meanwhile goes to the next checkpoint.
type checkpoint struct {
	parts  []*partition
	deltas []window.Delta
	errs   []error // per delta, once done
	err    error   // the whole write, once done
	done   chan struct{}
	// waited: its caller waits for it and owns its partitions (a catch-up's partition is not
	// held yet); a background write only updates the partitions still held.
	waited bool
}

// deviceRefresh is what a background read of devices whose cached accounts got older than
// deviceTTL found.
type deviceRefresh struct {
	gen     uint64
	read    time.Time
	devices map[string]map[string]int64
	err     error
}

// deviceAccounts caches one device's accounts (last seen, ms) as Redis had them when read plus
// this instance's updates since. Other partitions' updates show after a refresh (deviceTTL):
// device features span partitions and depend on their relative progress anyway.
type deviceAccounts struct {
	read  time.Time
	accts map[string]int64
}

// terminalTiles caches one terminal's tiles [lo, hi] as Redis had them when read plus this
// instance's deltas since. Terminal features read whole tiles that ended at least LabelDelay
// before the event: every label that counts for such a tile is known by then (one counts only
// when known within LabelDelay of its transaction), and transactions reach it only from
// backfills, late events and lagging partitions. When the events move on to newer tiles only
// those are read, plus the terminalSettleTiles newest cached ones again; all of them are read
// again at the first move after the copy is older than the terminal refresh (which live
// traffic, moving once per 3 hours, always is: the partial reads serve backlogs and replays).
// It is dropped whenever a partition is loaded or dropped.
type terminalTiles struct {
	lo    int64
	tiles [][2]int64 // tile lo+i → {transactions, frauds}
	read  time.Time  // when [lo, hi] was last read whole
	// sums[i] is the sum of tiles[:i], valid for i <= summed: a window's counts are two
	// lookups instead of a walk over up to 240 tiles per event. A change to tiles[k] lowers
	// summed to k; the next read extends it again.
	sums   [][2]int64
	summed int
}

// sum returns the transactions and frauds of tiles [lo, hi] (absolute tile numbers) that c holds.
func (c *terminalTiles) sum(lo, hi int64) (tx, fraud int64) {
	i, j := max(lo-c.lo, 0), min(hi-c.lo, int64(len(c.tiles))-1)
	if i > j {
		return 0, 0
	}
	if c.sums == nil {
		c.sums = make([][2]int64, len(c.tiles)+1)
	}
	for ; int64(c.summed) <= j; c.summed++ {
		k := c.summed
		c.sums[k+1] = [2]int64{c.sums[k][0] + c.tiles[k][0], c.sums[k][1] + c.tiles[k][1]}
	}
	return c.sums[j+1][0] - c.sums[i][0], c.sums[j+1][1] - c.sums[i][1]
}

// addTx counts a transaction in tile (absolute), when c holds it.
func (c *terminalTiles) addTx(tile int64) {
	if tile < c.lo || tile > c.hi() {
		return
	}
	k := int(tile - c.lo)
	c.tiles[k][0]++
	c.summed = min(c.summed, k)
}

// covers tells whether c (nil: nothing cached) holds every tile of d.
func (c *terminalTiles) covers(d window.Tiles) bool {
	return c != nil && c.lo <= d.Lo && d.Hi <= c.hi()
}

func (c *terminalTiles) hi() int64 { return c.lo + int64(len(c.tiles)) - 1 }

// terminalSettleTiles is how many of a cached terminal's newest tiles are read again when its
// events move past them: a label that counts can be known just before its tile becomes
// readable and still be on its way through labels.v1 and the labels consumer when the tile is
// first read; it is seen at the terminal's next move or the one after.
const terminalSettleTiles = 2

// toRead is the part of want (the tiles a poll's events of the terminal read) to read from
// Redis, given c (nil: nothing cached): nothing when c covers it, the tiles past c (and its
// terminalSettleTiles newest) when want moved on from it, else all of want.
func (c *terminalTiles) toRead(want window.Tiles, now time.Time, refresh time.Duration) (read window.Tiles, need bool) {
	switch {
	case c.covers(want):
		return window.Tiles{}, false
	case c == nil || want.Lo < c.lo || now.Sub(c.read) >= refresh:
		return want, true
	}
	return window.Tiles{Lo: max(want.Lo, c.hi()-terminalSettleTiles+1), Hi: want.Hi}, true
}

// maxCachedShared bounds the cached terminals and, separately, the cached devices: at the
// bound both caches are dropped and read again as events need them.
const maxCachedShared = 1_000_000

// Option adds an optional dependency.
type Option func(*Pipeline)

// WithLogger logs dead letters, conflicts and catch-ups to log.
func WithLogger(log *slog.Logger) Option { return func(p *Pipeline) { p.log = log } }

// WithMetrics registers vigil_feature_freshness_seconds on reg: processing time minus event
// time, observed per transaction emitted.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(p *Pipeline) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_feature_freshness_seconds",
			Help: "Feature-window processing time minus the transaction's event time (0 when the event time is ahead).",
			// From a live stream (sub-second) to backfills and late events (hours, days).
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 7 * 24 * 3600},
		})
		steps := newSteps()
		reg.MustRegister(h, steps.vec)
		p.freshness, p.steps = h, steps
	}
}

// steps splits a poll's transform into its steps, so the time the EOS loop counts as
// "transform" shows what it was spent on.
type steps struct {
	vec                   *prometheus.CounterVec
	decode, read, compute prometheus.Counter
}

func newSteps() steps {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_feature_window_transform_seconds_total",
		Help: "Time spent per step of transforming a poll: decode (records to events), read (Redis reads of accounts, devices and terminals; partition loads, catch-ups and waits for a checkpoint write included), compute (windows, features, output records).",
	}, []string{"step"})
	return steps{vec: vec, decode: vec.WithLabelValues("decode"), read: vec.WithLabelValues("read"), compute: vec.WithLabelValues("compute")}
}

// WithMaxAccounts bounds the accounts held in memory per partition (default 200,000): beyond
// it, checkpointed accounts are evicted and read back from Redis when they come again.
func WithMaxAccounts(n int) Option { return func(p *Pipeline) { p.maxAccounts = n } }

// WithDeviceRefresh reads a device's accounts from Redis again once its cached copy is older
// than d (default 1 s), in the background: the poll that finds it stale uses the copy. With 0
// every poll reads its devices before computing. This instance's own updates are always in the
// copy.
func WithDeviceRefresh(d time.Duration) Option { return func(p *Pipeline) { p.deviceTTL = d } }

// WithTerminalRefresh reads all of a cached terminal's tiles again, instead of only the newer
// ones its events move on to, once the copy is older than d (default 10 minutes): labels that
// reached Redis later than terminalSettleTiles allow, a labels consumer that was down, say,
// show within d. 0 reads all of them whenever a tile is missing.
func WithTerminalRefresh(d time.Duration) Option { return func(p *Pipeline) { p.terminalTTL = d } }

// WithCheckpointInterval checkpoints to Redis at most once per d (default 0: after every
// committed transaction). Longer intervals write each busy account once per interval instead of
// once per transaction, at the price of a longer catch-up from tx.v1 after a crash and of other
// instances seeing this one's terminal and device updates up to d later.
func WithCheckpointInterval(d time.Duration) Option { return func(p *Pipeline) { p.interval = d } }

// WithParallelism transforms up to n partitions of a poll at once (default GOMAXPROCS; 1:
// serially).
func WithParallelism(n int) Option { return func(p *Pipeline) { p.workers = max(n, 1) } }

// New returns a pipeline writing to outTopic; read catches partitions up from tx.v1.
func New(store Store, read Reader, cfg features.Config, outTopic string, now func() time.Time, opts ...Option) *Pipeline {
	p := &Pipeline{store: store, read: read, cfg: cfg, outTopic: outTopic, now: now,
		log: slog.New(slog.DiscardHandler), freshness: discardObserver{}, steps: newSteps(), parts: map[string]*partition{}, terminals: map[string]*terminalTiles{}, devices: map[string]*deviceAccounts{},
		deviceTTL: time.Second, terminalTTL: 10 * time.Minute, maxShared: maxCachedShared, maxAccounts: 200_000, workers: runtime.GOMAXPROCS(0), refreshed: make(chan deviceRefresh, 1)}
	for _, opt := range opts {
		opt(p)
	}
	return p
}

type discardObserver struct{}

func (discardObserver) Observe(float64) {}

// decodeTx decodes and validates one tx.v1 record.
func decodeTx(r *kgo.Record) (*fraudv1.Transaction, error) {
	tx := &fraudv1.Transaction{}
	if err := kafka.Decode(r, tx); err != nil {
		return nil, err
	}
	if err := validate(tx); err != nil {
		return nil, fmt.Errorf("%w: %v", kafka.ErrDecode, err)
	}
	return tx, nil
}

// Reset drops every partition's state at the next Transform, which then fails with
// kafka.ErrRebalanced so that the open transaction aborts: call it when partitions are
// revoked or lost. Safe from any goroutine.
//
// It also waits for a checkpoint write under way: Reset runs in the rebalance, before the
// partitions go to another instance, which must not see our write land after it loaded them.
func (p *Pipeline) Reset() {
	p.reset.Store(true)
	p.ckptMu.Lock()
	done := p.ckptDone
	p.ckptMu.Unlock()
	if done != nil {
		<-done
	}
}

// Aborted is the loop's hook after a transaction that did not commit: the state folded the
// aborted input, so it is dropped and reloaded (and caught up) from Redis.
//
// A pending Reset is void after it: everything is dropped, and the session has rewound to the
// committed offsets, so the partitions load from there.
func (p *Pipeline) Aborted() {
	p.reset.Store(false)
	p.dropAll()
}

func (p *Pipeline) dropAll() {
	p.parts = map[string]*partition{}
	p.dropShared()
}

// dropShared forgets the cached terminal tiles and device accounts: they hold deltas of
// partitions that are being dropped or caught up.
func (p *Pipeline) dropShared() {
	p.terminals = map[string]*terminalTiles{}
	p.devices = map[string]*deviceAccounts{}
	p.sharedGen++
}

// drop forgets one partition; the terminal cache holds its unflushed deltas, so it goes too.
func (p *Pipeline) drop(k string) {
	delete(p.parts, k)
	p.dropShared()
}

type item struct {
	rec  *kgo.Record // its value is the transaction features.v1 carries
	ev   features.Event
	ctx  context.Context
	span trace.Span
}

// poll is one partition's share of a poll: its records in order, then what Transform made of
// them.
type poll struct {
	key   string
	part  *partition
	recs  []*kgo.Record
	items []item
	dead  []*kgo.Record // dead letters
	out   []*kgo.Record
}

// split groups in by partition, keeping each partition's order.
func split(in []*kgo.Record) []*poll {
	var polls []*poll
	idx := map[string]int{}
	for _, r := range in {
		k := partitionKey(r.Topic, r.Partition)
		i, ok := idx[k]
		if !ok {
			i = len(polls)
			idx[k] = i
			polls = append(polls, &poll{key: k})
		}
		polls[i].recs = append(polls[i].recs, r)
	}
	return polls
}

// each runs fn(0) … fn(n-1) on up to p.workers goroutines and returns when all returned.
func (p *Pipeline) each(n int, fn func(i int)) {
	workers := min(n, p.workers)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// Transform is a kafka.Transform. Records that cannot be decoded or are invalid go to the
// dead-letter topic; a Redis failure is returned so the transaction aborts and retries.
//
// The poll's partitions are decoded and transformed in parallel (WithParallelism): they own
// disjoint accounts, and the shared terminal and device caches are locked per access. A
// partition's records are processed in order, so everything a partition's features read of its
// own past is exactly what a serial run reads.
//
// Each input record gets a consumer span, child of the trace context in its headers, and its
// output record carries that span's context: the trace runs ingest → here → scoring.
func (p *Pipeline) Transform(ctx context.Context, in []*kgo.Record) ([]*kgo.Record, error) {
	polls, err := p.process(ctx, in, nil)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, pl := range polls {
		n += len(pl.dead) + len(pl.out)
	}
	out := make([]*kgo.Record, 0, n)
	for _, pl := range polls {
		out = append(out, pl.dead...)
		out = append(out, pl.out...)
	}
	return out, nil
}

// TransformStream is Transform as a kafka.StreamTransform: each partition's records are
// emitted as soon as that partition is transformed, so they are on their way to the broker
// while the poll's other partitions are computed.
func (p *Pipeline) TransformStream(ctx context.Context, in []*kgo.Record, emit kafka.Emit) error {
	_, err := p.process(ctx, in, emit)
	return err
}

// process transforms one poll; with emit set, each partition's records go to it from the
// worker that transformed them.
func (p *Pipeline) process(ctx context.Context, in []*kgo.Record, emit kafka.Emit) ([]*poll, error) {
	p.settle(false)
	if p.reset.Swap(false) {
		// Partitions were revoked or lost: everything held is dropped. The transaction this
		// poll belongs to may hold earlier polls (a commit interval), not committed and
		// doomed with the revocation: loading a partition now would catch up to this poll's
		// first offset as if they were, and checkpoint Redis ahead of Kafka. Abort instead;
		// the input comes again from the committed offsets.
		p.dropAll()
		return nil, kafka.ErrRebalanced
	}
	start := time.Now()
	polls := split(in)
	p.each(len(polls), func(i int) { p.decode(ctx, polls[i]) })
	p.steps.decode.Add(time.Since(start).Seconds())
	start = time.Now()
	// The shared caches are bounded. At the bound they go before this poll's reads are worked
	// out, so that everything it needs is read: dropped after its read, the terminals and
	// devices it found cached (and did not read) would have been missing from its features.
	if len(p.terminals) >= p.maxShared || len(p.devices) >= p.maxShared {
		p.dropShared()
	}
	if p.ckpt != nil && p.mustAwaitCheckpoint(polls) {
		p.settle(true)
	}
	fail := func(err error) ([]*poll, error) {
		for _, pl := range polls {
			for _, it := range pl.items {
				telemetry.EndSpan(it.span, err)
			}
		}
		return nil, err
	}
	first := make(map[string]int64, len(polls)) // partition → first offset in this poll
	for _, pl := range polls {
		first[pl.key] = pl.recs[0].Offset
	}
	if err := p.load(ctx, in, first); err != nil {
		return fail(err)
	}
	for _, pl := range polls {
		pl.part = p.parts[pl.key]
	}
	snap, err := p.fetch(ctx, polls)
	if err != nil {
		return fail(err)
	}
	p.steps.read.Add(time.Since(start).Seconds())
	start = time.Now()
	defer func() { p.steps.compute.Add(time.Since(start).Seconds()) }()
	now := p.now()
	p.each(len(polls), func(i int) {
		pl := polls[i]
		p.transform(pl, snap, now)
		if emit != nil {
			for _, r := range pl.dead {
				emit(r)
			}
			for _, r := range pl.out {
				emit(r)
			}
		}
	})
	for _, pl := range polls {
		for _, it := range pl.items {
			it.span.End()
		}
		// Every record of the poll (applied, duplicate, stale or dead-lettered) moves its
		// partition's next offset, and so its checkpoint, past it.
		if last := pl.recs[len(pl.recs)-1].Offset; last >= pl.part.next {
			pl.part.next = last + 1
		}
	}
	return polls, nil
}

// mustAwaitCheckpoint tells whether the poll needs the checkpoint under way to finish first:
// a partition to load (its Redis checkpoint and accounts are what that write changes), or a
// terminal to read from Redis whose read tiles the write is adding to (read before it lands,
// they lack the deltas it took from the partitions; after, they have them: the merge must know
// which). Live traffic adds to recent tiles and reads tiles a label delay old, so that wait is
// for backfills and late events. Devices need no wait: their merge keeps the newest time per
// account, the same either way.
func (p *Pipeline) mustAwaitCheckpoint(polls []*poll) bool {
	ranges := map[string]window.Tiles{}
	for _, pl := range polls {
		if part := p.parts[pl.key]; part == nil || pl.recs[0].Offset < part.next {
			return true
		}
		for _, it := range pl.items {
			p.addTerminalRead(ranges, it.ev)
		}
	}
	now := p.now()
	for t, want := range ranges {
		if _, need := p.terminals[t].toRead(want, now, p.terminalTTL); !need {
			continue // cached: not read
		}
		// All of want: fetch's toRead, a moment later, may find the copy stale and read it
		// whole; live traffic adds to tiles above want anyway.
		for _, d := range p.ckpt.deltas {
			for tile := range d.Terminals[t] {
				if tile >= want.Lo && tile <= want.Hi {
					return true
				}
			}
		}
	}
	return false
}

// decode starts each record's span and decodes it; undecodable records become dead letters.
func (p *Pipeline) decode(ctx context.Context, pl *poll) {
	pl.items = make([]item, 0, len(pl.recs))
	for _, r := range pl.recs {
		sctx, span := telemetry.StartConsumerSpan(ctx, tracerName, r, SpanName)
		tx, err := decodeTx(r)
		if err != nil {
			dl := kafka.DeadLetter(r, err)
			telemetry.Inject(sctx, dl)
			pl.dead = append(pl.dead, dl)
			p.Stats.DeadLetters.Add(1)
			p.log.WarnContext(sctx, "record sent to the dead-letter topic", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			telemetry.EndSpan(span, err)
			continue
		}
		span.SetAttributes(telemetry.TransactionID(tx.GetId()))
		pl.items = append(pl.items, item{rec: r, ev: features.FromTransaction(tx), ctx: sctx, span: span})
	}
}

// transform computes and applies one partition's items in order and encodes their outputs.
func (p *Pipeline) transform(pl *poll, snap *window.Snapshot, now time.Time) {
	part := pl.part
	v := &view{p: p, part: part}
	pl.out = make([]*kgo.Record, 0, len(pl.items))
	for i := range pl.items {
		it := &pl.items[i]
		a := part.accounts[it.ev.AccountID]
		if a == nil {
			if a = snap.Accounts[it.ev.AccountID]; a == nil {
				a = &features.Account{}
			}
			part.accounts[it.ev.AccountID] = a
		}
		stale := it.rec.Offset < part.next
		if !stale && features.Duplicate(a, it.ev) {
			// The same transaction again (a client retry after a 503 whose record was
			// written anyway): its first occurrence was emitted; this one changes nothing.
			p.Stats.Duplicates.Add(1)
			p.log.WarnContext(it.ctx, "duplicate transaction dropped", "transaction_id", it.ev.TransactionID,
				"partition", it.rec.Partition, "offset", it.rec.Offset)
			if it.span.IsRecording() {
				it.span.SetAttributes(attribute.Bool("vigil.duplicate", true))
			}
			continue
		}
		vec := features.Compute(p.cfg, a, v, it.ev)
		late := features.Late(p.cfg, a, it.ev)
		if stale {
			// Already in the checkpoint (Redis ahead of Kafka, which the design rules out):
			// the features come from later state and the windows are not applied twice.
			p.Stats.Stale.Add(1)
		} else {
			features.Apply(p.cfg, a, v, it.ev)
			part.dirty[it.ev.AccountID] = true
		}
		p.freshness.Observe(max(0, now.Sub(it.ev.EventTime).Seconds()))
		p.Stats.Transactions.Add(1)
		rec := enrichedRecord(p.outTopic, it.rec, it.ev.AccountID, vec, now, late)
		if late {
			p.Stats.Late.Add(1)
		}
		if it.span.IsRecording() {
			it.span.SetAttributes(attribute.Bool("vigil.late", late))
		}
		telemetry.Inject(it.ctx, rec)
		pl.out = append(pl.out, rec)
	}
}

// load makes sure every partition in the poll is held in memory with its state complete up to
// the poll's first offset: a partition not held is loaded from its Redis checkpoint and caught
// up from tx.v1, then checkpointed.
func (p *Pipeline) load(ctx context.Context, in []*kgo.Record, first map[string]int64) error {
	var missing []string
	for k, o := range first {
		part := p.parts[k]
		if part != nil && o < part.next {
			// The input rewound without an abort or reset we saw: reload.
			p.log.Warn("partition input rewound; reloading its windows", "partition", k, "offset", o, "next", part.next)
			p.drop(k)
			part = nil
		}
		if part == nil {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	snap, err := p.store.Fetch(ctx, window.Request{Checkpoints: missing})
	if err != nil {
		return err
	}
	recOf := map[string]*kgo.Record{}
	for _, r := range in {
		recOf[partitionKey(r.Topic, r.Partition)] = r
	}
	for _, k := range missing {
		r := recOf[k]
		part := newPartition(r.Topic, r.Partition, snap.Checkpoints[k])
		if err := p.catchUp(ctx, part, first[k]); err != nil {
			return fmt.Errorf("catch up %s: %w", k, err)
		}
		p.parts[k] = part
	}
	p.dropShared() // may miss what the catch-ups added
	return nil
}

// CatchUpTo folds partition's committed records from its Redis checkpoint up to end into the
// windows and checkpoints them, as after a crash; it returns how many records it folded. The
// rebuild command runs it over every partition.
func (p *Pipeline) CatchUpTo(ctx context.Context, topic string, num int32, end int64) (int64, error) {
	k := partitionKey(topic, num)
	p.settle(true)
	snap, err := p.store.Fetch(ctx, window.Request{Checkpoints: []string{k}})
	if err != nil {
		return 0, err
	}
	part := newPartition(topic, num, snap.Checkpoints[k])
	before := p.Stats.CaughtUp.Load()
	err = p.catchUp(ctx, part, end)
	return p.Stats.CaughtUp.Load() - before, err
}

// catchUp folds the committed records of part in [part.next, to) into its state and
// checkpoints it. Nothing is emitted: their features were emitted when they were committed.
func (p *Pipeline) catchUp(ctx context.Context, part *partition, to int64) error {
	if part.next >= to {
		return nil
	}
	began := time.Now()
	var batch []features.Event
	foldBatch := func() error {
		if len(batch) == 0 {
			return nil
		}
		var need []string
		seen := map[string]bool{}
		for _, ev := range batch {
			switch {
			case part.accounts[ev.AccountID] != nil:
			case part.complete:
				part.accounts[ev.AccountID] = &features.Account{}
			case !seen[ev.AccountID]:
				seen[ev.AccountID] = true
				need = append(need, ev.AccountID)
			}
		}
		req := window.Request{Accounts: need}
		if len(need) > 0 {
			req.Checkpoints = []string{part.key()}
		}
		snap, err := p.store.Fetch(ctx, req)
		if err != nil {
			return err
		}
		if len(need) > 0 {
			if err := p.checkCheckpoint(part, snap.Checkpoints[part.key()]); err != nil {
				return err
			}
		}
		for id, a := range snap.Accounts {
			part.accounts[id] = a
		}
		rec := &view{p: p, part: part, record: true}
		for _, ev := range batch {
			if a := part.accounts[ev.AccountID]; !features.Duplicate(a, ev) {
				features.Apply(p.cfg, a, rec, ev)
				part.dirty[ev.AccountID] = true
			}
		}
		p.Stats.CaughtUp.Add(int64(len(batch)))
		batch = batch[:0]
		return nil
	}
	err := p.read(ctx, part.topic, part.num, part.next, to, func(r *kgo.Record) error {
		tx, err := decodeTx(r)
		if err != nil {
			return nil // dead-lettered when it was first processed
		}
		batch = append(batch, features.FromTransaction(tx))
		if len(batch) == 1000 {
			return foldBatch()
		}
		return nil
	})
	if err == nil {
		err = foldBatch()
	}
	if err != nil {
		return err
	}
	from := part.flushed
	part.next = to
	if err := p.flush(ctx, []*partition{part}); err != nil {
		return err
	}
	p.log.Info("caught up partition windows from tx.v1", "partition", part.key(), "from", from, "to", to, "took", time.Since(began))
	return nil
}

// fetch reads, in one round trip, the accounts of the poll not held in memory, the devices not
// cached and the terminal tiles not cached, and merges in this instance's unflushed deltas.
//
// A device seen before whose cached accounts got older than deviceTTL is not read in that round
// trip: the poll uses the cached accounts (which hold every update of this instance) and a
// background read brings the other instances' updates in before a later poll.
func (p *Pipeline) fetch(ctx context.Context, polls []*poll) (*window.Snapshot, error) {
	p.mergeRefreshed()
	now := p.now()
	var req window.Request
	req.Terminals = map[string]window.Tiles{}
	seenAcct := map[string]bool{}
	seenDev := map[string]bool{}
	var stale []string
	for _, pl := range polls {
		p.request(&req, pl, now, seenAcct, seenDev, &stale)
	}
	snap, err := p.fetchRequest(ctx, req, now)
	if err == nil && len(stale) > 0 {
		p.refresh(ctx, stale, now)
	}
	return snap, err
}

// ErrCheckpointMoved: a read found a partition's Redis checkpoint other than the one this
// instance holds the partition from, so what it read is not the partition's state: Redis lost
// it (FLUSHALL, a restart without its last writes) or another writer (a rebuild, an instance
// that took the partition over) replaced it. The transaction aborts and the partition is
// loaded again from what Redis holds now.
var ErrCheckpointMoved = errors.New("partition checkpoint moved in Redis")

// checkCheckpoint compares a partition's checkpoint as read from Redis with the one it was
// loaded from or last wrote (or the one a write under way is setting).
func (p *Pipeline) checkCheckpoint(part *partition, got int64) error {
	if got == part.flushed {
		return nil
	}
	if p.ckpt != nil {
		for _, d := range p.ckpt.deltas {
			if d.Partition == part.key() && got == d.To {
				return nil
			}
		}
	}
	p.Stats.Conflicts.Add(1)
	p.drop(part.key())
	return fmt.Errorf("%w: %s is %d in Redis, this instance holds it from %d", ErrCheckpointMoved, part.key(), got, part.flushed)
}

// addTerminalRead widens ranges[ev's terminal] to the tiles ev's terminal features read.
func (p *Pipeline) addTerminalRead(ranges map[string]window.Tiles, ev features.Event) {
	t := ev.TerminalID
	if t == "" {
		return
	}
	lo, hi := features.TerminalTilesRead(p.cfg, ev.EventTime)
	if d, ok := ranges[t]; ok {
		lo, hi = min(lo, d.Lo), max(hi, d.Hi)
	}
	ranges[t] = window.Tiles{Lo: lo, Hi: hi}
}

// refresh reads devices in the background; mergeRefreshed takes the result in.
func (p *Pipeline) refresh(ctx context.Context, devices []string, now time.Time) {
	p.refreshing = true
	gen := p.sharedGen
	go func() {
		snap, err := p.store.Fetch(ctx, window.Request{Devices: devices})
		r := deviceRefresh{gen: gen, read: now, err: err}
		if err == nil {
			r.devices = snap.Devices
		}
		p.refreshed <- r
	}()
}

// mergeRefreshed merges a finished background device read into the cache, keeping each
// account's newest time: the cache already has this instance's updates, the read adds the
// other instances'. Accounts Redis pruned may stay cached; they are older than any count reads.
func (p *Pipeline) mergeRefreshed() {
	var r deviceRefresh
	select {
	case r = <-p.refreshed:
	default:
		return
	}
	p.refreshing = false
	if r.err != nil {
		p.log.Warn("background device read failed; the devices are read again at the next poll", "err", r.err)
		return
	}
	if r.gen != p.sharedGen {
		return // the cache was dropped since: the devices are read again when they come
	}
	for dev, accts := range r.devices {
		c := p.devices[dev]
		if c == nil {
			continue
		}
		for a, ms := range accts {
			if old, ok := c.accts[a]; !ok || ms > old {
				c.accts[a] = ms
			}
		}
		c.read = r.read
	}
}

// request adds to req what pl's items need read.
// Devices whose cache is stale go to stale instead, unless a background read is under way.
func (p *Pipeline) request(req *window.Request, pl *poll, now time.Time, seenAcct, seenDev map[string]bool, stale *[]string) {
	part := pl.part
	for _, it := range pl.items {
		if id := it.ev.AccountID; !part.complete && part.accounts[id] == nil && !seenAcct[id] {
			seenAcct[id] = true
			req.Accounts = append(req.Accounts, id)
		}
		if d := it.ev.DeviceID; d != "" && !seenDev[d] {
			seenDev[d] = true
			switch c := p.devices[d]; {
			case c == nil || c.read.IsZero() || p.deviceTTL <= 0: // never read, or read every poll
				req.Devices = append(req.Devices, d)
			case now.Sub(c.read) >= p.deviceTTL && !p.refreshing:
				*stale = append(*stale, d)
			}
		}
		p.addTerminalRead(req.Terminals, it.ev)
	}
}

// fetchRequest reads req and merges this instance's unflushed deltas into the caches.
func (p *Pipeline) fetchRequest(ctx context.Context, req window.Request, now time.Time) (*window.Snapshot, error) {
	// Terminals whose cached tiles cover every event of the poll need no read; the others read
	// the tiles they lack.
	type terminalRead struct {
		want window.Tiles
		old  *terminalTiles // the entry toRead judged: the tiles of want below the read
	}
	wants := make(map[string]terminalRead, len(req.Terminals))
	for t, want := range req.Terminals {
		read, need := p.terminals[t].toRead(want, now, p.terminalTTL)
		if !need {
			delete(req.Terminals, t)
			continue
		}
		wants[t], req.Terminals[t] = terminalRead{want, p.terminals[t]}, read
	}
	if len(req.Accounts)+len(req.Devices)+len(req.Terminals)+len(req.Checkpoints) == 0 {
		return &window.Snapshot{}, nil // all cached: no round trip
	}
	// The held partitions' checkpoints are read with the rest, atomically: a state Redis lost
	// (FLUSHALL, a restart without the last writes) or another writer replaced must not be
	// read as ours, where a missing account would be taken for a new one.
	for _, part := range p.parts {
		req.Checkpoints = append(req.Checkpoints, part.key())
	}
	snap, err := p.store.Fetch(ctx, req)
	if err != nil {
		return nil, err
	}
	for _, part := range p.parts {
		if err := p.checkCheckpoint(part, snap.Checkpoints[part.key()]); err != nil {
			return nil, err
		}
	}
	for t, tiles := range snap.Terminals {
		w := wants[t]
		p.terminals[t] = p.mergeTerminal(t, w.old, w.want, req.Terminals[t], tiles, now)
	}
	// This instance's device updates Redis may not have: each held partition's unflushed ones,
	// and those of a checkpoint under way (merged whether or not it landed: newest time wins).
	var unflushed []window.Delta
	for _, part := range p.parts {
		unflushed = append(unflushed, window.Delta{Devices: part.devices, DevicePrune: part.devicePrune})
	}
	if p.ckpt != nil {
		unflushed = append(unflushed, p.ckpt.deltas...)
	}
	for dev, accts := range snap.Devices {
		for _, d := range unflushed {
			for a, seen := range d.Devices[dev] {
				accts[a] = max(accts[a], seen.Ms)
			}
		}
		for _, d := range unflushed {
			for a, below := range d.DevicePrune[dev] {
				if ms, ok := accts[a]; ok && ms < below {
					delete(accts, a)
				}
			}
		}
		p.devices[dev] = &deviceAccounts{read: now, accts: accts}
	}
	return snap, nil
}

// Committed is the loop's hook after a committed transaction: it starts checkpointing the
// partitions held, in the background, once the checkpoint interval passed and the previous
// write finished. A partition whose checkpoint fails is dropped from memory and caught up from
// tx.v1 when it next comes (Redis down, or another writer took over).
func (p *Pipeline) Committed(ctx context.Context, _ []*kgo.Record) {
	p.settle(false)
	if p.ckpt != nil {
		return // still writing: the next commit checkpoints what changed since
	}
	if now := p.now(); p.interval <= 0 || now.Sub(p.lastFlush) >= p.interval {
		p.lastFlush = now
		p.startCheckpoint(ctx, p.held())
	}
}

func (p *Pipeline) held() []*partition {
	parts := make([]*partition, 0, len(p.parts))
	for _, part := range p.parts {
		parts = append(parts, part)
	}
	return parts
}

// FlushAll checkpoints every partition held and waits for it; the loop calls it once more
// after it stopped.
func (p *Pipeline) FlushAll(ctx context.Context) {
	_ = p.flush(ctx, p.held()) // settle logs a failure
}

// flush checkpoints parts and waits for it (after the write under way, if any); a part that
// fails is dropped from memory.
func (p *Pipeline) flush(ctx context.Context, parts []*partition) error {
	p.settle(true)
	c := p.startCheckpoint(ctx, parts)
	if c == nil {
		return nil
	}
	c.waited = true
	return p.settle(true)
}

// startCheckpoint takes the pending state of parts (accounts encoded, in parallel; terminal
// and device deltas moved out) and writes it in the background; nil when nothing is pending.
// The loop's goroutine only; no other write may be under way.
func (p *Pipeline) startCheckpoint(ctx context.Context, parts []*partition) *checkpoint {
	c := &checkpoint{done: make(chan struct{})}
	for _, part := range parts {
		if part.pending() {
			c.parts = append(c.parts, part)
		}
	}
	if len(c.parts) == 0 {
		return nil
	}
	c.deltas = make([]window.Delta, len(c.parts))
	encErrs := make([]error, len(c.parts))
	p.each(len(c.parts), func(i int) {
		part := c.parts[i]
		accts := make(map[string][]byte, len(part.dirty))
		for id := range part.dirty {
			b, err := part.accounts[id].MarshalBinary()
			if err != nil {
				encErrs[i] = fmt.Errorf("account %s: %w", id, err)
				return
			}
			accts[id] = b
		}
		c.deltas[i] = window.Delta{Partition: part.key(), From: part.flushed, To: part.next, Accounts: accts,
			Terminals: part.terminals, Devices: part.devices, DevicePrune: part.devicePrune}
	})
	if err := errors.Join(encErrs...); err != nil {
		c.err = err // never expected: MarshalBinary does not fail
		close(c.done)
		p.ckpt = c
		return c
	}
	for _, part := range c.parts {
		clear(part.dirty)
		part.terminals = map[string]map[int64]window.TerminalDelta{}
		part.devices = map[string]map[string]window.DeviceSeen{}
		part.devicePrune = map[string]map[string]int64{}
	}
	p.ckpt = c
	p.ckptMu.Lock()
	p.ckptDone = c.done
	p.ckptMu.Unlock()
	go func() {
		defer close(c.done)
		c.errs, c.err = p.store.Flush(context.WithoutCancel(ctx), c.deltas)
	}()
	return c
}

// settle takes in the result of the checkpoint write under way, if it finished (or, with wait,
// once it finished): partitions whose checkpoint failed are dropped, those that succeeded
// record it and may evict accounts. It returns the write's errors. The loop's goroutine only.
func (p *Pipeline) settle(wait bool) error {
	c := p.ckpt
	if c == nil {
		return nil
	}
	if wait {
		<-c.done
	} else {
		select {
		case <-c.done:
		default:
			return nil
		}
	}
	p.ckpt = nil
	p.ckptMu.Lock()
	p.ckptDone = nil
	p.ckptMu.Unlock()
	// A partition dropped while the write was under way is not ours to update any more; its
	// checkpoint in Redis is consistent either way (taken after a commit).
	ours := func(part *partition) bool { return c.waited || p.parts[part.key()] == part }
	if c.err != nil {
		p.log.Warn("window checkpoint failed; the partitions will be caught up from tx.v1", "err", c.err)
		p.Stats.FlushErrors.Add(int64(len(c.parts)))
		for _, part := range c.parts {
			if ours(part) {
				p.drop(part.key())
			}
		}
		return c.err
	}
	var failed []error
	for i, part := range c.parts {
		if err := c.errs[i]; err != nil {
			if errors.Is(err, window.ErrConflict) {
				p.Stats.Conflicts.Add(1)
			} else {
				p.Stats.FlushErrors.Add(1)
			}
			if ours(part) {
				p.drop(part.key())
			}
			failed = append(failed, err)
			continue
		}
		p.Stats.Flushes.Add(1)
		if !ours(part) {
			continue
		}
		part.flushed = c.deltas[i].To
		if len(part.accounts) > p.maxAccounts {
			// Every account not changed since the write began is in Redis now: evict those
			// down to half (map order is random enough).
			for id := range part.accounts {
				if len(part.accounts) <= p.maxAccounts/2 {
					break
				}
				if !part.dirty[id] {
					delete(part.accounts, id)
					part.complete = false
				}
			}
		}
	}
	err := errors.Join(failed...)
	if err != nil {
		p.log.Warn("window checkpoint refused or failed; those partitions will be caught up from tx.v1", "err", err)
	}
	return err
}

// mergeTerminal is the cache entry of a terminal whose tiles read (part of want, see toRead)
// came from Redis: read's tiles from Redis plus this instance's unflushed deltas (the held
// partitions'; mustAwaitCheckpoint kept a write under way from touching them), the tiles of
// want below read from old.
func (p *Pipeline) mergeTerminal(t string, old *terminalTiles, want, read window.Tiles, tiles map[int64]*[2]int64, now time.Time) *terminalTiles {
	c := &terminalTiles{lo: want.Lo, tiles: make([][2]int64, want.Hi-want.Lo+1), read: now}
	if read.Lo > want.Lo { // old covers [want.Lo, read.Lo)
		c.read = old.read
		copy(c.tiles, old.tiles[want.Lo-old.lo:read.Lo-old.lo])
	}
	for tile, n := range tiles {
		if tile >= read.Lo && tile <= read.Hi {
			c.tiles[tile-want.Lo] = *n
		}
	}
	for _, part := range p.parts {
		for tile, td := range part.terminals[t] {
			if tile >= read.Lo && tile <= read.Hi {
				c.tiles[tile-want.Lo][0] += td.Tx
			}
		}
	}
	return c
}

// view is features.Shared for one poll: the cached terminal tiles and the devices read from
// Redis, both with this instance's unflushed deltas, recording each partition's deltas for its
// checkpoint. With record set (catching up) it only records. Each partition transformed in
// parallel has its own view; the instance-wide caches are read and written under p.shared.
type view struct {
	p      *Pipeline
	part   *partition
	record bool
}

func (v *view) TerminalTiles(terminal string, lo, hi int64) (tx, fraud int64) {
	v.p.shared.Lock()
	defer v.p.shared.Unlock()
	c := v.p.terminals[terminal]
	if c == nil {
		return 0, 0
	}
	return c.sum(lo, hi)
}

func (v *view) DeviceAccounts(device, account string, after int64) int64 {
	var n int64
	v.p.shared.Lock()
	defer v.p.shared.Unlock()
	c := v.p.devices[device]
	if c == nil {
		return 0
	}
	for _, ms := range c.accts {
		if ms > after { // counting the account too and taking it off after: no string compares
			n++
		}
	}
	if ms, ok := c.accts[account]; ok && ms > after {
		n--
	}
	return n
}

func (v *view) AddTerminalTx(terminal string, tile, pruneBelow int64) {
	tiles := v.part.terminals[terminal]
	if tiles == nil {
		tiles = map[int64]window.TerminalDelta{}
		v.part.terminals[terminal] = tiles
	}
	d := tiles[tile]
	d.Tx++
	d.PruneBelow = max(d.PruneBelow, pruneBelow)
	tiles[tile] = d
	if v.record {
		return
	}
	v.p.shared.Lock()
	defer v.p.shared.Unlock()
	// Tiles outside the cached range are read from Redis and the partitions' deltas when an
	// event first needs them.
	if c := v.p.terminals[terminal]; c != nil {
		c.addTx(tile)
	}
}

func (v *view) SeeDevice(device, account string, ms, pruneBelow int64) {
	accts := v.part.devices[device]
	if accts == nil {
		accts = map[string]window.DeviceSeen{}
		v.part.devices[device] = accts
	}
	s := accts[account]
	s.Ms = max(s.Ms, ms)
	accts[account] = s
	if v.record {
		return
	}
	v.p.shared.Lock()
	defer v.p.shared.Unlock()
	c := v.p.devices[device]
	if c == nil {
		c = &deviceAccounts{accts: map[string]int64{}} // never read: the next poll reads it
		v.p.devices[device] = c
	}
	d := c.accts
	old, ok := d[account]
	if !ok || ms > old {
		d[account] = ms
	}
	if !ok {
		// A new account on the device: the ones not seen since pruneBelow go, here and, if
		// still that old when the checkpoint runs, in Redis.
		for a, seen := range d {
			if seen < pruneBelow {
				delete(d, a)
				pr := v.part.devicePrune[device]
				if pr == nil {
					pr = map[string]int64{}
					v.part.devicePrune[device] = pr
				}
				pr[a] = max(pr[a], pruneBelow)
			}
		}
	}
}

func validate(tx *fraudv1.Transaction) error {
	switch {
	case tx.GetId() == "":
		return fmt.Errorf("transaction without id")
	case tx.GetAccountId() == "":
		return fmt.Errorf("transaction %s without account_id", tx.GetId())
	case tx.GetEventTime() == nil:
		return fmt.Errorf("transaction %s without event_time", tx.GetId())
	}
	return nil
}
