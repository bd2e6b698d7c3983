package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Needles finds card numbers in bytes: the PAN as sent, and its hex form (how a bytea or a
// hex-encoded blob would carry it).
type Needles struct {
	pans [][]byte
	hexs [][]byte
}

// NewNeedles builds the search set from the card numbers sent.
func NewNeedles(pans []string) *Needles {
	n := &Needles{}
	seen := map[string]bool{}
	for _, p := range pans {
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		n.pans = append(n.pans, []byte(p))
		n.hexs = append(n.hexs, []byte(hex.EncodeToString([]byte(p))))
	}
	return n
}

// Find returns the first card number in b, or "".
func (n *Needles) Find(b []byte) string {
	// Every simulator PAN starts with 400000: look for candidates first, then compare.
	if !bytes.Contains(b, []byte("400000")) && !bytes.Contains(b, []byte("343030303030")) {
		return ""
	}
	for i, p := range n.pans {
		if bytes.Contains(b, p) {
			return string(p)
		}
		if bytes.Contains(b, n.hexs[i]) {
			return string(p) + " (hex)"
		}
	}
	return ""
}

// ScanResult is the card-number scan of one kind of store.
type ScanResult struct {
	Where   string   `json:"where"`
	Scanned int      `json:"scanned"` // records, keys, rows, files or span batches
	Bytes   int64    `json:"bytes"`
	Hits    int      `json:"hits"`
	Samples []string `json:"samples,omitempty"` // where, never the number itself
}

func (r *ScanResult) look(n *Needles, where string, b []byte) {
	r.Scanned++
	r.Bytes += int64(len(b))
	if n.Find(b) != "" {
		r.Hits++
		if len(r.Samples) < 5 {
			r.Samples = append(r.Samples, where)
		}
	}
}

// ScanKafka reads every record of topics, uncommitted included (aborted transactions too),
// and looks at keys, values and headers.
func ScanKafka(ctx context.Context, brokers, topics []string, n *Needles) (ScanResult, error) {
	r := ScanResult{Where: "kafka (all run topics, read-uncommitted)"}
	err := ReadTopics(ctx, brokers, topics, false, 3*time.Second, func(rec *kgo.Record) {
		b := append(append([]byte(nil), rec.Key...), rec.Value...)
		for _, h := range rec.Headers {
			b = append(append(b, h.Key...), h.Value...)
		}
		r.look(n, fmt.Sprintf("%s/%d@%d", rec.Topic, rec.Partition, rec.Offset), b)
	})
	return r, err
}

// ScanRedis looks at every key of the (private) Redis and its value, whatever its type.
func ScanRedis(ctx context.Context, addr string, n *Needles) (ScanResult, error) {
	r := ScanResult{Where: "redis (every key and value)"}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return r, err
		}
		if err := scanRedisKeys(ctx, rdb, keys, &r, n); err != nil {
			return r, err
		}
		if cursor = next; cursor == 0 {
			return r, nil
		}
	}
}

// scanRedisKeys reads one batch of keys in two pipelined round trips: types, then values.
func scanRedisKeys(ctx context.Context, rdb *redis.Client, keys []string, r *ScanResult, n *Needles) error {
	types := make([]*redis.StatusCmd, len(keys))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			types[i] = p.Type(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	vals := make([]func() []string, len(keys))
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			switch types[i].Val() {
			case "string":
				c := p.Get(ctx, k)
				vals[i] = func() []string { return []string{c.Val()} }
			case "hash":
				c := p.HGetAll(ctx, k)
				vals[i] = func() []string {
					var out []string
					for f, v := range c.Val() {
						out = append(out, f, v)
					}
					return out
				}
			case "set":
				c := p.SMembers(ctx, k)
				vals[i] = c.Val
			case "zset":
				c := p.ZRange(ctx, k, 0, -1)
				vals[i] = c.Val
			case "list":
				c := p.LRange(ctx, k, 0, -1)
				vals[i] = c.Val
			default: // streams and anything newer: the serialized value
				c := p.Dump(ctx, k)
				vals[i] = func() []string { return []string{c.Val()} }
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for i, k := range keys {
		var buf bytes.Buffer
		buf.WriteString(k)
		for _, v := range vals[i]() {
			buf.WriteString("\x00")
			buf.WriteString(v)
		}
		r.look(n, "key "+k, buf.Bytes())
	}
	return nil
}

// ScanPostgres looks at every row of every table of the run's database: text-like columns as
// text, bytea columns as their raw bytes (their hex text would turn any binary double into
// digit runs that look like card numbers).
func ScanPostgres(ctx context.Context, url string, n *Needles) (ScanResult, error) {
	r := ScanResult{Where: "postgres (every row of every table, every column)"}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return r, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
		  AND (table_schema, table_name) IN (SELECT schemaname, tablename FROM pg_tables)
		ORDER BY table_schema, table_name, ordinal_position`)
	if err != nil {
		return r, err
	}
	type table struct {
		name pgx.Identifier
		cols []string
	}
	var tables []*table
	for rows.Next() {
		var s, t, c, typ string
		if err := rows.Scan(&s, &t, &c, &typ); err != nil {
			return r, err
		}
		if len(tables) == 0 || tables[len(tables)-1].name[1] != t || tables[len(tables)-1].name[0] != s {
			tables = append(tables, &table{name: pgx.Identifier{s, t}})
		}
		col := pgx.Identifier{c}.Sanitize()
		if typ != "bytea" {
			col += "::text"
		}
		tables[len(tables)-1].cols = append(tables[len(tables)-1].cols, col)
	}
	if err := rows.Err(); err != nil {
		return r, err
	}
	for _, t := range tables {
		rows, err := conn.Query(ctx, "SELECT "+strings.Join(t.cols, ", ")+" FROM "+t.name.Sanitize())
		if err != nil {
			return r, fmt.Errorf("scan %s: %w", t.name.Sanitize(), err)
		}
		for rows.Next() {
			var buf bytes.Buffer
			for _, v := range rows.RawValues() {
				buf.Write(v)
				buf.WriteByte(0)
			}
			r.look(n, "table "+strings.Join(t.name, "."), buf.Bytes())
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// ScanFiles looks at whole files (service and infrastructure logs, exported spans).
func ScanFiles(where string, paths []string, n *Needles) (ScanResult, error) {
	r := ScanResult{Where: where}
	sort.Strings(paths)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return r, err
		}
		r.look(n, filepath.Base(p), b)
	}
	return r, nil
}

// SpanSink is a minimal OTLP/HTTP trace receiver: it stores every export request body (protobuf,
// uncompressed) in one file, so the scan sees every attribute of every exported span.
type SpanSink struct {
	URL     string
	path    string
	mu      sync.Mutex
	f       *os.File
	batches int
	srv     *http.Server
}

// StartSpanSink listens on loopback and appends exports to path.
func StartSpanSink(path string) (*SpanSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &SpanSink{URL: "http://" + ln.Addr().String(), path: path, f: f}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.receive)}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *SpanSink) receive(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	}
	b, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	_, _ = s.f.Write(b)
	s.batches++
	s.mu.Unlock()
	w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
	w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse
}

// Batches counts the export requests received.
func (s *SpanSink) Batches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches
}

// Close stops receiving and closes the file.
func (s *SpanSink) Close() {
	_ = s.srv.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.f.Close()
}
