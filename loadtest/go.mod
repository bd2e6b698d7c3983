module github.com/vigil-fraud/vigil/loadtest

go 1.26.0

replace (
	github.com/vigil-fraud/vigil/libs => ../libs
	github.com/vigil-fraud/vigil/models => ../models
	github.com/vigil-fraud/vigil/proto => ../proto
)
