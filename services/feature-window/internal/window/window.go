// Package window is the Redis side of the feature windows (models/features holds the math).
//
// Account state is owned by one tx.v1 partition (the topic is keyed by account), so the
// service keeps it in memory and checkpoints it here: one binary value per account
// (features.Account), written together with the partition's checkpoint — the next tx.v1
// offset whose effects are not in Redis — by one compare-and-set script per partition
// (flush.lua). Terminals and devices span partitions: their tiles and last-seen hashes are
// read per poll and updated by additive, per-partition deltas inside the same script, so a
// partition's deltas land exactly once. See ../../README.md for the key layout and memory.
package window

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/models/features"
)

var (
	//go:embed flush.lua
	flushSrc    string
	flushScript = redis.NewScript(flushSrc)
	//go:embed label.lua
	labelSrc    string
	labelScript = redis.NewScript(labelSrc)
)

// ErrConflict means a partition's checkpoint was not the one expected: another instance (or a
// rebuild) wrote it since. The caller drops what it holds for the partition and reloads.
var ErrConflict = errors.New("window checkpoint conflict")

// Store is the Redis adapter.
type Store struct {
	rdb    redis.Cmdable
	prefix string
	cfg    features.Config
	// RoundTrips counts Redis round trips, for the benchmark.
	RoundTrips atomic.Int64
}

// New returns a store whose keys all start with keyPrefix + "fw:".
func New(rdb redis.Cmdable, keyPrefix string, cfg features.Config) *Store {
	return &Store{rdb: rdb, prefix: keyPrefix + "fw:", cfg: cfg}
}

func (s *Store) accountKey(id string) string  { return s.prefix + "acct:" + id }
func (s *Store) terminalKey(id string) string { return s.prefix + "t:" + id + ":t3h" }
func (s *Store) deviceKey(id string) string   { return s.prefix + "d:" + id + ":acc" }
func (s *Store) labelKey(tx string) string    { return s.prefix + "l:" + tx }

// CheckpointKey is the key of partition's checkpoint ("topic/partition").
func (s *Store) CheckpointKey(partition string) string {
	return s.prefix + "ckpt:{" + partition + "}"
}

// Tiles is an inclusive range of terminal tile indexes (features.TerminalTile).
type Tiles struct{ Lo, Hi int64 }

// Request is what one Fetch reads.
type Request struct {
	Checkpoints []string         // partitions
	Accounts    []string         // account ids
	Terminals   map[string]Tiles // terminal → the tiles its events read
	Devices     []string
}

// NoCheckpoint is the checkpoint of a partition never flushed: nothing of it is in Redis.
const NoCheckpoint = -1

// Snapshot is what Fetch read.
type Snapshot struct {
	Checkpoints map[string]int64 // NoCheckpoint when absent
	Accounts    map[string]*features.Account
	Terminals   map[string]map[int64]*[2]int64 // terminal → tile → {transactions, frauds}
	Devices     map[string]map[string]int64    // device → account → last seen ms
}

// Fetch reads everything in r in one round trip, atomically (MULTI/EXEC): the checkpoints it
// returns are those of the state it read, so a caller that finds a partition's checkpoint
// moved (Redis lost it, or another writer) knows the rest of the snapshot is not its state
// either. An account without a value is returned empty (never seen, or expired).
func (s *Store) Fetch(ctx context.Context, r Request) (*Snapshot, error) {
	snap := &Snapshot{
		Checkpoints: make(map[string]int64, len(r.Checkpoints)),
		Accounts:    make(map[string]*features.Account, len(r.Accounts)),
		Terminals:   make(map[string]map[int64]*[2]int64, len(r.Terminals)),
		Devices:     make(map[string]map[string]int64, len(r.Devices)),
	}
	if len(r.Checkpoints)+len(r.Accounts)+len(r.Terminals)+len(r.Devices) == 0 {
		return snap, nil
	}
	pipe := s.rdb.TxPipeline()
	ckpts := make([]*redis.StringCmd, len(r.Checkpoints))
	for i, p := range r.Checkpoints {
		ckpts[i] = pipe.Get(ctx, s.CheckpointKey(p))
	}
	var accts *redis.SliceCmd
	if len(r.Accounts) > 0 {
		keys := make([]string, len(r.Accounts))
		for i, a := range r.Accounts {
			keys[i] = s.accountKey(a)
		}
		accts = pipe.MGet(ctx, keys...)
	}
	type termCmd struct {
		id    string
		tiles Tiles
		cmd   *redis.SliceCmd
	}
	terms := make([]termCmd, 0, len(r.Terminals))
	for id, d := range r.Terminals {
		fields := make([]string, 0, 2*(d.Hi-d.Lo+1))
		for x := d.Lo; x <= d.Hi; x++ {
			n := strconv.FormatInt(x, 10)
			fields = append(fields, n+":c", n+":f")
		}
		terms = append(terms, termCmd{id, d, pipe.HMGet(ctx, s.terminalKey(id), fields...)})
	}
	devs := make([]*redis.MapStringStringCmd, len(r.Devices))
	for i, d := range r.Devices {
		devs[i] = pipe.HGetAll(ctx, s.deviceKey(d))
	}
	s.RoundTrips.Add(1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("window fetch: %w", err)
	}
	for i, p := range r.Checkpoints {
		v, err := ckpts[i].Result()
		switch {
		case errors.Is(err, redis.Nil):
			snap.Checkpoints[p] = NoCheckpoint
		case err != nil:
			return nil, fmt.Errorf("checkpoint of %s: %w", p, err)
		default:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("checkpoint of %s is %q", p, v)
			}
			snap.Checkpoints[p] = n
		}
	}
	if accts != nil {
		for i, v := range accts.Val() {
			a := &features.Account{}
			if v != nil {
				str, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("account %s: unexpected %T", r.Accounts[i], v)
				}
				if err := a.UnmarshalBinary([]byte(str)); err != nil {
					return nil, fmt.Errorf("account %s: %w", r.Accounts[i], err)
				}
			}
			snap.Accounts[r.Accounts[i]] = a
		}
	}
	for _, tc := range terms {
		days := map[int64]*[2]int64{}
		for i, v := range tc.cmd.Val() {
			str, ok := v.(string)
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(str, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("terminal %s: field value %q", tc.id, str)
			}
			d := tc.tiles.Lo + int64(i/2)
			if days[d] == nil {
				days[d] = &[2]int64{}
			}
			days[d][i%2] = n
		}
		snap.Terminals[tc.id] = days
	}
	for i, d := range r.Devices {
		h := devs[i].Val()
		m := make(map[string]int64, len(h))
		for acct, v := range h {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("device %s: field value %q", d, v)
			}
			m[acct] = n
		}
		snap.Devices[d] = m
	}
	return snap, nil
}

// TerminalDelta is one partition's transactions in one terminal tile since its last flush.
type TerminalDelta struct {
	Tx         int64
	PruneBelow int64 // when the tile is new in Redis, tiles below this are dropped
}

// DeviceSeen is the newest time one partition saw an account on a device since its last flush.
type DeviceSeen struct{ Ms int64 }

// Delta is what one partition checkpoints: the state of the accounts it changed and its
// terminal and device deltas, moving its checkpoint from From to To.
type Delta struct {
	Partition string
	From, To  int64             // From is NoCheckpoint for a first flush
	Accounts  map[string][]byte // changed accounts, features.Account.MarshalBinary
	Terminals map[string]map[int64]TerminalDelta
	Devices   map[string]map[string]DeviceSeen
	// DevicePrune: device → account → remove the account if it was last seen before this (ms).
	DevicePrune map[string]map[string]int64
}

// Flush checkpoints deltas (one script per partition, all in one round trip) and returns one
// error per delta: nil, ErrConflict (wrapped) or a Redis error. A failed delta changed nothing.
func (s *Store) Flush(ctx context.Context, deltas []Delta) ([]error, error) {
	if len(deltas) == 0 {
		return nil, nil
	}
	keys := make([][]string, len(deltas))
	args := make([][]any, len(deltas))
	for i, d := range deltas {
		k, a, err := s.flushArgs(d)
		if err != nil {
			return nil, err
		}
		keys[i], args[i] = k, a
	}
	cmds, err := s.evalPipelined(ctx, flushScript, len(deltas), func(pipe redis.Pipeliner, i int) *redis.Cmd {
		return flushScript.EvalSha(ctx, pipe, keys[i], args[i]...)
	})
	if cmds == nil || isNoScript(err) {
		return nil, fmt.Errorf("window flush: %w", err)
	}
	errs := make([]error, len(deltas))
	for i, c := range cmds {
		if cerr := c.Err(); cerr != nil {
			if strings.HasPrefix(cerr.Error(), "CONFLICT") {
				errs[i] = fmt.Errorf("%w: %s: %v", ErrConflict, deltas[i].Partition, cerr)
			} else {
				errs[i] = fmt.Errorf("flush %s: %w", deltas[i].Partition, cerr)
			}
		}
	}
	return errs, nil
}

func isNoScript(err error) bool { return err != nil && strings.Contains(err.Error(), "NOSCRIPT") }

// evalPipelined sends n EVALSHAs of script in one pipeline (one round trip) and returns their
// commands and the pipeline's first error (a command's own error, such as a checkpoint
// conflict, is on its command). When Redis lost its script cache (restart, SCRIPT FLUSH)
// nothing ran: the script is loaded and the pipeline sent again.
func (s *Store) evalPipelined(ctx context.Context, script *redis.Script, n int, eval func(pipe redis.Pipeliner, i int) *redis.Cmd) ([]*redis.Cmd, error) {
	run := func() ([]*redis.Cmd, error) {
		s.RoundTrips.Add(1)
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, n)
		for i := range n {
			cmds[i] = eval(pipe, i)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	// The cache can be emptied again between the load and the retry (another client's SCRIPT
	// FLUSH, a second restart): a few tries, not one.
	for try := 0; isNoScript(err) && try < 3; try++ {
		s.RoundTrips.Add(1)
		if lerr := script.Load(ctx, s.rdb).Err(); lerr != nil {
			return nil, fmt.Errorf("load script: %w", lerr)
		}
		cmds, err = run()
	}
	return cmds, err
}

func (s *Store) flushArgs(d Delta) ([]string, []any, error) {
	nDev := len(d.Devices)
	for id := range d.DevicePrune {
		if _, ok := d.Devices[id]; !ok {
			nDev++
		}
	}
	keys := make([]string, 0, 1+len(d.Accounts)+len(d.Terminals)+nDev)
	keys = append(keys, s.CheckpointKey(d.Partition))
	from := ""
	if d.From != NoCheckpoint {
		from = strconv.FormatInt(d.From, 10)
	}
	args := make([]any, 0, 8+len(d.Accounts)+4*len(d.Terminals)+4*len(d.Devices))
	args = append(args, from, strconv.FormatInt(d.To, 10), len(d.Accounts), len(d.Terminals), nDev,
		features.AccountTTL(s.cfg).Milliseconds(), features.LabelTTL(s.cfg).Milliseconds(), features.DeviceTTL(s.cfg).Milliseconds())
	for id, b := range d.Accounts {
		keys = append(keys, s.accountKey(id))
		args = append(args, b)
	}
	for id, days := range d.Terminals {
		keys = append(keys, s.terminalKey(id))
		args = append(args, len(days))
		for day, td := range days {
			args = append(args, day, td.Tx, td.PruneBelow)
		}
	}
	for id, accts := range d.Devices {
		keys = append(keys, s.deviceKey(id))
		args = append(args, len(accts))
		for acct, seen := range accts {
			args = append(args, acct, seen.Ms)
		}
		prune := d.DevicePrune[id]
		args = append(args, len(prune))
		for acct, below := range prune {
			args = append(args, acct, below)
		}
	}
	for id, prune := range d.DevicePrune {
		if _, ok := d.Devices[id]; ok {
			continue
		}
		keys = append(keys, s.deviceKey(id))
		args = append(args, 0, len(prune))
		for acct, below := range prune {
			args = append(args, acct, below)
		}
	}
	return keys, args, nil
}

// ApplyLabels applies labels in one round trip, each at most once per transaction, and returns
// how many were applied and how many were duplicates.
func (s *Store) ApplyLabels(ctx context.Context, labels []features.Label) (applied, duplicates int, err error) {
	if len(labels) == 0 {
		return 0, 0, nil
	}
	ttl := features.LabelTTL(s.cfg).Milliseconds()
	cmds, err := s.evalPipelined(ctx, labelScript, len(labels), func(pipe redis.Pipeliner, i int) *redis.Cmd {
		l := labels[i]
		tile, counts := features.LabelFraudTile(s.cfg, l)
		tileArg, term := "", s.labelKey(l.TransactionID)
		if counts {
			tileArg, term = strconv.FormatInt(tile, 10), s.terminalKey(l.TerminalID)
		}
		return labelScript.EvalSha(ctx, pipe, []string{s.labelKey(l.TransactionID), term}, ttl, tileArg, ttl)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("apply %d labels: %w", len(labels), err)
	}
	for _, c := range cmds {
		if n, _ := c.Int(); n == 1 {
			applied++
		} else {
			duplicates++
		}
	}
	return applied, duplicates, nil
}
