package kafka

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// eosMetrics are the exactly-once loop's Prometheus series, labelled by consumer group.
type eosMetrics struct {
	transactions *prometheus.CounterVec   // result: commit, abort
	duration     *prometheus.HistogramVec // result
	records      prometheus.Counter
	deadLetters  *prometheus.CounterVec // topic, reason
	// loop splits the loop's time: waiting for input, transforming, ending transactions.
	poll, transform, end prometheus.Counter
}

func newEOSMetrics(reg prometheus.Registerer, group string) *eosMetrics {
	labels := prometheus.Labels{"group": group}
	m := &eosMetrics{
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_kafka_transactions_total", Help: "Kafka transactions ended by the exactly-once loop, by result (commit or abort).", ConstLabels: labels,
		}, []string{"result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_kafka_transaction_duration_seconds", Help: "Time from Begin to End of a Kafka transaction.", ConstLabels: labels,
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_kafka_records_total", Help: "Input records committed by the exactly-once loop.", ConstLabels: labels,
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_dlq_records_total", Help: "Records written to a dead-letter topic.", ConstLabels: labels,
		}, []string{"topic", "reason"}),
	}
	// Where the loop's time goes, as a counter per stage: rate() of each over the same window
	// adds up to about 1 second per second. A loop whose "end" dominates is bound by its
	// commits (raise the commit interval); one whose "transform" dominates, by its work.
	loop := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_kafka_loop_seconds_total", ConstLabels: labels,
		Help: "Time the exactly-once loop spent per stage: poll (waiting for input), transform (the work, produce calls included), end (flush, offset commit and EndTxn of each transaction, commit or abort).",
	}, []string{"stage"})
	m.poll, m.transform, m.end = loop.WithLabelValues("poll"), loop.WithLabelValues("transform"), loop.WithLabelValues("end")
	if reg != nil {
		reg.MustRegister(m.transactions, m.duration, m.records, m.deadLetters, loop)
	}
	return m
}

func (m *eosMetrics) observe(committed bool, records int, out []*kgo.Record, d time.Duration) {
	result := "abort"
	if committed {
		result = "commit"
		m.records.Add(float64(records))
		for _, r := range out {
			if strings.HasSuffix(r.Topic, ".dlq") {
				m.deadLetters.WithLabelValues(r.Topic, deadLetterReason(r)).Inc()
			}
		}
	}
	m.transactions.WithLabelValues(result).Inc()
	m.duration.WithLabelValues(result).Observe(d.Seconds())
}

// deadLetterReason is a low-cardinality class of a dead letter's error header: "decode" for
// records that cannot be read, "rejected" for records that decode but fail validation.
func deadLetterReason(r *kgo.Record) string {
	if strings.Contains(Header(r, HeaderError), ErrDecode.Error()) {
		return "decode"
	}
	return "rejected"
}

// LagCollector reports consumer-group lag per partition at scrape time (one ListOffsets and
// OffsetFetch per scrape, no background goroutine).
type LagCollector struct {
	adm    *kadm.Client
	groups []string
	desc   *prometheus.Desc
}

// NewLagCollector reports the lag of groups through cl.
func NewLagCollector(cl *kgo.Client, groups ...string) *LagCollector {
	return &LagCollector{
		adm:    kadm.NewClient(cl),
		groups: groups,
		desc: prometheus.NewDesc("vigil_kafka_consumer_lag", "Records between a group's committed offset and the partition end.",
			[]string{"group", "topic", "partition"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	lags, err := c.adm.Lag(ctx, c.groups...)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	lags.Each(func(l kadm.DescribedGroupLag) {
		for topic, parts := range l.Lag {
			for p, ml := range parts {
				if ml.Err != nil || ml.Lag < 0 {
					continue
				}
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(ml.Lag), l.Group, topic, strconv.Itoa(int(p)))
			}
		}
	})
}

// RegisterLag registers a LagCollector for groups on reg, over an admin client of its own.
// Call close when the service stops.
func RegisterLag(reg prometheus.Registerer, brokers []string, groups ...string) (close func(), err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("kafka admin client: %w", err)
	}
	reg.MustRegister(NewLagCollector(cl, groups...))
	return cl.Close, nil
}
