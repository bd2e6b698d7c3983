package features

import (
	"strconv"
	"strings"
)

// MemStore executes plans in memory with the semantics of the service's Lua script (see Plan),
// except that nothing expires: Offline never runs long enough in wall-clock time to need it.
// It is not safe for concurrent use.
type MemStore struct {
	hashes  map[string]map[string]string
	strings map[string]string
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{hashes: map[string]map[string]string{}, strings: map[string]string{}}
}

func (m *MemStore) hash(k string) map[string]string {
	h := m.hashes[k]
	if h == nil {
		h = map[string]string{}
		m.hashes[k] = h
	}
	return h
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// Exec runs one plan.
func (m *MemStore) Exec(p Plan) Result {
	if p.Mark != nil {
		wm, ok := m.strings[p.Keys[p.Mark.Key]]
		if ok && p.Mark.Offset <= atoi(wm) {
			if stored, ok := m.strings[p.Keys[p.Mark.ResultKey]]; ok {
				parts := strings.Split(stored, "\x00")
				return Result{Status: Status(parts[0]), Replayed: true, Reads: parts[1:]}
			}
			return Result{Status: StatusReplayedStale, Replayed: true, Reads: m.reads(p)}
		}
	}
	res := Result{Status: StatusApplied, Reads: m.reads(p)}
	if g := p.Guard; g != nil {
		if v, ok := m.hash(p.Keys[g.Key])[g.Field]; ok && atoi(v) > g.Min {
			res.Status = StatusLate
		}
	}
	if o := p.Once; o != nil && res.Status == StatusApplied {
		if _, ok := m.strings[p.Keys[o.Key]]; ok {
			res.Status = StatusDuplicate
		} else {
			m.strings[p.Keys[o.Key]] = "1"
		}
	}
	if res.Status == StatusApplied {
		m.writes(p)
	}
	if p.Mark != nil {
		m.strings[p.Keys[p.Mark.Key]] = strconv.FormatInt(p.Mark.Offset, 10)
		m.strings[p.Keys[p.Mark.ResultKey]] = string(res.Status) + "\x00" + strings.Join(res.Reads, "\x00")
	}
	return res
}

func (m *MemStore) reads(p Plan) []string {
	out := make([]string, 0, len(p.Reads))
	for _, op := range p.Reads {
		h := m.hashes[p.Keys[op.Key]]
		switch op.Kind {
		case OpSum:
			for _, suf := range op.Suffixes {
				var s int64
				for _, f := range TileFields(op.Hi, int(op.Hi-op.Lo+1), suf) {
					s += atoi(h[f])
				}
				out = append(out, strconv.FormatInt(s, 10))
			}
		case OpRecent:
			var n int64
			for f, v := range h {
				if f != op.Field && atoi(v) > op.Num {
					n++
				}
			}
			out = append(out, strconv.FormatInt(n, 10))
		case OpGet:
			out = append(out, h[op.Field])
		}
	}
	return out
}

func (m *MemStore) writes(p Plan) {
	created := map[int]bool{}
	for _, op := range p.Writes {
		h := m.hash(p.Keys[op.Key])
		switch op.Kind {
		case OpIncr:
			n := atoi(h[op.Field]) + atoi(op.Value)
			h[op.Field] = strconv.FormatInt(n, 10)
			if n == atoi(op.Value) { // as Redis sees it: HINCRBY's result equals the increment
				created[op.Key] = true
			}
		case OpMax:
			old, ok := h[op.Field]
			if !ok || atoi(op.Value) > atoi(old) {
				h[op.Field] = op.Value
			}
			if !ok {
				created[op.Key] = true
			}
		case OpSetNX:
			if _, ok := h[op.Field]; !ok {
				h[op.Field] = op.Value
			}
		case OpPruneTiles:
			if created[op.Key] {
				for f := range h {
					if i := strings.IndexByte(f, ':'); i > 0 && atoi(f[:i]) < op.Num {
						delete(h, f)
					}
				}
			}
		case OpPruneRecent:
			if created[op.Key] {
				for f, v := range h {
					if atoi(v) < op.Num {
						delete(h, f)
					}
				}
			}
		case OpTTL:
		}
	}
}
