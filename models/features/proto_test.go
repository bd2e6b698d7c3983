package features

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

func TestFromTransaction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   fraudv1.Channel
		want string
	}{
		{fraudv1.Channel_CHANNEL_UNSPECIFIED, ""},
		{fraudv1.Channel_CHANNEL_CARD_PRESENT, "card_present"},
		{fraudv1.Channel_CHANNEL_CONTACTLESS, "contactless"},
	}
	for _, tt := range tests {
		if got := FromTransaction(&fraudv1.Transaction{Channel: tt.in}).Channel; got != tt.want {
			t.Errorf("%v: %q, want %q", tt.in, got, tt.want)
		}
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ev := FromTransaction(&fraudv1.Transaction{Id: "t1", EventTime: timestamppb.New(at), ReceivedTime: timestamppb.New(at.Add(time.Minute))})
	if ev.TransactionID != "t1" || !ev.EventTime.Equal(at) || !ev.ReceivedAt.Equal(at.Add(time.Minute)) {
		t.Errorf("times: %+v", ev)
	}
	if ev := FromTransaction(&fraudv1.Transaction{Id: "t2"}); !ev.ReceivedAt.IsZero() {
		t.Errorf("no received time became %v", ev.ReceivedAt)
	}
	for _, c := range Channels {
		v := fraudv1.Channel_value["CHANNEL_"+strings.ToUpper(c)]
		if v == 0 {
			t.Errorf("feature channel %q has no proto enum", c)
		}
	}
}
