package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/vigil-fraud/vigil/libs/httpserver"
	fraudv1 "github.com/vigil-fraud/vigil/proto/gen/fraud/v1"
)

// batchRequest is the body of POST /v1/transactions:batch. Items stay raw so each is decoded
// on its own and a bad one fails alone.
type batchRequest struct {
	Transactions []json.RawMessage `json:"transactions"`
}

// parsedItem is one decoded batch item, or why it could not be decoded.
type parsedItem struct {
	req transactionRequest
	err error
}

// parseBatch decodes a batch body; an item that is not a valid transaction object fails alone.
func parseBatch(body []byte) ([]parsedItem, error) {
	if reqs, ok := fastParseBatch(body); ok {
		items := make([]parsedItem, len(reqs))
		for i, r := range reqs {
			items[i].req = r
		}
		return items, nil
	}
	var req batchRequest
	if err := strictDecode(body, &req); err != nil {
		return nil, err
	}
	items := make([]parsedItem, len(req.Transactions))
	for i, raw := range req.Transactions {
		items[i].req, items[i].err = parseTransaction(raw)
	}
	return items, nil
}

// batchItem is one item's outcome: status 202 with the accepted fields, or a problem.
type batchItem struct {
	Index       int                 `json:"index"`
	Status      int                 `json:"status"`
	ID          string              `json:"id,omitempty"`
	DecisionURL string              `json:"decision_url,omitempty"`
	Problem     *httpserver.Problem `json:"problem,omitempty"`
}

type batchResponse struct {
	Accepted int         `json:"accepted"`
	Rejected int         `json:"rejected"`
	Results  []batchItem `json:"results"`
}

func itemProblem(i int, p httpserver.Problem) batchItem {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	return batchItem{Index: i, Status: p.Status, Problem: &p}
}

// createBatch validates every item, publishes the valid ones together and reports per item.
// The batch is not atomic: valid items are queued even when others are rejected.
func (a *API) createBatch(c submission) response {
	items, err := parseBatch(c.body)
	if err != nil {
		return requestProblem(err)
	}
	n := len(items)
	if n == 0 || n > a.cfg.MaxBatchItems {
		return problemResponse(httpserver.Problem{Status: http.StatusBadRequest,
			Detail: fmt.Sprintf("transactions must hold 1 to %d items, got %d", a.cfg.MaxBatchItems, n),
			Errors: []httpserver.FieldError{{Field: "transactions", Detail: fmt.Sprintf("must hold 1 to %d items", a.cfg.MaxBatchItems)}}})
	}
	if resp, ok := a.admit(c, n); !ok {
		return resp
	}

	results := make([]batchItem, n)
	var (
		msgs  []*fraudv1.Transaction
		index []int
		seen  = map[string]int{}
	)
	for i, item := range items {
		if item.err != nil {
			results[i] = itemProblem(i, problemOf(item.err))
			continue
		}
		msg, fields := a.convert(c.principal.Source, item.req)
		if len(fields) > 0 {
			results[i] = itemProblem(i, httpserver.Problem{Status: http.StatusUnprocessableEntity,
				Detail: "the transaction has invalid fields", Errors: fields})
			continue
		}
		if first, dup := seen[msg.GetId()]; dup {
			results[i] = itemProblem(i, httpserver.Problem{Status: http.StatusUnprocessableEntity,
				Detail: "the transaction has invalid fields",
				Errors: []httpserver.FieldError{{Field: "transaction_id", Detail: fmt.Sprintf("repeats item %d of this batch", first)}}})
			continue
		}
		seen[msg.GetId()] = i
		msgs = append(msgs, msg)
		index = append(index, i)
	}

	failed := 0
	if len(msgs) > 0 {
		release, resp, ok := a.reserve(c, len(msgs))
		if !ok {
			return resp
		}
		pctx, cancel := context.WithTimeout(c.ctx, a.cfg.PublishTimeout)
		errs := a.pub.PublishAll(pctx, msgs)
		cancel()
		release()
		for j, err := range errs {
			i := index[j]
			if err != nil {
				failed++
				a.logError(c.ctx, "publish transaction", "id", msgs[j].GetId(), "err", err)
				results[i] = itemProblem(i, httpserver.Problem{Status: http.StatusServiceUnavailable,
					Detail: "the transaction could not be queued for scoring; retry later"})
				continue
			}
			acc := accepted(msgs[j].GetId())
			results[i] = batchItem{Index: i, Status: http.StatusAccepted, ID: acc.ID, DecisionURL: acc.DecisionURL}
		}
		// Nothing was queued: one whole-request 503 tells the client plainly to retry it all.
		if failed == len(msgs) {
			return a.retryLater(http.StatusServiceUnavailable, "the transactions could not be queued for scoring; retry later", a.cfg.RetryAfter)
		}
	}

	out := batchResponse{Results: results}
	for _, r := range results {
		if r.Status == http.StatusAccepted {
			out.Accepted++
		} else {
			out.Rejected++
		}
	}
	resp := jsonResponse(http.StatusOK, out)
	if failed > 0 {
		// Some items may be retried; replaying this response would hide that.
		resp.header = map[string]string{"Retry-After": retryAfterSeconds(a.cfg.RetryAfter)}
		resp.partial = true
	}
	return resp
}
