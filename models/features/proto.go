package features

import (
	"strings"

	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// FromTransaction is what the feature definitions see of a tx.v1 transaction: the stream and
// every check that recomputes its features convert with this one function.
func FromTransaction(tx *fraudv1.Transaction) Event {
	ch := ""
	if c := tx.GetChannel(); c != fraudv1.Channel_CHANNEL_UNSPECIFIED {
		ch = strings.ToLower(strings.TrimPrefix(c.String(), "CHANNEL_"))
	}
	ev := Event{
		TransactionID: tx.GetId(),
		AccountID:     tx.GetAccountId(),
		CardToken:     tx.GetCard().GetToken(),
		MerchantID:    tx.GetMerchantId(),
		TerminalID:    tx.GetTerminalId(),
		DeviceID:      tx.GetDeviceId(),
		Country:       tx.GetCountry(),
		Channel:       ch,
		AmountMinor:   tx.GetAmountMinor(),
		EventTime:     tx.GetEventTime().AsTime(),
	}
	if tx.GetReceivedTime() != nil {
		ev.ReceivedAt = tx.GetReceivedTime().AsTime()
	}
	return ev
}
