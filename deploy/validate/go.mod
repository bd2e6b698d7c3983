module github.com/vigil-fraud/vigil/deploy/validate

go 1.26.0
