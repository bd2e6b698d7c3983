package labels

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vigil-fraud/vigil/libs/kafka"
	"github.com/vigil-fraud/vigil/models/features"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// memWindows applies labels once per transaction, as the Redis script does.
type memWindows struct{ seen map[string]bool }

func (m memWindows) ApplyLabels(_ context.Context, ls []features.Label) (applied, dup int, _ error) {
	for _, l := range ls {
		if m.seen[l.TransactionID] {
			dup++
			continue
		}
		m.seen[l.TransactionID] = true
		applied++
	}
	return applied, dup, nil
}

func TestConvert(t *testing.T) {
	t.Parallel()
	at := timestamppb.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tests := []struct {
		name    string
		in      *fraudv1.Label
		ok      bool
		wantErr bool
		fraud   bool
	}{
		{"fraud", &fraudv1.Label{TransactionId: "t", Value: fraudv1.LabelValue_LABEL_VALUE_FRAUD, TransactionTime: at, LabelledTime: at}, true, false, true},
		{"legitimate", &fraudv1.Label{TransactionId: "t", Value: fraudv1.LabelValue_LABEL_VALUE_LEGITIMATE, TransactionTime: at, LabelledTime: at}, true, false, false},
		{"unsure is no verdict", &fraudv1.Label{TransactionId: "t", Value: fraudv1.LabelValue_LABEL_VALUE_UNSURE, TransactionTime: at, LabelledTime: at}, false, false, false},
		{"no transaction id", &fraudv1.Label{Value: fraudv1.LabelValue_LABEL_VALUE_FRAUD, TransactionTime: at, LabelledTime: at}, false, true, false},
		{"no transaction time", &fraudv1.Label{TransactionId: "t", LabelledTime: at}, false, true, false},
		{"no labelled time", &fraudv1.Label{TransactionId: "t", TransactionTime: at}, false, true, false},
	}
	for _, tt := range tests {
		l, ok, err := Convert(tt.in)
		if (err != nil) != tt.wantErr || ok != tt.ok || l.Fraud != tt.fraud {
			t.Errorf("%s: %+v, %v, %v", tt.name, l, ok, err)
		}
	}
}

func TestApplyDeadLettersAndDeduplicates(t *testing.T) {
	t.Parallel()
	at := timestamppb.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	good, err := kafka.NewRecord("labels.v1", "a", &fraudv1.Label{TransactionId: "t1", TerminalId: "T",
		Value: fraudv1.LabelValue_LABEL_VALUE_FRAUD, TransactionTime: at, LabelledTime: at})
	if err != nil {
		t.Fatal(err)
	}
	bad := &kgo.Record{Topic: "labels.v1", Value: []byte{0xff}}
	a := &Applier{Windows: memWindows{map[string]bool{}}}
	dead, err := a.Apply(context.Background(), []*kgo.Record{good, bad, good})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].Topic != "labels.v1.dlq" || kafka.Header(dead[0], kafka.HeaderError) == "" {
		t.Fatalf("dead letters %+v", dead)
	}
	if a.Stats.Applied.Load() != 1 || a.Stats.Duplicates.Load() != 1 {
		t.Fatalf("applied %d, duplicates %d", a.Stats.Applied.Load(), a.Stats.Duplicates.Load())
	}
}
