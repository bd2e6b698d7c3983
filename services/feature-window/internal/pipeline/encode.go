package pipeline

import (
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// Field numbers of fraud.v1.EnrichedTransaction and fraud.v1.FeatureVector (features.proto).
const (
	fieldEnrichedTransaction = 1
	fieldEnrichedFeatures    = 2
	fieldEnrichedComputed    = 3
	fieldVectorVersion       = 1
	fieldVectorHash          = 2
	fieldVectorValues        = 4
	fieldTimestampSeconds    = 1
	fieldTimestampNanos      = 2
)

var (
	enrichedType = []byte(proto.MessageName(&fraudv1.EnrichedTransaction{}))
	schemaHeader = []byte(kafka.SchemaVersion)
	lateHeader   = []byte("1")
	// vectorHead is a FeatureVector's schema version and hash, the same in every record.
	vectorHead = func() []byte {
		b := protowire.AppendTag(nil, fieldVectorVersion, protowire.BytesType)
		b = protowire.AppendString(b, features.SchemaVersion)
		b = protowire.AppendTag(b, fieldVectorHash, protowire.BytesType)
		return protowire.AppendString(b, features.SchemaHash())
	}()
)

// appendEnriched appends the encoding of the fraud.v1.EnrichedTransaction made of the
// transaction encoded as txBytes (the tx.v1 record's value as it came: it decoded and passed
// validation, so it is not encoded again), the current schema's feature values (without their
// names: see features.NamesOf) and the computed time. proto.Unmarshal reads it back as the
// message proto.Marshal would have built.
func appendEnriched(b, txBytes []byte, values []float64, computed time.Time) []byte {
	b = protowire.AppendTag(b, fieldEnrichedTransaction, protowire.BytesType)
	b = protowire.AppendBytes(b, txBytes)

	packed := len(values) * 8
	vec := len(vectorHead)
	if len(values) > 0 {
		vec += protowire.SizeTag(fieldVectorValues) + protowire.SizeBytes(packed)
	}
	b = protowire.AppendTag(b, fieldEnrichedFeatures, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(vec))
	b = append(b, vectorHead...)
	if len(values) > 0 {
		b = protowire.AppendTag(b, fieldVectorValues, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(packed))
		for _, v := range values {
			b = protowire.AppendFixed64(b, math.Float64bits(v))
		}
	}

	secs, nanos := computed.Unix(), int64(computed.Nanosecond())
	ts := 0
	if secs != 0 {
		ts += protowire.SizeTag(fieldTimestampSeconds) + protowire.SizeVarint(uint64(secs))
	}
	if nanos != 0 {
		ts += protowire.SizeTag(fieldTimestampNanos) + protowire.SizeVarint(uint64(nanos))
	}
	b = protowire.AppendTag(b, fieldEnrichedComputed, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(ts))
	if secs != 0 {
		b = protowire.AppendTag(b, fieldTimestampSeconds, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(secs))
	}
	if nanos != 0 {
		b = protowire.AppendTag(b, fieldTimestampNanos, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(nanos))
	}
	return b
}

// enrichedSize bounds the length of appendEnriched's encoding.
func enrichedSize(txBytes []byte, values int) int {
	return 3*(1+binaryMaxVarint) + len(txBytes) + len(vectorHead) + 1 + binaryMaxVarint + 8*values + 2*(1+binaryMaxVarint)
}

const binaryMaxVarint = 10

// enrichedRecord is the features.v1 record of the transaction in in, keyed like it by account.
func enrichedRecord(topic string, in *kgo.Record, account string, values []float64, computed time.Time, late bool) *kgo.Record {
	key := in.Key
	if string(key) != account { // tx.v1 is keyed by account: reuse the key unless it is not
		key = []byte(account)
	}
	headers := make([]kgo.RecordHeader, 2, 4) // room for the late flag and the trace context
	headers[0] = kgo.RecordHeader{Key: kafka.HeaderType, Value: enrichedType}
	headers[1] = kgo.RecordHeader{Key: kafka.HeaderSchema, Value: schemaHeader}
	if late {
		headers = append(headers, kgo.RecordHeader{Key: HeaderLate, Value: lateHeader})
	}
	value := appendEnriched(make([]byte, 0, enrichedSize(in.Value, len(values))), in.Value, values, computed)
	return &kgo.Record{Topic: topic, Key: key, Value: value, Headers: headers}
}
