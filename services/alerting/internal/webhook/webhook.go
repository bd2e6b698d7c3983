// Package webhook delivers alert events to subscribers: HMAC-SHA256 signatures over
// timestamp + "." + body, an idempotency header, exponential backoff with jitter, dead letters
// after a number of attempts, and a URL policy that refuses private and metadata addresses.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Event types a subscription can ask for.
var EventTypes = []string{"alert.created"}

// Headers of a delivery.
const (
	HeaderSignature   = "Vigil-Signature"
	HeaderTimestamp   = "Vigil-Timestamp"
	HeaderIdempotency = "Idempotency-Key"
	HeaderEvent       = "Vigil-Event"
)

// Sign returns the hex HMAC-SHA256 of timestamp + "." + body.
func Sign(secret string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature in constant time; receivers use it (and tests).
func Verify(secret string, timestamp int64, body []byte, sig string) bool {
	want := Sign(secret, timestamp, body)
	return hmac.Equal([]byte(want), []byte(sig))
}

// Backoff is the delay before attempt n+1 after n failed attempts: base·2^(n-1), capped, with
// full jitter in [d/2, d] so a fleet of failing endpoints does not retry in lockstep.
func Backoff(n int, base, maxDelay time.Duration, rnd func() float64) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(base) * math.Pow(2, float64(n-1))
	if d > float64(maxDelay) {
		d = float64(maxDelay)
	}
	return time.Duration(d/2 + rnd()*d/2)
}

// ErrURL marks a subscription URL the policy refuses.
var ErrURL = errors.New("webhook url refused")

// Policy decides which addresses deliveries may reach.
type Policy struct {
	// AllowLoopback lets deliveries reach 127.0.0.0/8 and ::1 (dev and tests only).
	AllowLoopback bool
}

// CheckURL validates a subscription URL's form; the address check happens again at dial time,
// so DNS answers that change after the check cannot reach a private address.
func (p Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: not an absolute URL", ErrURL)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme must be http or https", ErrURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the URL are not allowed", ErrURL)
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		if err := p.CheckAddr(ip); err != nil {
			return err
		}
	} else if h := strings.ToLower(u.Hostname()); h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "metadata.google.internal" {
		if !p.AllowLoopback || h == "metadata.google.internal" {
			return fmt.Errorf("%w: host %s is internal", ErrURL, h)
		}
	}
	return nil
}

// CheckAddr refuses private, link-local (including cloud metadata 169.254.169.254),
// unspecified, multicast and, unless allowed, loopback addresses.
func (p Policy) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		if p.AllowLoopback {
			return nil
		}
		return fmt.Errorf("%w: loopback address %s", ErrURL, ip)
	case ip.IsPrivate(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsUnspecified(), ip.IsMulticast(),
		ip.IsInterfaceLocalMulticast():
		return fmt.Errorf("%w: internal address %s", ErrURL, ip)
	}
	// Carrier-grade NAT and the IPv4 "this network" block are not routable to a customer.
	for _, pfx := range []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("fd00:ec2::254/128")} {
		if pfx.Contains(ip) {
			return fmt.Errorf("%w: internal address %s", ErrURL, ip)
		}
	}
	return nil
}

// Client returns an HTTP client that enforces the policy on every dialled address, follows
// redirects only within the same host, and times out.
func (p Policy) Client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrURL, host)
		}
		return p.CheckAddr(ip)
	}}
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4, TLSHandshakeTimeout: timeout},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Host != via[0].URL.Host {
				return fmt.Errorf("redirect to another host (%s) refused", req.URL.Host)
			}
			return nil
		},
	}
}

// Subscription is an endpoint and the events it wants. The secret is shown once, at creation.
type Subscription struct {
	ID         string    `json:"subscription_id"`
	URL        string    `json:"url"`
	EventTypes []string  `json:"event_types"`
	Active     bool      `json:"active"`
	CreatedAt  time.Time `json:"created_at"`
}

// Attempt is one delivery attempt, as the delivery log shows it.
type Attempt struct {
	DeliveryID     string    `json:"delivery_id"`
	SubscriptionID string    `json:"subscription_id"`
	EventType      string    `json:"event_type"`
	Status         string    `json:"status"`
	Attempt        int       `json:"attempt"`
	At             time.Time `json:"at"`
	StatusCode     int       `json:"status_code,omitempty"`
	Error          string    `json:"error,omitempty"`
	DurationMS     int       `json:"duration_ms"`
}

// Store keeps subscriptions and the delivery outbox in Postgres.
type Store struct {
	pool   *pgxpool.Pool
	policy Policy
}

// NewStore returns the store.
func NewStore(pool *pgxpool.Pool, policy Policy) *Store { return &Store{pool: pool, policy: policy} }

// ErrInvalid wraps bad subscription input; the message names the field.
var ErrInvalid = errors.New("invalid subscription")

// Create adds a subscription with a fresh secret, audited.
func (s *Store) Create(ctx context.Context, actor, rawURL string, events []string) (Subscription, string, error) {
	if err := s.policy.CheckURL(rawURL); err != nil {
		return Subscription{}, "", fmt.Errorf("%w: url: %v", ErrInvalid, err)
	}
	if len(events) == 0 {
		return Subscription{}, "", fmt.Errorf("%w: event_types: at least one is required", ErrInvalid)
	}
	for _, e := range events {
		ok := false
		for _, k := range EventTypes {
			ok = ok || e == k
		}
		if !ok {
			return Subscription{}, "", fmt.Errorf("%w: event_types: unknown event %q", ErrInvalid, e)
		}
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret := "whsec_" + base64.RawURLEncoding.EncodeToString(b)
	idb := make([]byte, 8)
	_, _ = rand.Read(idb)
	sub := Subscription{ID: "whs_" + hex.EncodeToString(idb), URL: rawURL, EventTypes: events, Active: true}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO webhook_subscriptions (subscription_id, url, secret, event_types) VALUES ($1, $2, $3, $4)
			RETURNING created_at`, sub.ID, sub.URL, secret, sub.EventTypes).Scan(&sub.CreatedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO audit_log (actor, action, entity, entity_id, after)
			VALUES ($1, 'create', 'webhook_subscription', $2, jsonb_build_object('url', $3::text, 'event_types', $4::text[]))`, actor, sub.ID, sub.URL, sub.EventTypes)
		return err
	})
	if err != nil {
		return Subscription{}, "", fmt.Errorf("create subscription: %w", err)
	}
	return sub, secret, nil
}

// List returns every subscription.
func (s *Store) List(ctx context.Context) ([]Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT subscription_id, url, event_types, active, created_at FROM webhook_subscriptions ORDER BY created_at`)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Subscription, error) {
		var x Subscription
		err := r.Scan(&x.ID, &x.URL, &x.EventTypes, &x.Active, &x.CreatedAt)
		return x, err
	})
}

// Attempts returns the latest delivery attempts, newest first.
func (s *Store) Attempts(ctx context.Context, limit int) ([]Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT d.delivery_id, d.subscription_id, d.event_type, d.status, a.attempt, a.at,
		coalesce(a.status_code, 0), coalesce(a.error, ''), a.duration_ms
		FROM webhook_attempts a JOIN webhook_deliveries d USING (delivery_id) ORDER BY a.at DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list attempts: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attempt, error) {
		var x Attempt
		err := r.Scan(&x.DeliveryID, &x.SubscriptionID, &x.EventType, &x.Status, &x.Attempt, &x.At, &x.StatusCode, &x.Error, &x.DurationMS)
		return x, err
	})
}

// WorkerConfig tunes delivery.
type WorkerConfig struct {
	PollInterval time.Duration
	Timeout      time.Duration
	MaxAttempts  int
	BaseBackoff  time.Duration
	MaxBackoff   time.Duration
	// MaxResponseBytes caps how much of a response body is read (and logged).
	MaxResponseBytes int64
	Batch            int
}

// Worker delivers due deliveries.
type Worker struct {
	cfg    WorkerConfig
	pool   *pgxpool.Pool
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
}

// NewWorker returns the delivery worker.
func NewWorker(cfg WorkerConfig, pool *pgxpool.Pool, policy Policy, log *slog.Logger) *Worker {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 2 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 64 << 10
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 20
	}
	return &Worker{cfg: cfg, pool: pool, client: policy.Client(cfg.Timeout), log: log.With("worker", "webhooks"), now: time.Now}
}

// Run delivers until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.PollInterval)
	defer t.Stop()
	for {
		if _, err := w.Once(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("webhook round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type due struct {
	id, sub, event, url, secret string
	payload                     []byte
	attempts                    int
}

// Once attempts every due delivery once; it returns how many it attempted. Each delivery is
// locked for its attempt, so several workers never send the same attempt twice.
func (w *Worker) Once(ctx context.Context) (int, error) {
	n := 0
	for range w.cfg.Batch {
		did, err := w.one(ctx)
		if err != nil {
			return n, err
		}
		if !did {
			break
		}
		n++
	}
	return n, nil
}

func (w *Worker) one(ctx context.Context) (bool, error) {
	did := false
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		var d due
		err := tx.QueryRow(ctx, `SELECT d.delivery_id, d.subscription_id, d.event_type, s.url, s.secret, d.payload::text, d.attempts
			FROM webhook_deliveries d JOIN webhook_subscriptions s USING (subscription_id)
			WHERE d.status = 'pending' AND d.next_attempt_at <= now() ORDER BY d.next_attempt_at LIMIT 1
			FOR UPDATE OF d SKIP LOCKED`).Scan(&d.id, &d.sub, &d.event, &d.url, &d.secret, &d.payload, &d.attempts)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("next delivery: %w", err)
		}
		did = true
		attempt := d.attempts + 1
		began := w.now()
		code, derr := w.send(ctx, d)
		elapsed := int(w.now().Sub(began).Milliseconds())
		var errText *string
		if derr != nil {
			s := derr.Error()
			if len(s) > 500 {
				s = s[:500]
			}
			errText = &s
		}
		var codePtr *int
		if code != 0 {
			codePtr = &code
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5)`,
			d.id, attempt, codePtr, errText, elapsed); err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		switch {
		case derr == nil:
			_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'delivered', attempts = $2, delivered_at = now() WHERE delivery_id = $1`, d.id, attempt)
		case attempt >= w.cfg.MaxAttempts:
			w.log.Warn("webhook dead-lettered", "delivery", d.id, "subscription", d.sub, "attempts", attempt)
			_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'dead', attempts = $2 WHERE delivery_id = $1`, d.id, attempt)
		default:
			next := w.now().Add(Backoff(attempt, w.cfg.BaseBackoff, w.cfg.MaxBackoff, mrand.Float64))
			_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET attempts = $2, next_attempt_at = $3 WHERE delivery_id = $1`, d.id, attempt, next)
		}
		return err
	})
	return did, err
}

// send posts one delivery; any non-2xx answer is a failure.
func (w *Worker) send(ctx context.Context, d due) (int, error) {
	ts := w.now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, strings.NewReader(string(d.payload)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vigil-webhooks/1")
	req.Header.Set(HeaderEvent, d.event)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, "v1="+Sign(d.secret, ts, d.payload))
	// The delivery id is stable across retries: receivers de-duplicate on it.
	req.Header.Set(HeaderIdempotency, d.id)
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, w.cfg.MaxResponseBytes))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}
