// Package pipeline turns features.v1 records into decisions.v1 records inside the exactly-once
// loop: decode, check the feature schema, score the batch within a deadline, read the account
// decision windows within a deadline, match lists, evaluate rules, decide, record the windows,
// encode.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/libs/telemetry"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/scoring/internal/decide"
	"github.com/vigil-fraud/vigil/services/scoring/internal/lists"
	"github.com/vigil-fraud/vigil/services/scoring/internal/modelset"
	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
	"github.com/vigil-fraud/vigil/services/scoring/internal/windows"
)

// Windows reads and records decision windows (windows.Store in production).
type Windows interface {
	Load(ctx context.Context, reqs []windows.Request) (map[string][]windows.Entry, error)
	Record(ctx context.Context, byAccount map[string][]windows.Entry) error
}

// Recorder receives the decisions of each successful transform call (one Kafka transaction)
// before the transaction ends (metrics.Metrics in production).
type Recorder interface {
	Batch(ds []*fraudv1.Decision)
}

// Deps are the live sources the pipeline reads once per batch, so a reload never lands
// mid-batch.
type Deps struct {
	Models func() *modelset.Set
	Rules  func() *rules.Set
	Lists  func() *lists.Snapshot
	// Windows may be nil: decisions then see empty windows.
	Windows Windows
	// Recorder may be nil.
	Recorder Recorder
}

// Budgets bound the calls that may stall.
type Budgets struct {
	Model   time.Duration
	Windows time.Duration
}

// Stats count what the transform did.
type Stats struct {
	Decisions          atomic.Int64
	Degraded           atomic.Int64
	WindowWriteFailure atomic.Int64
	DeadLettered       atomic.Int64
}

// Pipeline holds the transform's dependencies.
type Pipeline struct {
	deps     Deps
	policy   decide.Policy
	budgets  Budgets
	outTopic string
	now      func() time.Time
	log      *slog.Logger
	Stats    Stats
	// busy marks a model whose call outlived its budget and still runs: the next batches are
	// degraded at once instead of piling up goroutines behind a stuck model.
	busy sync.Map // *modelset.Loaded → *atomic.Bool
}

// New returns a pipeline writing decisions to outTopic.
func New(deps Deps, p decide.Policy, b Budgets, outTopic string, now func() time.Time, log *slog.Logger) *Pipeline {
	if b.Model <= 0 {
		b.Model = 200 * time.Millisecond
	}
	if b.Windows <= 0 {
		b.Windows = 200 * time.Millisecond
	}
	return &Pipeline{deps: deps, policy: p, budgets: b, outTopic: outTopic, now: now, log: log}
}

const tracerName = "github.com/vigil-fraud/vigil/services/scoring/internal/pipeline"

type item struct {
	et  *fraudv1.EnrichedTransaction
	src *kgo.Record
	// ctx holds this record's span; the decision record continues the trace from it.
	ctx  context.Context
	span trace.Span
}

// Transform is a kafka.Transform. Undecodable records and records of another feature schema go
// to the dead-letter topic with the reason. A model or Redis that misses its budget makes the
// batch's decisions degraded (rules and lists only) instead of stalling the partition.
func (p *Pipeline) Transform(ctx context.Context, in []*kgo.Record) ([]*kgo.Record, error) {
	models, rs, ls := p.deps.Models(), p.deps.Rules(), p.deps.Lists()
	out := make([]*kgo.Record, 0, len(in))
	items := make([]item, 0, len(in))
	vectors := make([][]float64, 0, len(in))
	// Spans still open when Transform returns early (an error aborts the batch) end here;
	// ending an ended span is a no-op.
	defer func() {
		for _, it := range items {
			it.span.End()
		}
	}()
	for _, r := range in {
		sctx, span := telemetry.StartConsumerSpan(ctx, tracerName, r, "scoring process")
		et := &fraudv1.EnrichedTransaction{}
		if err := kafka.Decode(r, et); err != nil {
			out = append(out, kafka.DeadLetter(r, err))
			p.Stats.DeadLettered.Add(1)
			telemetry.EndSpan(span, err)
			continue
		}
		if err := check(et, models.Primary); err != nil {
			out = append(out, kafka.DeadLetter(r, err))
			p.Stats.DeadLettered.Add(1)
			telemetry.EndSpan(span, err)
			continue
		}
		span.SetAttributes(telemetry.TransactionID(et.GetTransaction().GetId()))
		items = append(items, item{et, r, sctx, span})
		vectors = append(vectors, et.GetFeatures().GetValues())
	}
	if len(items) == 0 {
		// Still a transaction: the recorder learns that the previous one has ended.
		if p.deps.Recorder != nil {
			p.deps.Recorder.Batch(nil)
		}
		return out, nil
	}

	scores, modelErr := p.score(ctx, models.Primary, vectors)
	if modelErr != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p.log.Warn("model unavailable; deciding with rules and lists only", "model", models.Primary.Version(), "records", len(items), "err", modelErr)
	}
	var shadow []float64
	if models.Shadow != nil {
		var err error
		if shadow, err = p.score(ctx, models.Shadow, vectors); err != nil {
			p.log.Warn("shadow model failed; decisions carry no shadow score", "model", models.Shadow.Version(), "err", err)
		}
	}

	entries, windowsOK := p.loadWindows(ctx, items)

	now := p.now()
	recorded := map[string][]windows.Entry{}
	decided := make([]*fraudv1.Decision, 0, len(items))
	for i, it := range items {
		tx := it.et.GetTransaction()
		atMs := tx.GetEventTime().AsTime().UnixMilli()
		in := decide.Input{ET: it.et, WindowOK: windowsOK, Model: decide.ModelResult{Version: models.Primary.Version()}}
		if modelErr == nil {
			in.Model.OK, in.Model.Score = true, scores[i]
			in.Model.Contributions = models.Primary.Contributions(vectors[i])
		}
		if shadow != nil {
			in.Shadow = &decide.Shadow{Version: models.Shadow.Version(), Score: shadow[i]}
		}
		if windowsOK {
			acct := tx.GetAccountId()
			in.Window = windows.Compute(append(entries[acct], recorded[acct]...), atMs)
		}
		in.Hits = ls.Match(decide.ListKeys(it.et), now)
		d, err := decide.Decide(in, rs, p.policy, now)
		if err != nil {
			// A rule failing at run time on this input fails every retry too.
			telemetry.EndSpan(it.span, err)
			out = append(out, kafka.DeadLetter(it.src, err))
			p.Stats.DeadLettered.Add(1)
			continue
		}
		if !in.Model.OK || !in.WindowOK {
			p.Stats.Degraded.Add(1)
		}
		recorded[tx.GetAccountId()] = append(recorded[tx.GetAccountId()], windows.Entry{
			Partition: it.src.Partition, Offset: it.src.Offset, DecisionID: d.GetDecisionId(),
			Action: actionByte(d.GetAction()), Score: d.GetScore(), AtMs: atMs,
		})
		rec, err := kafka.NewRecord(p.outTopic, d.GetAccountId(), d)
		if err != nil {
			return nil, err
		}
		telemetry.Inject(it.ctx, rec)
		it.span.SetAttributes(attribute.String("vigil.action", d.GetAction().String()))
		it.span.End()
		out = append(out, rec)
		decided = append(decided, d)
		p.Stats.Decisions.Add(1)
	}
	if p.deps.Windows != nil && windowsOK {
		wctx, cancel := context.WithTimeout(ctx, p.budgets.Windows)
		err := p.deps.Windows.Record(wctx, recorded)
		cancel()
		if err != nil {
			// The decisions stand; only later windows undercount. A replay writes them again.
			p.Stats.WindowWriteFailure.Add(1)
			p.log.Warn("recording decision windows failed", "accounts", len(recorded), "err", err)
		}
	}
	if p.deps.Recorder != nil {
		p.deps.Recorder.Batch(decided)
	}
	return out, nil
}

// score runs s within the model budget. Scoring is CPU-bound and cannot be interrupted: on a
// timeout the goroutine finishes in the background and its result is dropped.
func (p *Pipeline) score(ctx context.Context, s *modelset.Loaded, vectors [][]float64) ([]float64, error) {
	type result struct {
		scores []float64
		err    error
	}
	v, _ := p.busy.LoadOrStore(s, &atomic.Bool{})
	running := v.(*atomic.Bool)
	if !running.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("model %s: still busy with an earlier batch past its budget", s.Version())
	}
	ch := make(chan result, 1)
	go func() {
		defer running.Store(false)
		sc, err := s.Score(vectors)
		ch <- result{sc, err}
	}()
	t := time.NewTimer(p.budgets.Model)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err == nil && len(r.scores) != len(vectors) {
			r.err = fmt.Errorf("model %s returned %d scores for %d vectors", s.Version(), len(r.scores), len(vectors))
		}
		for i, v := range r.scores {
			if r.err == nil && !decide.Finite(v) {
				r.err = fmt.Errorf("model %s scored vector %d as %v", s.Version(), i, v)
			}
		}
		return r.scores, r.err
	case <-t.C:
		return nil, fmt.Errorf("model %s: %w after %s", s.Version(), context.DeadlineExceeded, p.budgets.Model)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Pipeline) loadWindows(ctx context.Context, items []item) (map[string][]windows.Entry, bool) {
	if p.deps.Windows == nil {
		return nil, true
	}
	reqs := map[string]*windows.Request{}
	var order []string
	for _, it := range items {
		tx := it.et.GetTransaction()
		since := tx.GetEventTime().AsTime().UnixMilli() - int64(24*time.Hour/time.Millisecond)
		r, ok := reqs[tx.GetAccountId()]
		if !ok {
			// The first record of the account in this batch is the watermark: see package windows.
			reqs[tx.GetAccountId()] = &windows.Request{Account: tx.GetAccountId(), Partition: it.src.Partition, Watermark: it.src.Offset, SinceMs: since}
			order = append(order, tx.GetAccountId())
			continue
		}
		r.SinceMs = min(r.SinceMs, since)
	}
	list := make([]windows.Request, 0, len(order))
	for _, a := range order {
		list = append(list, *reqs[a])
	}
	wctx, cancel := context.WithTimeout(ctx, p.budgets.Windows)
	defer cancel()
	entries, err := p.deps.Windows.Load(wctx, list)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			p.log.Warn("decision windows unavailable; deciding with rules and lists only", "accounts", len(list), "err", err)
		}
		return nil, false
	}
	return entries, true
}

func actionByte(a fraudv1.Action) byte {
	switch a {
	case fraudv1.Action_ACTION_DECLINE:
		return 'd'
	case fraudv1.Action_ACTION_REVIEW:
		return 'r'
	}
	return 'a'
}

func check(et *fraudv1.EnrichedTransaction, s modelset.Scorer) error {
	fv := et.GetFeatures()
	switch {
	case et.GetTransaction().GetId() == "" || et.GetTransaction().GetAccountId() == "":
		return fmt.Errorf("%w: enriched transaction without id or account", kafka.ErrDecode)
	case fv.GetSchemaVersion() != s.FeatureSchema():
		return fmt.Errorf("feature schema %q, model %s expects %q", fv.GetSchemaVersion(), s.Version(), s.FeatureSchema())
	}
	// features.v1 leaves the names out: the schema version and hash fix them.
	names := features.NamesOf(fv.GetSchemaVersion(), fv.GetSchemaHash(), fv.GetNames())
	switch {
	case names == nil:
		return fmt.Errorf("%w: feature schema %s hash %q unknown and no names carried", kafka.ErrDecode, fv.GetSchemaVersion(), fv.GetSchemaHash())
	case len(fv.GetValues()) != len(names):
		return fmt.Errorf("%w: %d feature values for %d names", kafka.ErrDecode, len(fv.GetValues()), len(names))
	}
	return nil
}
