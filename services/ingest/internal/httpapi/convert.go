package httpapi

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
	"github.com/vigil-fraud/vigil/services/ingest/internal/txn"
)

var channels = map[txn.Channel]fraudv1.Channel{
	txn.ChannelCardPresent: fraudv1.Channel_CHANNEL_CARD_PRESENT,
	txn.ChannelEcommerce:   fraudv1.Channel_CHANNEL_ECOMMERCE,
	txn.ChannelMOTO:        fraudv1.Channel_CHANNEL_MOTO,
	txn.ChannelATM:         fraudv1.Channel_CHANNEL_ATM,
	txn.ChannelContactless: fraudv1.Channel_CHANNEL_CONTACTLESS,
}

// toProto builds the tx.v1 message. It takes the tokenized card and ignores tx.PAN, so the
// card number cannot reach Kafka from here.
func toProto(source string, tx txn.Transaction, card txn.Card, received time.Time) *fraudv1.Transaction {
	return &fraudv1.Transaction{
		Id:                  source + ":" + tx.TransactionID,
		Source:              source,
		ClientTransactionId: tx.TransactionID,
		AccountId:           tx.AccountID,
		Card: &fraudv1.Card{
			Token:      card.Token,
			TokenKeyId: card.KeyID,
			Bin:        card.BIN,
			Last4:      card.Last4,
		},
		AmountMinor:  tx.AmountMinor,
		Currency:     tx.Currency,
		MerchantId:   tx.MerchantID,
		TerminalId:   tx.TerminalID,
		Mcc:          tx.MCC,
		Country:      tx.Country,
		Channel:      channels[tx.Channel],
		DeviceId:     tx.DeviceID,
		Ip:           tx.IP,
		EventTime:    timestamppb.New(tx.EventTime),
		ReceivedTime: timestamppb.New(received),
	}
}
