package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/loadtest/harness"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// Invariant is one checked guarantee: what was counted and what broke it.
type Invariant struct {
	ID         int            `json:"id"`
	Name       string         `json:"name"`
	Counts     map[string]int `json:"counts"`
	Violations []Violation    `json:"violations,omitempty"`
	Notes      []string       `json:"notes,omitempty"`
}

// Violation is one kind of breach with a count and a few examples.
type Violation struct {
	Kind     string   `json:"kind"`
	Count    int      `json:"count"`
	Examples []string `json:"examples,omitempty"`
}

// OK reports whether nothing broke the invariant.
func (in *Invariant) OK() bool { return len(in.Violations) == 0 }

func (in *Invariant) violate(kind, example string) {
	for i := range in.Violations {
		if in.Violations[i].Kind == kind {
			in.Violations[i].Count++
			if len(in.Violations[i].Examples) < 5 {
				in.Violations[i].Examples = append(in.Violations[i].Examples, example)
			}
			return
		}
	}
	in.Violations = append(in.Violations, Violation{Kind: kind, Count: 1, Examples: []string{example}})
}

func (in *Invariant) count(k string, n int) {
	if in.Counts == nil {
		in.Counts = map[string]int{}
	}
	in.Counts[k] += n
}

// Print writes the invariant, its counts and violations.
func (in *Invariant) Print(w io.Writer) {
	status := "OK  "
	if !in.OK() {
		status = "FAIL"
	}
	keys := make([]string, 0, len(in.Counts))
	for k := range in.Counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, in.Counts[k]))
	}
	fmt.Fprintf(w, "%s invariant %d: %s\n       %s\n", status, in.ID, in.Name, strings.Join(parts, " "))
	for _, v := range in.Violations {
		fmt.Fprintf(w, "       VIOLATION %s: %d, e.g. %s\n", v.Kind, v.Count, strings.Join(v.Examples, "; "))
	}
	for _, n := range in.Notes {
		fmt.Fprintf(w, "       note: %s\n", n)
	}
}

// rec is one decoded record with its place in its topic.
type rec struct {
	id, account string
	partition   int32
	offset      int64
}

// TopicData is what the checker read from the run's topics, read-committed.
type TopicData struct {
	Tx        []*fraudv1.Transaction
	txAt      []rec // where Tx[i] was read
	TxRecs    []rec
	Features  map[string][][]float64 // transaction id → every vector emitted (committed)
	FeatRecs  []rec
	Names     map[string]int      // feature name lists seen (joined) → records
	Decisions map[string][]string // transaction id → decision ids on decisions.v1
	DecRecs   []rec
	Labels    []*fraudv1.Label
	DLQ       map[string]int // dead-letter topic → records
	Undecoded map[string]int
}

// ReadTopics reads every record of the run's topics with the given isolation level, until no
// new record arrived for idle.
func ReadTopics(ctx context.Context, brokers []string, topics []string, committed bool, idle time.Duration, each func(*kgo.Record)) error {
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...), kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	last := time.Now()
	for time.Since(last) < idle {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		f := cl.PollFetches(pctx)
		cancel()
		n := 0
		f.EachRecord(func(r *kgo.Record) { n++; each(r) })
		if n > 0 {
			last = time.Now()
		}
	}
	return nil
}

// LoadTopics decodes the run's topics, read-committed: what any downstream consumer sees.
func LoadTopics(ctx context.Context, brokers []string, t kafka.Topics) (*TopicData, error) {
	d := &TopicData{Features: map[string][][]float64{}, Names: map[string]int{}, Decisions: map[string][]string{}, DLQ: map[string]int{}, Undecoded: map[string]int{}}
	err := ReadTopics(ctx, brokers, t.All(), true, 4*time.Second, func(r *kgo.Record) {
		switch r.Topic {
		case t.Tx:
			var m fraudv1.Transaction
			if kafka.Decode(r, &m) != nil {
				d.Undecoded[r.Topic]++
				return
			}
			d.Tx = append(d.Tx, &m)
			d.txAt = append(d.txAt, rec{m.GetId(), m.GetAccountId(), r.Partition, r.Offset})
			d.TxRecs = append(d.TxRecs, d.txAt[len(d.txAt)-1])
		case t.Features:
			var m fraudv1.EnrichedTransaction
			if kafka.Decode(r, &m) != nil {
				d.Undecoded[r.Topic]++
				return
			}
			id := m.GetTransaction().GetId()
			d.Features[id] = append(d.Features[id], m.GetFeatures().GetValues())
			fv := m.GetFeatures() // names fixed by the schema: a schema models/features does not know joins to ""
			d.Names[strings.Join(features.NamesOf(fv.GetSchemaVersion(), fv.GetSchemaHash(), fv.GetNames()), ",")]++
			d.FeatRecs = append(d.FeatRecs, rec{id, m.GetTransaction().GetAccountId(), r.Partition, r.Offset})
		case t.Decisions:
			var m fraudv1.Decision
			if kafka.Decode(r, &m) != nil {
				d.Undecoded[r.Topic]++
				return
			}
			d.Decisions[m.GetTransactionId()] = append(d.Decisions[m.GetTransactionId()], m.GetDecisionId())
			d.DecRecs = append(d.DecRecs, rec{m.GetTransactionId(), m.GetAccountId(), r.Partition, r.Offset})
		case t.Labels:
			var m fraudv1.Label
			if kafka.Decode(r, &m) != nil {
				d.Undecoded[r.Topic]++
				return
			}
			d.Labels = append(d.Labels, &m)
		default:
			d.DLQ[r.Topic]++
		}
	})
	for _, rs := range [][]rec{d.TxRecs, d.FeatRecs, d.DecRecs} {
		sort.Slice(rs, func(i, j int) bool {
			if rs[i].partition != rs[j].partition {
				return rs[i].partition < rs[j].partition
			}
			return rs[i].offset < rs[j].offset
		})
	}
	return d, err
}

// PGData is what the checker read from Postgres.
type PGData struct {
	Decisions map[string][]string // transaction id → decision ids of its rows
	Alerts    map[string]int      // decision id → alert rows
	Labels    []LabelRow
}

// LabelRow is one row of the labels table: one transaction's label from one case change.
type LabelRow struct {
	LabelID, CaseID string
	Version         int64
}

// LoadPG reads the run's decision and alert rows.
func LoadPG(ctx context.Context, pool *pgxpool.Pool, prefix string) (*PGData, error) {
	rows, err := harness.LoadDecisions(ctx, pool, prefix)
	if err != nil {
		return nil, err
	}
	d := &PGData{Decisions: map[string][]string{}}
	for _, r := range rows {
		d.Decisions[r.TransactionID] = append(d.Decisions[r.TransactionID], r.DecisionID)
	}
	if d.Alerts, err = harness.LoadAlerts(ctx, pool, prefix); err != nil {
		return nil, err
	}
	lrows, err := pool.Query(ctx, `SELECT label_id, case_id, case_version FROM labels WHERE transaction_id LIKE $1`, harness.LikePattern(prefix))
	if err != nil {
		return nil, fmt.Errorf("load labels: %w", err)
	}
	defer lrows.Close()
	for lrows.Next() {
		var l LabelRow
		if err := lrows.Scan(&l.LabelID, &l.CaseID, &l.Version); err != nil {
			return nil, err
		}
		d.Labels = append(d.Labels, l)
	}
	return d, lrows.Err()
}

// CheckInput is everything the invariants are judged on.
type CheckInput struct {
	Load       *Load
	Topics     *TopicData
	PG         *PGData
	Labels     []LabelResult
	Partitions int
}

// CheckAll judges the six invariants.
func CheckAll(in CheckInput) []*Invariant {
	return []*Invariant{checkTx(in), checkDownstream(in), checkFeatures(in), checkOrder(in), checkAlerts(in), checkClients(in)}
}

// 1. Every 2xx'd transaction is in tx.v1 exactly once; no 4xx'd one is.
func checkTx(in CheckInput) *Invariant {
	inv := &Invariant{ID: 1, Name: "every 2xx'd transaction is in tx.v1, once unless retried after an unknown outcome; no 4xx'd one is"}
	n := map[string]int{}
	where := map[string][]string{}
	for i, tx := range in.Topics.Tx {
		n[tx.GetId()]++
		var r rec
		if i < len(in.Topics.txAt) {
			r = in.Topics.txAt[i]
		}
		where[tx.GetId()] = append(where[tx.GetId()], fmt.Sprintf("p%d@%d received %s", r.partition, r.offset, tx.GetReceivedTime().AsTime().Format("15:04:05.000")))
	}
	sent := map[string]bool{}
	for _, t := range in.Load.Txs {
		sent[t.StoredID] = true
		c := n[t.StoredID]
		switch t.Outcome {
		case harness.Acked:
			inv.count("acked", 1)
			if c == 0 {
				inv.violate("acknowledged but missing from tx.v1", t.StoredID)
			}
			if t.Invalid {
				inv.violate("invalid transaction acknowledged", t.StoredID)
			}
		case harness.Rejected:
			inv.count("rejected_4xx", 1)
			if c > 0 {
				inv.violate("4xx'd transaction in tx.v1", t.StoredID)
			}
		default:
			inv.count("unknown_outcome", 1)
		}
		if c > 1 {
			// A 503 promises nothing either way (ingest's README): the record of an attempt
			// answered 503 or lost in transport may still be written, and the client's retry
			// writes it again. That is the only allowed way to a second copy; feature-window
			// drops it by transaction id, which invariant 2 checks downstream.
			if retriedAfterUnknown(t) && c <= len(t.Attempts) {
				inv.count("duplicates_of_retried_unknown_outcomes", 1)
			} else {
				inv.violate("transaction more than once in tx.v1", fmt.Sprintf("%s×%d at %s, client saw %s", t.StoredID, c, strings.Join(where[t.StoredID], " and "), t.History()))
			}
		}
	}
	inv.count("tx.v1_records", len(in.Topics.Tx))
	inv.count("tx.v1_distinct", len(n))
	for id := range n {
		if !sent[id] {
			inv.violate("tx.v1 record nobody sent", id)
		}
	}
	if u := in.Topics.Undecoded; len(u) > 0 {
		for t, c := range u {
			inv.violate("undecodable record", fmt.Sprintf("%s×%d", t, c))
		}
	}
	return inv
}

// retriedAfterUnknown reports whether the client sent t again after an attempt whose outcome
// it could not know: 5xx, a transport error, or 409 (its first attempt still in flight — after
// a Redis flush the claim is gone and the retry publishes).
func retriedAfterUnknown(t *TxResult) bool {
	for i, a := range t.Attempts {
		if i < len(t.Attempts)-1 && (a.Status == 0 || a.Status >= 500 || a.Status == 409) {
			return true
		}
	}
	return false
}

// 2. Each transaction of tx.v1 has exactly one record in features.v1 and decisions.v1 and
// exactly one decision row; nothing downstream comes from outside tx.v1 or from an aborted
// transaction.
func checkDownstream(in CheckInput) *Invariant {
	inv := &Invariant{ID: 2, Name: "exactly one features.v1 record, decisions.v1 record and decision row per transaction; nothing aborted visible"}
	inTx := map[string]bool{}
	for _, tx := range in.Topics.Tx {
		inTx[tx.GetId()] = true
	}
	committedDecision := map[string]bool{}
	for _, ids := range in.Topics.Decisions {
		for _, d := range ids {
			committedDecision[d] = true
		}
	}
	for id := range inTx {
		inv.count("transactions", 1)
		if c := len(in.Topics.Features[id]); c != 1 {
			inv.violate(fmt.Sprintf("features.v1 records ≠ 1 (%d)", min(c, 2)), fmt.Sprintf("%s×%d", id, c))
		}
		if c := len(in.Topics.Decisions[id]); c != 1 {
			inv.violate(fmt.Sprintf("decisions.v1 records ≠ 1 (%d)", min(c, 2)), fmt.Sprintf("%s×%d", id, c))
		}
		rows := in.PG.Decisions[id]
		if len(rows) != 1 {
			inv.violate(fmt.Sprintf("decision rows ≠ 1 (%d)", min(len(rows), 2)), fmt.Sprintf("%s×%d", id, len(rows)))
		}
		for _, d := range rows {
			if !committedDecision[d] {
				inv.violate("decision row not on decisions.v1 (from an aborted transaction?)", id+" "+d)
			}
		}
	}
	inv.count("features.v1_records", len(in.Topics.FeatRecs))
	inv.count("decisions.v1_records", len(in.Topics.DecRecs))
	rows := 0
	for _, r := range in.PG.Decisions {
		rows += len(r)
	}
	inv.count("decision_rows", rows)
	for id := range in.Topics.Features {
		if !inTx[id] {
			inv.violate("features.v1 record without a tx.v1 record", id)
		}
	}
	for id := range in.Topics.Decisions {
		if !inTx[id] {
			inv.violate("decisions.v1 record without a tx.v1 record", id)
		}
	}
	for id := range in.PG.Decisions {
		if !inTx[id] {
			inv.violate("decision row without a tx.v1 record", id)
		}
	}
	for t, n := range in.Topics.DLQ {
		inv.count("dead_letters", n)
		inv.violate("dead letters from valid traffic", fmt.Sprintf("%s×%d", t, n))
	}
	return inv
}

// crossPartition lists the features whose windows are shared by accounts of different
// partitions (devices, terminals): their stream value depends on how far the other partitions
// had got, which the offline replay cannot know (see services/feature-window's stream test).
var crossPartition = map[string]bool{
	"device_distinct_accounts_1d": true,
	"terminal_count_1d":           true, "terminal_count_7d": true, "terminal_count_30d": true,
	"terminal_fraud_ratio_1d": true, "terminal_fraud_ratio_7d": true, "terminal_fraud_ratio_30d": true,
}

// 3. Feature vectors equal an offline recomputation from tx.v1 (each partition in offset
// order, every label first: a label only counts for events a day after it is known).
func checkFeatures(in CheckInput) *Invariant {
	inv := &Invariant{ID: 3, Name: "feature vectors equal an offline recomputation from tx.v1"}
	want := strings.Join(features.Names, ",")
	for names, n := range in.Topics.Names {
		if names != want {
			inv.violate("feature names differ from models/features", fmt.Sprintf("%d records", n))
		}
	}
	o := features.NewOffline()
	for _, l := range in.Topics.Labels {
		if v := l.GetValue(); v != fraudv1.LabelValue_LABEL_VALUE_FRAUD && v != fraudv1.LabelValue_LABEL_VALUE_LEGITIMATE {
			continue // no verdict: the stream ignores it too
		}
		o.AddLabel(features.Label{TransactionID: l.GetTransactionId(), TerminalID: l.GetTerminalId(),
			Fraud: l.GetValue() == fraudv1.LabelValue_LABEL_VALUE_FRAUD, TransactionTime: l.GetTransactionTime().AsTime(), KnownAt: l.GetLabelledTime().AsTime()})
	}
	byOffset := map[rec]*fraudv1.Transaction{}
	for i, tx := range in.Topics.Tx {
		if i < len(in.Topics.txAt) {
			byOffset[in.Topics.txAt[i]] = tx
		}
	}
	occurrence := map[string]int{}
	crossDiffs := map[string]int{}
	// Every tx.v1 record is replayed, duplicates too, exactly as the stream saw them: the
	// duplicates are invariant 1's; this one asks whether the windows counted each record of
	// the log once, whatever crashed meanwhile. The k-th copy of an id is compared with the
	// k-th features.v1 record of that id (same account, same partition, same order).
	for _, r := range in.Topics.TxRecs { // partition by partition, offset order
		tx := byOffset[r]
		if tx == nil {
			continue
		}
		k := occurrence[r.id]
		occurrence[r.id]++
		exp := o.Next(features.FromTransaction(tx))
		if exp == nil {
			// An id the account already saw: the stream drops it too (invariant 2 checks it
			// left exactly one features.v1 record).
			inv.count("duplicates_dropped", 1)
			continue
		}
		all := in.Topics.Features[r.id]
		if k >= len(all) {
			continue // invariant 2's
		}
		got := all[k:]
		inv.count("compared", 1)
		localBad, crossBad := []string{}, false
		for i, name := range features.Names {
			if i >= len(got[0]) || i >= len(exp) {
				localBad = append(localBad, "length")
				break
			}
			if got[0][i] == exp[i] || (math.IsNaN(got[0][i]) && math.IsNaN(exp[i])) {
				continue
			}
			if crossPartition[name] && in.Partitions > 1 {
				crossDiffs[name]++
				crossBad = true
				continue
			}
			localBad = append(localBad, fmt.Sprintf("%s stream %v offline %v", name, got[0][i], exp[i]))
		}
		if len(localBad) > 0 {
			inv.violate("vector differs from the offline recomputation", r.id+": "+strings.Join(localBad, ", "))
		} else {
			inv.count("equal", 1)
		}
		if crossBad {
			inv.count("cross_partition_feature_differences", 1)
		}
	}
	if len(crossDiffs) > 0 {
		inv.Notes = append(inv.Notes, fmt.Sprintf("with %d partitions, device/terminal windows span partitions and are compared for information only: differences %v", in.Partitions, crossDiffs))
	}
	return inv
}

// 4. Per-account order: all of an account's records on one partition; in tx.v1 a transaction
// acknowledged before another was first sent comes first; features.v1 and decisions.v1 keep
// tx.v1's order.
func checkOrder(in CheckInput) *Invariant {
	inv := &Invariant{ID: 4, Name: "per-account order kept in every topic"}
	txPos := map[string]int{}
	for i, r := range in.Topics.TxRecs {
		if _, ok := txPos[r.id]; !ok {
			txPos[r.id] = i
		}
	}
	for topic, rs := range map[string][]rec{"tx.v1": in.Topics.TxRecs, "features.v1": in.Topics.FeatRecs, "decisions.v1": in.Topics.DecRecs} {
		part := map[string]int32{}
		lastPos := map[string]int{}
		lastID := map[string]string{}
		for _, r := range rs {
			if p, ok := part[r.account]; ok && p != r.partition {
				inv.violate("account on more than one partition", topic+" "+r.account)
			}
			part[r.account] = r.partition
			if topic == "tx.v1" {
				continue
			}
			pos, ok := txPos[r.id]
			if !ok {
				continue
			}
			if prev, ok := lastPos[r.account]; ok && pos < prev {
				inv.violate(topic+" order differs from tx.v1", fmt.Sprintf("%s: %s after %s", r.account, r.id, lastID[r.account]))
			}
			lastPos[r.account], lastID[r.account] = pos, r.id
			inv.count(topic+"_checked", 1)
		}
		inv.count(topic+"_accounts", len(part))
	}
	// Real-time order in tx.v1: if a was acknowledged before b was first sent, a precedes b.
	byAccount := map[string][]*TxResult{}
	for _, t := range in.Load.Txs {
		if _, ok := txPos[t.StoredID]; ok && t.Outcome == harness.Acked {
			byAccount[t.Account] = append(byAccount[t.Account], t)
		}
	}
	pairs := 0
	for acct, ts := range byAccount {
		sort.Slice(ts, func(i, j int) bool { return txPos[ts[i].StoredID] < txPos[ts[j].StoredID] })
		// For each transaction, the earliest acknowledgement among those after it in the log:
		// if that came before this one was first sent, the log reversed real-time order.
		minAckAfter := time.Time{}
		for i := len(ts) - 1; i >= 0; i-- {
			if !minAckAfter.IsZero() && minAckAfter.Before(ts[i].FirstSent) {
				inv.violate("tx.v1 order contradicts acknowledgement order", acct+": "+ts[i].StoredID)
			}
			if i < len(ts)-1 {
				pairs++
			}
			if minAckAfter.IsZero() || ts[i].AckedAt.Before(minAckAfter) {
				minAckAfter = ts[i].AckedAt
			}
		}
	}
	inv.count("tx.v1_checked", pairs)
	return inv
}

// 5. At most one alert per decision, every alert for a decision of the run; every label change
// an analyst made is on labels.v1 exactly once.
func checkAlerts(in CheckInput) *Invariant {
	inv := &Invariant{ID: 5, Name: "≤1 alert per decision; every label change on labels.v1 exactly once"}
	decisions := map[string]bool{}
	for _, ids := range in.PG.Decisions {
		for _, d := range ids {
			decisions[d] = true
		}
	}
	for d, n := range in.PG.Alerts {
		inv.count("alerts", n)
		if n > 1 {
			inv.violate("decision with more than one alert", fmt.Sprintf("%s×%d", d, n))
		}
		if !decisions[d] {
			inv.violate("alert without a decision row", d)
		}
	}
	onTopic := map[string]int{}
	for _, l := range in.Topics.Labels {
		onTopic[l.GetLabelId()]++
	}
	inv.count("labels.v1_records", len(in.Topics.Labels))
	inv.count("label_rows", len(in.PG.Labels))
	rowIDs := map[string]bool{}
	changes := map[string]bool{} // case/version with label rows
	for _, l := range in.PG.Labels {
		rowIDs[l.LabelID] = true
		changes[fmt.Sprintf("%s/%d", l.CaseID, l.Version)] = true
		if n := onTopic[l.LabelID]; n != 1 {
			inv.violate("label row not on labels.v1 exactly once", fmt.Sprintf("%s×%d", l.LabelID, n))
		}
	}
	for id, n := range onTopic {
		if !rowIDs[id] {
			inv.violate("labels.v1 record without a label row", fmt.Sprintf("%s×%d", id, n))
		}
	}
	for _, l := range in.Labels {
		if !l.Done {
			inv.count("label_changes_unanswered", 1)
			continue
		}
		inv.count("label_changes_acked", 1)
		if !changes[fmt.Sprintf("%s/%d", l.CaseID, l.Version)] {
			inv.violate("acknowledged label change without label rows", fmt.Sprintf("%s v%d", l.CaseID, l.Version))
		}
	}
	return inv
}

// 6. Clients saw only 2xx, 429 and 503 with Retry-After (409 with Retry-After only on a retry:
// the idempotency key of an attempt that was cut off is still in flight); no 500; every
// transaction retried after a 503 (or a cut connection) got its 2xx in the end.
func checkClients(in CheckInput) *Invariant {
	inv := &Invariant{ID: 6, Name: "clients saw only 2xx/429/503+Retry-After, no 5xx, every retried request succeeded"}
	for _, t := range in.Load.Txs {
		retried := false
		for i, a := range t.Attempts {
			switch {
			case a.Status == 0:
				inv.count("transport_errors", 1)
				retried = true
			case a.Status/100 == 2:
				inv.count("2xx", 1)
			case a.Status == 429 || a.Status == 503:
				inv.count(fmt.Sprint(a.Status), 1)
				retried = true
				if !a.RetryAfter {
					inv.violate(fmt.Sprintf("%d without Retry-After", a.Status), t.StoredID)
				}
			case a.Status == 409:
				inv.count("409_in_flight", 1)
				retried = true
				if i == 0 || !a.RetryAfter {
					inv.violate("409 on a first attempt or without Retry-After", t.StoredID)
				}
			case a.Status/100 == 4:
				inv.count("4xx", 1)
				if !t.Invalid {
					inv.violate(fmt.Sprintf("%d for a valid transaction", a.Status), t.StoredID)
				}
			default:
				inv.count(fmt.Sprintf("%dxx", a.Status/100), 1)
				inv.violate(fmt.Sprintf("%d answer", a.Status), t.StoredID)
				retried = true
			}
		}
		if retried {
			inv.count("retried_transactions", 1)
			if t.Outcome != harness.Acked && !t.Invalid {
				inv.violate("retried transaction never succeeded", t.StoredID)
			}
		}
		if t.Invalid && t.Outcome != harness.Rejected {
			inv.violate("invalid transaction not refused with 4xx", t.StoredID)
		}
	}
	return inv
}
