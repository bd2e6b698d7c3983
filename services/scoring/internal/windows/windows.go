// Package windows keeps per-account decision windows (reviews and declines over 1 h and 24 h,
// max score over 24 h) in Redis, replay-safe.
//
// Each decision is one member of the account's sorted set, scored by the transaction's event
// time and named "<partition>:<offset>:<decision id>:<action>:<score>": writing it again after an
// aborted Kafka transaction is a no-op, and a Lua script keyed by decision id replaces a member
// whose replay decided differently (see recordScript). A read for a batch ignores members of the same partition
// at or after the batch's first offset for that account, so decisions that an aborted attempt
// already wrote never leak into their own or earlier transactions' windows: a replay sees
// exactly what the first attempt saw.
package windows

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-fraud/vigil/services/scoring/internal/rules"
)

// Entry is one recorded decision.
type Entry struct {
	Partition  int32
	Offset     int64
	DecisionID string
	// Action is 'a', 'r' or 'd'.
	Action byte
	Score  float64
	// AtMs is the transaction's event time in Unix milliseconds.
	AtMs int64
}

func (e Entry) member() string {
	return fmt.Sprintf("%d:%d:%s:%c:%s", e.Partition, e.Offset, e.DecisionID, e.Action, strconv.FormatFloat(e.Score, 'g', -1, 64))
}

func parseMember(m string, at float64) (Entry, bool) {
	parts := strings.SplitN(m, ":", 5)
	if len(parts) != 5 || len(parts[3]) != 1 {
		return Entry{}, false
	}
	p, err1 := strconv.ParseInt(parts[0], 10, 32)
	o, err2 := strconv.ParseInt(parts[1], 10, 64)
	s, err3 := strconv.ParseFloat(parts[4], 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Entry{}, false
	}
	return Entry{Partition: int32(p), Offset: o, DecisionID: parts[2], Action: parts[3][0], Score: s, AtMs: int64(at)}, true
}

const (
	hour = int64(time.Hour / time.Millisecond)
	day  = 24 * hour
)

// Compute is the window at event time atMs over entries: (at-1h, at] and (at-24h, at].
func Compute(entries []Entry, atMs int64) rules.Window {
	var w rules.Window
	for _, e := range entries {
		if e.AtMs > atMs || e.AtMs <= atMs-day {
			continue
		}
		in1h := e.AtMs > atMs-hour
		switch e.Action {
		case 'r':
			w.Reviews24h++
			if in1h {
				w.Reviews1h++
			}
		case 'd':
			w.Declines24h++
			if in1h {
				w.Declines1h++
			}
		}
		w.MaxScore24h = max(w.MaxScore24h, e.Score)
	}
	return w
}

// Request asks for one account's entries before offset Watermark of Partition, from SinceMs on.
type Request struct {
	Account   string
	Partition int32
	Watermark int64
	SinceMs   int64
}

// Store is the Redis adapter.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	// TTL bounds how long an idle account's set lives.
	TTL time.Duration
}

// NewStore keys sets as <prefix>scoring:dw:<account>.
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix, TTL: 25 * time.Hour}
}

func (s *Store) key(account string) string { return s.prefix + "scoring:dw:" + account }

// Load reads the requested accounts in one round trip.
func (s *Store) Load(ctx context.Context, reqs []Request) (map[string][]Entry, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, len(reqs))
	for i, r := range reqs {
		cmds[i] = pipe.ZRangeByScoreWithScores(ctx, s.key(r.Account), &redis.ZRangeBy{Min: strconv.FormatInt(r.SinceMs, 10), Max: "+inf"})
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("load decision windows of %d accounts: %w", len(reqs), err)
	}
	out := make(map[string][]Entry, len(reqs))
	for i, r := range reqs {
		for _, z := range cmds[i].Val() {
			m, _ := z.Member.(string)
			e, ok := parseMember(m, z.Score)
			if !ok || (e.Partition == r.Partition && e.Offset >= r.Watermark) {
				continue
			}
			out[r.Account] = append(out[r.Account], e)
		}
	}
	return out, nil
}

// recordScript adds decisions to an account's set. The hash KEYS[2] maps decision id → member,
// so a replay whose outcome differs from an aborted attempt's (a degraded decision the first
// time, a full one the second) replaces the earlier member instead of counting twice: the last
// write is the committed attempt's. Members older than ARGV[2] are trimmed from both.
// ARGV: ttl ms, trim-before score, then (score, member, decision id) triples.
var recordScript = redis.NewScript(`
local zkey, hkey = KEYS[1], KEYS[2]
for i = 3, #ARGV, 3 do
  local score, member, id = ARGV[i], ARGV[i+1], ARGV[i+2]
  local old = redis.call('HGET', hkey, id)
  if old and old ~= member then
    redis.call('ZREM', zkey, old)
  end
  redis.call('ZADD', zkey, score, member)
  redis.call('HSET', hkey, id, member)
end
local stale = redis.call('ZRANGEBYSCORE', zkey, '-inf', '(' .. ARGV[2])
for _, m in ipairs(stale) do
  local id = string.match(m, '^[^:]*:[^:]*:([^:]*):')
  if id then redis.call('HDEL', hkey, id) end
end
if #stale > 0 then redis.call('ZREMRANGEBYSCORE', zkey, '-inf', '(' .. ARGV[2]) end
redis.call('PEXPIRE', zkey, ARGV[1])
redis.call('PEXPIRE', hkey, ARGV[1])
return #stale
`)

// Record adds entries by account and trims each set to the 25 hours before its newest entry.
func (s *Store) Record(ctx context.Context, byAccount map[string][]Entry) error {
	if len(byAccount) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for acct, es := range byAccount {
		newest := int64(0)
		args := []any{s.TTL.Milliseconds(), 0}
		for _, e := range es {
			args = append(args, e.AtMs, e.member(), e.DecisionID)
			newest = max(newest, e.AtMs)
		}
		args[1] = newest - day - hour
		recordScript.Eval(ctx, pipe, []string{s.key(acct), s.key(acct) + ":ids"}, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record decision windows of %d accounts: %w", len(byAccount), err)
	}
	return nil
}
