// Package validate checks the deployment files statically, because no Docker engine or
// Kubernetes cluster runs where `make test` does: docker-compose.yml through the compose-spec
// loader, deploy/docker/Dockerfile through the BuildKit parser, every kustomize overlay rendered
// with the kustomize API and decoded strictly into the Kubernetes API types, and the
// Prometheus, Grafana and OTel collector files for structure and the vigil_* metric contract.
//
// Environment variables are cross-checked against the services' Go source at test time, so a
// variable a service stops reading (or starts requiring) fails the test without a list to update.
package validate
