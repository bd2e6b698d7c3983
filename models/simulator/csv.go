package simulator

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// Header is the Handbook's raw CSV header.
const Header = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO"

// DateTimeLayout is how TX_DATETIME is written (pandas' default).
const DateTimeLayout = "2006-01-02 15:04:05"

// WriteCSV writes the transactions in the Handbook's raw format.
func (d *Dataset) WriteCSV(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.WriteString(Header + "\n"); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	var buf []byte
	for _, t := range d.Transactions {
		buf = buf[:0]
		buf = strconv.AppendInt(buf, int64(t.ID), 10)
		buf = append(buf, ',')
		buf = t.Time.AppendFormat(buf, DateTimeLayout)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, int64(t.CustomerID), 10)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, int64(t.TerminalID), 10)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, t.Amount, 'f', 2, 64)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, t.TimeSeconds, 10)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, int64(t.TimeDays), 10)
		buf = append(buf, ',')
		if t.Fraud {
			buf = append(buf, '1')
		} else {
			buf = append(buf, '0')
		}
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, int64(t.FraudScenario), 10)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}
