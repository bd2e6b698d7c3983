module github.com/vigil-fraud/vigil/e2e

go 1.26.0

replace (
	github.com/vigil-fraud/vigil/libs => ../libs
	github.com/vigil-fraud/vigil/models => ../models
	github.com/vigil-fraud/vigil/proto => ../proto
)
