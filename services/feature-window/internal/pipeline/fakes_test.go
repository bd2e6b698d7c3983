package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vigil-fraud/vigil/models/features"
	"github.com/vigil-fraud/vigil/services/feature-window/internal/window"
)

// memStore is Store in memory with flush.lua's semantics: checkpoint compare-and-set, accounts
// stored encoded, terminal and device deltas added.
type memStore struct {
	mu           sync.Mutex
	err          error // returned by every call when set
	ckpt         map[string]int64
	accounts     map[string][]byte
	terminals    map[string]map[int64]*[2]int64
	devices      map[string]map[string]int64
	fetches      int
	accountReads int                       // accounts read by Fetch
	tileReads    map[string][]window.Tiles // terminal → the tile ranges Fetch read, in order
}

func newMemStore() *memStore {
	return &memStore{ckpt: map[string]int64{}, accounts: map[string][]byte{},
		terminals: map[string]map[int64]*[2]int64{}, devices: map[string]map[string]int64{}}
}

func (m *memStore) Fetch(_ context.Context, r window.Request) (*window.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	m.fetches++
	s := &window.Snapshot{Checkpoints: map[string]int64{}, Accounts: map[string]*features.Account{},
		Terminals: map[string]map[int64]*[2]int64{}, Devices: map[string]map[string]int64{}}
	for _, p := range r.Checkpoints {
		c, ok := m.ckpt[p]
		if !ok {
			c = window.NoCheckpoint
		}
		s.Checkpoints[p] = c
	}
	m.accountReads += len(r.Accounts)
	for _, id := range r.Accounts {
		a := &features.Account{}
		if b, ok := m.accounts[id]; ok {
			if err := a.UnmarshalBinary(b); err != nil {
				return nil, err
			}
		}
		s.Accounts[id] = a
	}
	for id, d := range r.Terminals {
		if m.tileReads == nil {
			m.tileReads = map[string][]window.Tiles{}
		}
		m.tileReads[id] = append(m.tileReads[id], d)
		days := map[int64]*[2]int64{}
		for x, v := range m.terminals[id] {
			if x >= d.Lo && x <= d.Hi {
				c := *v
				days[x] = &c
			}
		}
		s.Terminals[id] = days
	}
	for _, id := range r.Devices {
		d := map[string]int64{}
		for a, ms := range m.devices[id] {
			d[a] = ms
		}
		s.Devices[id] = d
	}
	return s, nil
}

func (m *memStore) Flush(_ context.Context, deltas []window.Delta) ([]error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	errs := make([]error, len(deltas))
	for i, d := range deltas {
		cur, ok := m.ckpt[d.Partition]
		if !ok {
			cur = window.NoCheckpoint
		}
		if cur != d.From {
			errs[i] = fmt.Errorf("%w: %s is %d, expected %d", window.ErrConflict, d.Partition, cur, d.From)
			continue
		}
		for id, b := range d.Accounts {
			m.accounts[id] = b
		}
		for id, days := range d.Terminals {
			if m.terminals[id] == nil {
				m.terminals[id] = map[int64]*[2]int64{}
			}
			for x, td := range days {
				if m.terminals[id][x] == nil {
					m.terminals[id][x] = &[2]int64{}
				}
				m.terminals[id][x][0] += td.Tx
			}
		}
		for id, accts := range d.Devices {
			if m.devices[id] == nil {
				m.devices[id] = map[string]int64{}
			}
			for a, s := range accts {
				m.devices[id][a] = max(m.devices[id][a], s.Ms)
			}
		}
		for id, prune := range d.DevicePrune {
			for a, below := range prune {
				if ms, ok := m.devices[id][a]; ok && ms < below {
					delete(m.devices[id], a)
				}
			}
		}
		m.ckpt[d.Partition] = d.To
	}
	return errs, nil
}

// memLog is tx.v1 in memory: records by partition, offsets = index.
type memLog map[int32][]*kgo.Record

func (l memLog) read(_ context.Context, _ string, partition int32, from, to int64, fn func(*kgo.Record) error) error {
	recs := l[partition]
	if to > int64(len(recs)) {
		return errors.New("memLog: read beyond the end")
	}
	for o := max(from, 0); o < to; o++ {
		if err := fn(recs[o]); err != nil {
			return err
		}
	}
	return nil
}

func noReader(context.Context, string, int32, int64, int64, func(*kgo.Record) error) error {
	return errors.New("no catch-up expected")
}
