// Package kafka holds what every Vigil stream service shares: topic names, client options,
// protobuf records with type headers, topic admin and the exactly-once loop (eos.go).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/config"
)

// Topics names every topic of the pipeline. Names are configurable so tests and tenants can
// run side by side on one broker.
type Topics struct {
	Tx        string
	Features  string
	Decisions string
	Labels    string
}

// DLQ is the dead-letter topic for records of topic that cannot be decoded.
func DLQ(topic string) string { return topic + ".dlq" }

// All lists every topic including dead-letter topics.
func (t Topics) All() []string {
	base := []string{t.Tx, t.Features, t.Decisions, t.Labels}
	out := append([]string(nil), base...)
	for _, b := range base {
		out = append(out, DLQ(b))
	}
	return out
}

// Config is the Kafka part of every service's configuration.
type Config struct {
	Brokers    []string
	Topics     Topics
	Partitions int
	// TxnGuardInterval is how often a service looks for hanging transactions on the topics it
	// reads (0: never); TxnGuardMinAge is how long one must have been open. See hanging.go.
	TxnGuardInterval time.Duration
	TxnGuardMinAge   time.Duration
}

// LoadConfig reads VIGIL_KAFKA_* and VIGIL_TOPIC_* variables.
func LoadConfig(e *config.Env) Config {
	c := Config{
		Brokers: e.List("VIGIL_KAFKA_BROKERS", []string{"127.0.0.1:9092"}),
		Topics: Topics{
			Tx:        e.String("VIGIL_TOPIC_TX", "tx.v1"),
			Features:  e.String("VIGIL_TOPIC_FEATURES", "features.v1"),
			Decisions: e.String("VIGIL_TOPIC_DECISIONS", "decisions.v1"),
			Labels:    e.String("VIGIL_TOPIC_LABELS", "labels.v1"),
		},
		Partitions:       e.Int("VIGIL_KAFKA_PARTITIONS", 6, 1, 1024),
		TxnGuardInterval: e.DurationRange("VIGIL_KAFKA_TXN_GUARD_INTERVAL", 15*time.Second, 0, time.Hour),
		TxnGuardMinAge:   e.DurationRange("VIGIL_KAFKA_TXN_GUARD_MIN_AGE", 30*time.Second, 5*time.Second, time.Hour),
	}
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			e.Fail("VIGIL_KAFKA_BROKERS", "%q is not host:port", b)
		}
	}
	return c
}

// Fetch shapes a consumer's fetches: the broker answers once MinBytes are readable (up to the
// last stable offset for read-committed consumers) or MaxWait has passed.
//
// franz-go keeps one fetch per broker buffered and sends the next one only when a poll takes
// it. With MinBytes 1, the fetch a busy consumer sends at the start of its cycle comes back
// with the first records that arrive, and whatever arrives during the rest of the cycle waits
// for the fetch after that: one more cycle of latency. A MinBytes no cycle's input reaches,
// with MaxWait about one cycle, makes each fetch gather a whole cycle's input instead; an
// idle consumer then waits up to MaxWait for a lone record.
type Fetch struct {
	MinBytes int
	MaxWait  time.Duration
}

// PipelineFetch is the default of the consumers that carry a transaction from ingest to its
// decision row (feature-window, scoring, the decision sink): answer after 10 ms (franz-go's
// least) with everything that arrived, or at once when 64 KiB are readable (about 290 records
// of 229 bytes, more than 10 ms of input below ~28k tx/s). Against franz-go's default (1 byte,
// 5 s), alternating 30 s runs on the busy 2-core bench box cut p50 end-to-end at 1,000 tx/s from
// a median 80 to 59 ms; whole bench-full ladders were within their run-to-run spread
// (services/feature-window/README.md, "Fetch size and wait"). The cost: an idle consumer sends
// a fetch every 10 ms instead of every 5 s, and a lone record waits up to 10 ms per hop.
func PipelineFetch() Fetch { return Fetch{MinBytes: 64 << 10, MaxWait: 10 * time.Millisecond} }

// LoadFetch reads <prefix>_FETCH_MIN_BYTES and <prefix>_FETCH_MAX_WAIT (at least 10ms, franz-go's
// floor).
func LoadFetch(e *config.Env, prefix string, def Fetch) Fetch {
	return Fetch{
		MinBytes: e.Int(prefix+"_FETCH_MIN_BYTES", def.MinBytes, 1, 64<<20),
		MaxWait:  e.DurationRange(prefix+"_FETCH_MAX_WAIT", def.MaxWait, 10*time.Millisecond, 30*time.Second),
	}
}

// Opts are the client options of f.
func (f Fetch) Opts() []kgo.Opt {
	return []kgo.Opt{kgo.FetchMinBytes(int32(f.MinBytes)), kgo.FetchMaxWait(f.MaxWait)}
}

// NewTxnGuard returns a guard of topics (plus __consumer_offsets) with its counter on reg.
func (c Config) NewTxnGuard(reg prometheus.Registerer, log *slog.Logger, topics ...string) *TxnGuard {
	g := &TxnGuard{Brokers: c.Brokers, Topics: topics, Interval: c.TxnGuardInterval, MinAge: c.TxnGuardMinAge, Log: log}
	g.Register(reg)
	return g
}

// Header keys carried by every Vigil record.
const (
	HeaderType   = "vigil-type"
	HeaderSchema = "vigil-schema"
	// HeaderError explains why a record went to a dead-letter topic.
	HeaderError = "vigil-error"
	// HeaderSourceOffset is "topic/partition/offset" of the record a dead letter came from.
	HeaderSourceOffset = "vigil-source"
)

// SchemaVersion of the protobuf contract in proto/fraud/v1.
const SchemaVersion = "1"

// ErrDecode marks a record that cannot be decoded: it belongs in a dead-letter topic, retrying
// will not help.
var ErrDecode = errors.New("undecodable record")

// NewRecord encodes msg as a record for topic, keyed by key, with type and schema headers.
func NewRecord(topic, key string, msg proto.Message) (*kgo.Record, error) {
	b, err := proto.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", proto.MessageName(msg), err)
	}
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(key),
		Value: b,
		Headers: []kgo.RecordHeader{
			{Key: HeaderType, Value: []byte(proto.MessageName(msg))},
			{Key: HeaderSchema, Value: []byte(SchemaVersion)},
		},
	}, nil
}

// Decode checks r's type header and unmarshals it into msg; failures wrap ErrDecode.
func Decode(r *kgo.Record, msg proto.Message) error {
	want := string(proto.MessageName(msg))
	if got := Header(r, HeaderType); got != want {
		return fmt.Errorf("%w: type header %q, want %q", ErrDecode, got, want)
	}
	if err := proto.Unmarshal(r.Value, msg); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	return nil
}

// Header returns the value of the last header named key.
func Header(r *kgo.Record, key string) string {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value)
		}
	}
	return ""
}

// DeadLetter copies r to its dead-letter topic with the reason and its origin in headers.
func DeadLetter(r *kgo.Record, reason error) *kgo.Record {
	headers := append([]kgo.RecordHeader(nil), r.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: fmt.Appendf(nil, "%s/%d/%d", r.Topic, r.Partition, r.Offset)},
	)
	return &kgo.Record{Topic: DLQ(r.Topic), Key: r.Key, Value: r.Value, Headers: headers}
}

// ProducerOptions are the options of every non-transactional Vigil producer: idempotent,
// acks=all, a short linger so concurrent requests share batches.
func ProducerOptions(brokers []string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.RecordDeliveryTimeout(30 * time.Second),
	}
}

// EnsureTopics creates the topics that do not exist yet; existing ones are left alone.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int, topics ...string) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, int32(partitions), 1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, t := range resp.Sorted() {
		if t.Err != nil && !errors.Is(t.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Topic, t.Err)
		}
	}
	return nil
}

// Ping asks the cluster for its metadata and checks that at least one broker answers in it.
func Ping(ctx context.Context, cl *kgo.Client) error {
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	if len(md.Brokers) == 0 {
		return errors.New("kafka metadata lists no brokers")
	}
	return nil
}

// WaitReady polls Ping until it succeeds or ctx ends.
func WaitReady(ctx context.Context, brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := Ping(pctx, cl)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka at %s not ready: %w", strings.Join(brokers, ","), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
