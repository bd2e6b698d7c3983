// Package window runs features.Plan values in Redis: the Redis adapter of the feature
// definitions in models/features.
//
// Every plan runs as one EVALSHA of plan.lua, a small interpreter of the plan's reads and
// updates, so the window math lives only in models/features and Offline (MemStore) and the
// stream cannot drift. A poll's plans go in one pipeline: one round trip per poll (plus one to
// reload the script after Redis lost its script cache).
//
// Replay safety: each transaction's plan carries a Mark, the partition's applied-offset
// watermark and a key for the result of this offset. The script checks and advances the
// watermark atomically with the updates and stores the reads it returned, so re-processing an
// offset after a crash, a rebalance or a fenced producer neither re-applies the transaction nor
// changes the features emitted for it. See ../../README.md for the key layout and memory.
package window

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/models/features"
)

//go:embed plan.lua
var planSrc string

var planScript = redis.NewScript(planSrc)

// Store is the Redis adapter.
type Store struct {
	rdb    redis.Cmdable
	prefix string
	// RoundTrips counts Redis round trips, for the benchmark.
	RoundTrips atomic.Int64
}

// New returns a store whose keys all start with keyPrefix + "fw:".
func New(rdb redis.Cmdable, keyPrefix string) *Store {
	return &Store{rdb: rdb, prefix: keyPrefix + "fw:"}
}

// WithMark returns p guarded by the applied-offset watermark of partition (a "topic/partition"
// string); the result of offset is kept for resultTTL, longer than any transaction can stay
// uncommitted.
func WithMark(p features.Plan, partition string, offset int64, resultTTL time.Duration) features.Plan {
	p.Keys = append(p.Keys[:len(p.Keys):len(p.Keys)], "wm:{"+partition+"}", "res:{"+partition+"}:"+strconv.FormatInt(offset, 10))
	p.Mark = &features.Mark{Key: len(p.Keys) - 2, ResultKey: len(p.Keys) - 1, Offset: offset, ResultTTL: resultTTL}
	return p
}

// wire is the plan's JSON for plan.lua; key indexes are 1-based as Lua's KEYS.
type wire struct {
	R [][]any `json:"R,omitempty"`
	W [][]any `json:"W,omitempty"`
	G []any   `json:"G,omitempty"`
	O []any   `json:"O,omitempty"`
	M []any   `json:"M,omitempty"`
}

func encode(p features.Plan) ([]byte, error) {
	var w wire
	for _, op := range p.Reads {
		switch op.Kind {
		case features.OpSum:
			w.R = append(w.R, []any{op.Kind, op.Key + 1, op.Lo, op.Hi, op.Suffixes})
		case features.OpRecent:
			w.R = append(w.R, []any{op.Kind, op.Key + 1, op.Num, op.Field})
		case features.OpGet:
			w.R = append(w.R, []any{op.Kind, op.Key + 1, op.Field})
		default:
			return nil, fmt.Errorf("read op %q", op.Kind)
		}
	}
	for _, op := range p.Writes {
		switch op.Kind {
		case features.OpIncr, features.OpMax, features.OpSetNX:
			w.W = append(w.W, []any{op.Kind, op.Key + 1, op.Field, op.Value})
		case features.OpPruneTiles, features.OpPruneRecent, features.OpTTL:
			w.W = append(w.W, []any{op.Kind, op.Key + 1, op.Num})
		default:
			return nil, fmt.Errorf("write op %q", op.Kind)
		}
	}
	if g := p.Guard; g != nil {
		w.G = []any{g.Key + 1, g.Field, g.Min}
	}
	if o := p.Once; o != nil {
		w.O = []any{o.Key + 1, o.TTL.Milliseconds()}
	}
	if m := p.Mark; m != nil {
		w.M = []any{m.Key + 1, m.ResultKey + 1, strconv.FormatInt(m.Offset, 10), m.ResultTTL.Milliseconds()}
	}
	return json.Marshal(w)
}

// Apply runs plans in order in one pipelined round trip and returns their results. A Redis
// failure is returned whole: the caller's Kafka transaction aborts and the same plans come
// again, which the marks make harmless.
func (s *Store) Apply(ctx context.Context, plans []features.Plan) ([]features.Result, error) {
	if len(plans) == 0 {
		return nil, nil
	}
	args := make([][]byte, len(plans))
	keys := make([][]string, len(plans))
	for i, p := range plans {
		b, err := encode(p)
		if err != nil {
			return nil, err
		}
		args[i] = b
		ks := make([]string, len(p.Keys))
		for j, k := range p.Keys {
			ks[j] = s.prefix + k
		}
		keys[i] = ks
	}
	cmds, err := s.exec(ctx, keys, args)
	if err != nil && strings.Contains(err.Error(), "NOSCRIPT") {
		// Nothing ran (the first EVALSHA failed and so did every one after it): load and redo.
		s.RoundTrips.Add(1)
		if lerr := planScript.Load(ctx, s.rdb).Err(); lerr != nil {
			return nil, fmt.Errorf("load window script: %w", lerr)
		}
		cmds, err = s.exec(ctx, keys, args)
	}
	if err != nil {
		return nil, fmt.Errorf("window pipeline (%d plans): %w", len(plans), err)
	}
	out := make([]features.Result, len(plans))
	for i, c := range cmds {
		vals, err := c.StringSlice()
		if err != nil || len(vals) < 2 {
			return nil, fmt.Errorf("window script result %d: %v %w", i, vals, err)
		}
		out[i] = features.Result{Status: features.Status(vals[0]), Replayed: vals[1] == "1", Reads: vals[2:]}
	}
	return out, nil
}

func (s *Store) exec(ctx context.Context, keys [][]string, args [][]byte) ([]*redis.Cmd, error) {
	s.RoundTrips.Add(1)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(args))
	for i := range args {
		cmds[i] = planScript.EvalSha(ctx, pipe, keys[i], args[i])
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}
